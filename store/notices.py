"""Storing the gateway's own mail (receipts, DSNs, delay warnings) in the outgoing queue.

A notice is stored as a `messages` row with `source='internal'`, already `processed` (the
pipeline never looks at it), the notice bytes as `raw`, one `deliveries` row per recipient
and its events, all inside the caller's transaction: it is sent, retried and logged exactly
like forwarded mail, and it exists only if the state change that caused it commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from store import deliveries, events
from store.db import CHANNEL_DELIVERIES
from store.models import Delivery, Document, Message

INTERNAL = "internal"


@dataclass(frozen=True)
class Notice:
    """A finished notice: its bytes and envelope (the envelope sender is always null)."""

    kind: str  # e.g. "receipt/delivered", "dsn/failed"
    raw: bytes
    recipients: tuple[str, ...]
    header_message_id: str
    header_from: str
    subject: str


# ---- what a notice reports on -------------------------------------------------------------


@dataclass(frozen=True)
class NoticeOriginal:
    """The message a notice is about, with the start of its raw bytes (the caller cuts the
    header block from it with mailparse.headers, to spot automatic mail) and the pipeline's
    reference to its edXML document, if any."""

    id: int
    source: str
    mail_from: str
    subject: str | None
    header_message_id: str | None
    received_at: dt.datetime
    head: bytes
    edxml_ref: dict[str, Any] | None = None


@dataclass(frozen=True)
class NoticeDocument:
    part_path: str
    filename: str | None
    detected_type: str
    kind: str | None
    number: str | None
    notation: str | None
    verdict: str | None


@dataclass(frozen=True)
class NoticeDestination:
    recipient: str
    agency_code: str | None
    state: str
    delivered_at: dt.datetime | None


async def notice_originals(
    session: AsyncSession, ids: Sequence[int], head_limit: int
) -> list[NoticeOriginal]:
    """The messages `ids` (those that exist), each with its first `head_limit` bytes, in one
    read."""
    rows = (
        await session.execute(
            select(
                Message.id,
                Message.source,
                Message.mail_from,
                Message.subject,
                Message.header_message_id,
                Message.received_at,
                Message.edxml_ref,
                func.substring(Message.raw, 1, head_limit).label("head"),
            ).where(Message.id.in_(list(ids)))
        )
    ).all()
    return [
        NoticeOriginal(
            r.id,
            r.source,
            r.mail_from,
            r.subject,
            r.header_message_id,
            r.received_at,
            r.head or b"",
            r.edxml_ref,
        )
        for r in rows
    ]


async def notice_documents(
    session: AsyncSession, ids: Sequence[int]
) -> dict[int, list[NoticeDocument]]:
    """The documents of each message in `ids` (every id is a key), in stored order."""
    out: dict[int, list[NoticeDocument]] = {i: [] for i in ids}
    for r in (
        await session.execute(
            select(
                Document.message_id,
                Document.part_path,
                Document.filename,
                Document.detected_type,
                Document.kind,
                Document.number,
                Document.notation,
                Document.verdict,
            )
            .where(Document.message_id.in_(list(ids)))
            .order_by(Document.id)
        )
    ).all():
        out[r.message_id].append(NoticeDocument(*r[1:]))
    return out


async def notice_destinations(
    session: AsyncSession, ids: Sequence[int]
) -> dict[int, list[NoticeDestination]]:
    """The deliveries of each message in `ids` (every id is a key), oldest first."""
    out: dict[int, list[NoticeDestination]] = {i: [] for i in ids}
    for r in (
        await session.execute(
            select(
                Delivery.message_id,
                Delivery.recipient,
                Delivery.agency_code,
                Delivery.state,
                Delivery.delivered_at,
            )
            .where(Delivery.message_id.in_(list(ids)))
            .order_by(Delivery.id)
        )
    ).all():
        out[r.message_id].append(NoticeDestination(*r[1:]))
    return out


# ---- the queue -----------------------------------------------------------------------------

# Many notices in one statement: message and delivery ids are drawn first so each row can
# name the others (RETURNING gives no order); then the messages, their deliveries with the
# agency of each recipient, the received/routed/receipt_sent events and the NOTIFY.
_EVENTS = events.insert_sql(
    f"""
    SELECT e.kind, e.message_id, CAST(NULL AS bigint), e.detail FROM (
        SELECT n.ord, 1 AS step, 'received' AS kind, n.id AS message_id,
               jsonb_build_object('source', '{INTERNAL}', 'notice', n.kind, 'about', n.about,
                                  'size', length(n.raw)) AS detail
        FROM n
        UNION ALL
        SELECT n.ord, 2, 'routed', n.id, jsonb_build_object('destinations', COALESCE((
            SELECT jsonb_agg(jsonb_build_object('delivery_id', r.id, 'recipient', r.rcpt,
                                                'agency', r.agency) ORDER BY r.pos)
            FROM r WHERE r.message_id = n.id), '[]'::jsonb))
        FROM n
        UNION ALL
        SELECT n.ord, 3, 'receipt_sent', n.about, jsonb_build_object(
            'notice', n.kind, 'notice_message', n.id, 'to', to_jsonb(CAST(n.rcpts AS text[])))
        FROM n WHERE n.about IS NOT NULL
    ) AS e
    ORDER BY e.ord, e.step"""
)
_DELIVERIES = deliveries.insert_sql(
    """
    SELECT r.id, r.message_id, r.rcpt, r.agency, r.priority, 'queued' FROM r
    WHERE r.message_id IN (SELECT id FROM msgs)
    ORDER BY r.ord, r.pos"""
)
_ENQUEUE = text(
    f"""
