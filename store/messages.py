"""Storing accepted messages: the row, its `received` event and the NOTIFY, in one transaction.

A message seen before within `[gateway] duplicate_window` (the same sha256, or the same
Message-ID from the same envelope sender: DESIGN §2) is stored too (nothing acknowledged is
lost) but in state `duplicate`, pointing at the first copy, with a `duplicate` event, and the
pipeline never takes it: it is forwarded once. The decision is made here, at the commit the
250 waits for, so every listener (SMTP group commit, IMAP) shares it."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import GatewaySettings
from store import events
from store.db import CHANNEL_RECEIVED
from store.models import Message


@dataclass
class NewMessage:
    """An accepted message as the listeners hand it over (raw bytes exactly as received)."""

    source: str  # smtp | imap
    peer: str
    raw: bytes
    mail_from: str = ""
    rcpt_to: list[str] = field(default_factory=list)
    auth_user: str | None = None
    header_message_id: str | None = None
    header_from: str | None = None
    subject: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    auth_results: dict[str, Any] | None = None  # inbound SPF/DKIM/DMARC; None: not checked

    @functools.cached_property
    def sha256(self) -> str:
        """Of `raw` (never reassigned): the intake's hand-off and the insert both need it."""
        return hashlib.sha256(self.raw).hexdigest()


DEFAULT_DUPLICATE_WINDOW: dt.timedelta = GatewaySettings.model_fields["duplicate_window"].default


@dataclass(frozen=True)
class Stored:
    """Where an accepted message went: its id, and the earlier message it repeats (it is then
    stored in state `duplicate` with a `duplicate` event and is not processed or forwarded)."""

    id: int
    duplicate_of: int | None = None


async def insert_message(
    session: AsyncSession, m: NewMessage, *, duplicate_window: dt.timedelta | None = None
) -> int:
    """Insert the message in state `received` (or `duplicate`) with its events and wake the
    pipeline; the same statement as `insert_messages`, for one message.

    Runs inside the caller's transaction: the NOTIFY is delivered only if it commits.
    """
    return (await store_message(session, m, duplicate_window=duplicate_window)).id


async def store_message(
    session: AsyncSession, m: NewMessage, *, duplicate_window: dt.timedelta | None = None
) -> Stored:
    """`insert_message`, telling whether the message repeats an earlier one."""
    await session.flush()  # pending ORM changes go first, in the order they were made
    names = [name for name, _ in _COLUMNS]
    params = dict(zip(names, batch_params([m], duplicate_window), strict=True))
    row = (await session.execute(_INSERT_SESSION, params)).one()
    return Stored(int(row[0]), row[1])


def received_detail(m: NewMessage, sha256: str) -> dict[str, Any]:
    """The `received` event's detail, the same whichever way the message is stored."""
    detail: dict[str, Any] = {
        "source": m.source,
        "peer": m.peer,
        "size": len(m.raw),
        "sha256": sha256,
    }
    detail.update(m.detail)
    return detail


def duplicate_key(m: NewMessage) -> str | None:
    """The (Message-ID, sender) key of DESIGN §2, or None when either is missing (the null
    sender of bounces names nobody, so only identical bytes make those duplicates)."""
    msgid = (m.header_message_id or "").strip()
    sender = (m.mail_from or "").strip().lower()
    if not msgid or not sender or sender == "<>":
        return None
    return f"msgid:{sender} {msgid}"


async def insert_messages(
    pool: asyncpg.Pool,
    messages: list[NewMessage],
    *,
    duplicate_window: dt.timedelta | None = None,
) -> list[Stored]:
    """`insert_message` for a batch in ONE asyncpg statement (one round trip, one WAL flush);
    the SMTP listener's group commit uses it. Returns the results in the order given.

    A big message is not sent as a statement parameter: asyncpg would encode it into a buffer
    of its own, and the event loop's transport copy what the socket does not take at once, so
    the process would hold it three times (bench/memory.py: 4.6x a 46 MB attachment). It is
    streamed with COPY in slices into a temporary table first, in the same transaction."""
    params = batch_params(messages, duplicate_window, staged=STREAM_RAW_BYTES)
    if not any(len(m.raw) > STREAM_RAW_BYTES for m in messages):
        rows = await pool.fetch(_INSERT_POOL, *params)
    else:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(_STAGING_TABLE)
            await conn.copy_to_table(
                "intake_raw",
                source=_copy_stream(messages),
                columns=["ord", "raw"],
                format="binary",
            )
            rows = await conn.fetch(_INSERT_STAGED, *params)
    return [Stored(int(r["id"]), r["duplicate_of"]) for r in rows]


