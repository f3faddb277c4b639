"""How far the pipeline is behind intake: the reading the SMTP listener paces new mail by.

Read with asyncpg on the listener's own small pool (like the group commit, not through
SQLAlchemy): it runs up to fifty times a second while mail is arriving faster than the
pipeline takes it, so it is one short statement over the head of `ix_messages_state_received`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from store.direct import connection

# Claims are taken oldest first, so the messages in progress and the oldest one waiting are
# all near the head of the index; the scan never goes further than this many rows.
HEAD_ROWS = 512

_LAG = f"""
WITH head AS (
    SELECT received_at, size, claimed_until IS NULL OR claimed_until < now() AS waits,
           claimed_until FROM messages
    WHERE state = 'received' AND source != 'internal'
    ORDER BY received_at, id
    LIMIT {HEAD_ROWS}
)
SELECT
    EXTRACT(epoch FROM now() - min(received_at) FILTER (WHERE waits))::float8 AS lag,
    count(*) FILTER (WHERE waits) AS waiting,
    coalesce(sum(least(size, $2::bigint)) FILTER (WHERE waits), 0) AS weight,
    coalesce(bool_or(claimed_until > now() + $1::interval), false) AS taking
FROM head
"""


@dataclass(frozen=True)
class Backlog:
    """`lag`: seconds the oldest message no pipeline has taken yet has waited (None: none
    waits, or none within the head). `waiting`, `weight`: how many wait (within the head),
    and their bytes, each counted up to the reader's `weight_max`. `taking`: some pipeline
    claimed work recently, so waiting for it can help; a stopped pipeline leaves this False
    and nobody is held."""

    lag: float | None
    taking: bool
    waiting: int
    weight: int


async def read_backlog(
    pool: asyncpg.Pool,
    *,
    lease: dt.timedelta,
    recent: dt.timedelta,
    within: float,
    weight_max: int,
) -> Backlog:
    """A claim lasts `lease` from when it is taken (store.claims), so a claim that ends
    later than now + lease - recent was taken within the last `recent`. Each waiting
    message's weight is its size up to `weight_max`."""
    async with connection(pool) as conn:
        row = await conn.fetchrow(_LAG, lease - recent, weight_max, timeout=within)
    assert row is not None
    return Backlog(row["lag"], bool(row["taking"]), int(row["waiting"]), int(row["weight"]))