WITH n AS (
    SELECT nextval(pg_get_serial_sequence('messages', 'id')) AS id, n.*
    FROM unnest(CAST(:kind AS text[]), CAST(:raw AS bytea[]), CAST(:msgid AS text[]),
                CAST(:hfrom AS text[]), CAST(:subject AS text[]), CAST(:sha AS text[]),
                CAST(:about AS bigint[]), CAST(:priority AS smallint[]), CAST(:rcpts AS text[]))
        WITH ORDINALITY AS n(kind, raw, msgid, hfrom, subject, sha, about, priority, rcpts, ord)
), r AS (
    SELECT {deliveries.NEXT_DELIVERY_ID} AS id, n.id AS message_id,
           n.ord, x.rcpt, x.pos, n.priority,
           (SELECT a.code FROM agencies a
            WHERE a.active AND (lower(a.address) = lower(x.rcpt)
                                OR lower(substring(x.rcpt from '[^@]*$')) = ANY(a.domains))
            ORDER BY a.code LIMIT 1) AS agency
    FROM n, unnest(CAST(n.rcpts AS text[])) WITH ORDINALITY AS x(rcpt, pos)
), msgs AS (
    INSERT INTO messages (id, source, peer, mail_from, rcpt_to, header_message_id,
                          header_from, subject, size, sha256, raw, state)
    SELECT n.id, '{INTERNAL}', 'edocgw/' || n.kind, '', CAST(n.rcpts AS text[]), n.msgid,
           n.hfrom, n.subject, length(n.raw), n.sha, n.raw, 'processed'
    FROM n ORDER BY n.ord
    RETURNING id
), dlv AS (
    {_DELIVERIES}
), ev AS (
    {_EVENTS}
)
SELECT n.id, pg_notify('{CHANNEL_DELIVERIES}', CAST(n.id AS text)) FROM n ORDER BY n.ord
"""
)


async def enqueue_notices(
    session: AsyncSession, notices: Sequence[tuple[Notice, int | None]], *, priority: int = 0
) -> list[int]:
    """Store each `(notice, about)` with a delivery per recipient (to the agency whose inbox
    or mail domain it is, if any) and its events (`received`, `routed`, and `receipt_sent` on
    the message it is `about`), in one round trip; wakes the delivery workers on commit.
    Returns the new messages' ids."""
    if not notices:
        return []
    params = {
        "kind": [n.kind for n, _ in notices],
        "raw": [n.raw for n, _ in notices],
        "msgid": [n.header_message_id for n, _ in notices],
        "hfrom": [n.header_from for n, _ in notices],
        "subject": [n.subject for n, _ in notices],
        "sha": [hashlib.sha256(n.raw).hexdigest() for n, _ in notices],
        "about": [about for _, about in notices],
        "priority": [priority] * len(notices),
        # a text[] per notice travels as its array literal (PostgreSQL has no ragged arrays)
        "rcpts": [_array_literal(n.recipients) for n, _ in notices],
    }
    await session.flush()  # pending ORM changes go first, in the order they were made
    return [r[0] for r in (await session.execute(_ENQUEUE, params)).all()]


def _array_literal(values: Sequence[str]) -> str:
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"