STREAM_RAW_BYTES = 1024 * 1024  # bigger raw messages are streamed (COPY), not a parameter
_SLICE = 1024 * 1024
# Per connection, emptied at every commit.
_STAGING_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS intake_raw (ord bigint, raw bytea) ON COMMIT DELETE ROWS"
)


async def _copy_stream(messages: list[NewMessage]) -> AsyncIterator[bytes]:
    """The big messages of a batch as a binary COPY stream (ord, raw), a slice at a time."""
    yield b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
    for ord_, m in enumerate(messages, 1):
        if len(m.raw) <= STREAM_RAW_BYTES:
            continue
        yield struct.pack("!hiqi", 2, 8, ord_, len(m.raw))
        view = memoryview(m.raw)
        for i in range(0, len(view), _SLICE):
            yield bytes(view[i : i + _SLICE])
    yield struct.pack("!h", -1)


# The statement's inputs, one array each (one element per message), and their SQL types.
_COLUMNS = (
    ("source", "text[]"),
    ("peer", "text[]"),
    ("auth_user", "text[]"),
    ("mail_from", "text[]"),
    ("rcpt_to", "jsonb[]"),
    ("header_message_id", "text[]"),
    ("header_from", "text[]"),
    ("subject", "text[]"),
    ("size", "bigint[]"),
    ("sha256", "text[]"),
    ("raw", "bytea[]"),
    ("detail", "jsonb[]"),
    ("msgid_key", "text[]"),
    ("auth_results", "jsonb[]"),
    ("window", "interval"),  # last: one value for the batch, not an array
)

# One statement, so one implicit transaction: either every message of the batch (rows,
# events, notifications) commits or none does. Ids are drawn first so that each event can
# name its message without relying on the order of RETURNING.
#
# Duplicates: each message's keys (its sha256, and its sender + Message-ID) are claimed in
# `intake_keys`. ON CONFLICT DO UPDATE waits for a concurrent transaction that inserted the
# same key and then sees its committed row (not this statement's snapshot), so of two copies
# committed at the same moment by two sessions exactly one owns the key; the other learns the
# owner from RETURNING. A key older than the window passes to the new message. Keys are
# claimed in key order (no deadlock between batches) and once per batch (the batch's first
# message with that key claims it, its batch-mates then name that message as the owner).
_INSERT_TEMPLATE = """
WITH input AS (
    SELECT nextval(pg_get_serial_sequence('messages', 'id')) AS id, u.*
    FROM unnest(
        {source}, {peer}, {auth_user}, {mail_from}, {rcpt_to}, {header_message_id},
        {header_from}, {subject}, {size}, {sha256}, {raw_input}, {detail}, {msgid_key},
        {auth_results}
    ) WITH ORDINALITY AS u(
        source, peer, auth_user, mail_from, rcpt_to, header_message_id, header_from,
        subject, size, sha256, raw, detail, msgid_key, auth_results, ord
    )
), keyed AS (
    SELECT input.id, input.ord, k.key
    FROM input CROSS JOIN LATERAL (VALUES ('sha256:' || input.sha256), (input.msgid_key)) AS k(key)
    WHERE k.key IS NOT NULL AND {window} > interval '0'
), claimed AS (
    INSERT INTO intake_keys AS k (key, message_id, seen_at)
    SELECT key, id, now() FROM (
        SELECT DISTINCT ON (key) key, id FROM keyed ORDER BY key, ord
    ) AS first ORDER BY key
    ON CONFLICT (key) DO UPDATE SET
        message_id = CASE WHEN k.seen_at < now() - {window}
                          THEN EXCLUDED.message_id ELSE k.message_id END,
        seen_at = CASE WHEN k.seen_at < now() - {window}
                       THEN EXCLUDED.seen_at ELSE k.seen_at END
    RETURNING k.key, k.message_id AS owner
), dup AS (
    SELECT keyed.id, min(claimed.owner) AS duplicate_of,
           jsonb_agg(DISTINCT split_part(keyed.key, ':', 1)) AS by
    FROM keyed JOIN claimed ON claimed.key = keyed.key
    WHERE claimed.owner <> keyed.id
    GROUP BY keyed.id
), m AS (
    INSERT INTO messages (
        id, source, peer, auth_user, mail_from, rcpt_to, header_message_id, header_from,
        subject, size, sha256, raw, state, duplicate_of, auth_results
    )
    SELECT input.id, source, peer, auth_user, mail_from,
           ARRAY(SELECT jsonb_array_elements_text(rcpt_to)), header_message_id, header_from,
           subject, size, sha256, {raw},
           CASE WHEN dup.id IS NULL THEN 'received' ELSE 'duplicate' END, dup.duplicate_of,
           auth_results
    FROM input LEFT JOIN dup ON dup.id = input.id
), e AS (
    {events}
)
SELECT input.id, dup.duplicate_of,
       CASE WHEN dup.id IS NULL THEN pg_notify('{channel}', input.id::text) END AS notified
FROM input LEFT JOIN dup ON dup.id = input.id ORDER BY input.ord
"""

