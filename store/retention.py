"""Trimming the event log's head (`[logging] retention`), see gateway/eventlog/retention.py.

Only a contiguous prefix of the sealed chain is removed (everything up to the newest sealed
event older than the cut-off), so `edocgw log --verify` still walks an unbroken chain from
the first surviving event. Deleting in batches keeps each transaction short.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, text

from store.db import Database
from store.models import Event

_DELETE_HEAD = text(
    "DELETE FROM events WHERE id IN (SELECT id FROM events "
    "WHERE chain_seq <= :upto ORDER BY chain_seq LIMIT :n)"
)


async def trim_events(db: Database, retention: dt.timedelta, batch: int = 10_000) -> int:
    """Delete sealed events older than `retention` from the head of the chain."""
    cutoff = dt.datetime.now(dt.UTC) - retention
    async with db.transaction() as s:
        upto = await s.scalar(
            select(func.max(Event.chain_seq)).where(Event.chain_seq.is_not(None), Event.at < cutoff)
        )
    if upto is None:
        return 0
    total = 0
    while True:
        async with db.transaction() as s:
            res = await s.execute(_DELETE_HEAD, {"upto": upto, "n": batch})
        n = res.rowcount or 0  # type: ignore[attr-defined]
        total += n
        if n < batch:
            return total