_EVENTS_SOURCE = """SELECT e.kind, e.id, CAST(NULL AS bigint), e.detail FROM (
        SELECT input.ord, 1 AS step, 'received' AS kind, input.id, input.detail FROM input
        UNION ALL
        SELECT input.ord, 2, 'duplicate', input.id,
               jsonb_build_object('duplicate_of', dup.duplicate_of, 'by', dup.by)
        FROM input JOIN dup ON dup.id = input.id
    ) AS e ORDER BY e.ord, e.step"""


def _render(placeholder: Any, raw: str = "raw") -> str:
    args = {name: placeholder(n, name, typ) for n, (name, typ) in enumerate(_COLUMNS, 1)}
    args["raw"], args["raw_input"] = raw, args["raw"]
    return _INSERT_TEMPLATE.format(
        **args, events=events.insert_sql(_EVENTS_SOURCE), channel=CHANNEL_RECEIVED
    )


# The same statement for asyncpg ($n) and for a SQLAlchemy session (:name); and for asyncpg
# with the big messages' bytes staged in `intake_raw` (their parameter is NULL).
_INSERT_POOL = _render(lambda n, name, typ: f"CAST(${n} AS {typ})")
_INSERT_STAGED = _render(
    lambda n, name, typ: f"CAST(${n} AS {typ})",
    raw="coalesce(raw, (SELECT s.raw FROM intake_raw AS s WHERE s.ord = input.ord))",
)
_INSERT_SESSION = text(_render(lambda n, name, typ: f"CAST(:{name} AS {typ})"))


def batch_params(
    messages: list[NewMessage],
    duplicate_window: dt.timedelta | None = None,
    staged: int | None = None,
) -> list[object]:
    """The statement's parameters; with *staged*, the raw bytes of messages bigger than that
    are left out (NULL): they travel by COPY."""
    window = DEFAULT_DUPLICATE_WINDOW if duplicate_window is None else duplicate_window
    cols: list[list[object]] = [[] for _ in range(len(_COLUMNS) - 1)]
    for m in messages:
        sha = m.sha256
        detail = received_detail(m, sha)
        values = (
            m.source,
            m.peer,
            m.auth_user,
            m.mail_from,
            json.dumps(list(m.rcpt_to), ensure_ascii=False),
            m.header_message_id,
            m.header_from,
            m.subject,
            len(m.raw),
            sha,
            None if staged is not None and len(m.raw) > staged else m.raw,
            events.detail_json(detail),
            duplicate_key(m),
            None if m.auth_results is None else events.detail_json(m.auth_results),
        )
        for col, v in zip(cols, values, strict=True):
            col.append(v)
    return [*cols, window]


async def find_by_sha256(session: AsyncSession, sha256: str) -> int | None:
    return (
        await session.execute(
            select(Message.id).where(Message.sha256 == sha256).order_by(Message.id).limit(1)
        )
    ).scalar_one_or_none()


async def notify(session: AsyncSession, channel: str, payload: str = "") -> None:
    await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": payload})
