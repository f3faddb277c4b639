"""Mail the gateway writes itself (receipts, DSNs, delay warnings) joins the same queue.

A notice is stored as a `messages` row with `source='internal'`, already `processed` (the
pipeline never looks at it), the notice bytes as `raw`, one `deliveries` row per recipient
and its events, all inside the caller's transaction: it is sent, retried and logged exactly
like forwarded mail, and it exists only if the state change that caused it commits.
"""

from __future__ import annotations

import email.header
import email.parser
import email.policy
import email.utils
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from store.db import CHANNEL_DELIVERIES
from store.deliveries import agency_for_address
from store.events import append_event
from store.messages import notify
from store.models import Delivery, Message

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


async def enqueue(
    session: AsyncSession, notice: Notice, *, about: int | None, priority: int = 0
) -> int:
    """Store `notice` with a delivery per recipient; returns the new message's id."""
    msg_id = (
        await session.execute(
            insert(Message)
            .values(
                source=INTERNAL,
                peer=f"edocgw/{notice.kind}",
                mail_from="",
                rcpt_to=list(notice.recipients),
                header_message_id=notice.header_message_id,
                header_from=notice.header_from,
                subject=notice.subject,
                size=len(notice.raw),
                sha256=hashlib.sha256(notice.raw).hexdigest(),
                raw=notice.raw,
                state="processed",
            )
            .returning(Message.id)
        )
    ).scalar_one()
    await append_event(
        session,
        "received",
        message_id=msg_id,
        detail={"source": INTERNAL, "notice": notice.kind, "about": about, "size": len(notice.raw)},
    )
    destinations = []
    for rcpt in notice.recipients:
        agency = await agency_for_address(session, rcpt)
        d_id = (
            await session.execute(
                insert(Delivery)
                .values(message_id=msg_id, recipient=rcpt, agency_code=agency, priority=priority)
                .returning(Delivery.id)
            )
        ).scalar_one()
        destinations.append({"delivery_id": d_id, "recipient": rcpt, "agency": agency})
    await append_event(session, "routed", message_id=msg_id, detail={"destinations": destinations})
    if about is not None:
        await append_event(
            session,
            "receipt_sent",
            message_id=about,
            detail={"notice": notice.kind, "notice_message": msg_id, "to": list(notice.recipients)},
        )
    await session.flush()
    await notify(session, CHANNEL_DELIVERIES, str(msg_id))
    return msg_id


# Many notices in one statement: message and delivery ids are drawn first so each row can
# name the others (RETURNING gives no order); then the messages, their deliveries with the
# agency of each recipient, the received/routed/receipt_sent events and the NOTIFY.
_ENQUEUE_MANY = text(
    f"""
WITH n AS (
    SELECT nextval(pg_get_serial_sequence('messages', 'id')) AS id, n.*
    FROM unnest(CAST(:kind AS text[]), CAST(:raw AS bytea[]), CAST(:msgid AS text[]),
                CAST(:hfrom AS text[]), CAST(:subject AS text[]), CAST(:sha AS text[]),
                CAST(:about AS bigint[]), CAST(:priority AS smallint[]), CAST(:rcpts AS text[]))
        WITH ORDINALITY AS n(kind, raw, msgid, hfrom, subject, sha, about, priority, rcpts, ord)
), r AS (
    SELECT nextval(pg_get_serial_sequence('deliveries', 'id')) AS id, n.id AS message_id,
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
    INSERT INTO deliveries (id, message_id, recipient, agency_code, priority)
    SELECT r.id, r.message_id, r.rcpt, r.agency, r.priority FROM r
    WHERE r.message_id IN (SELECT id FROM msgs)
    ORDER BY r.ord, r.pos
), ev AS (
    INSERT INTO events (kind, message_id, detail)
    SELECT e.kind, e.message_id, e.detail FROM (
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
    ORDER BY e.ord, e.step
)
SELECT n.id, pg_notify('{CHANNEL_DELIVERIES}', CAST(n.id AS text)) FROM n ORDER BY n.ord
"""
)


async def enqueue_many(
    session: AsyncSession, notices: Sequence[tuple[Notice, int | None]], *, priority: int = 0
) -> list[int]:
    """`enqueue` for many `(notice, about)` pairs in one round trip; returns the new ids."""
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
    await session.flush()  # events added through the ORM go first, as `enqueue` would order them
    return [r[0] for r in (await session.execute(_ENQUEUE_MANY, params)).all()]


def _array_literal(values: Sequence[str]) -> str:
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


# -- small MIME helpers shared by receipts and DSNs ------------------------------------------


def new_message_id(hostname: str) -> str:
    return email.utils.make_msgid(domain=hostname)


def header(name: str, value: str) -> bytes:
    """One header line, RFC 2047-encoded when not ASCII, never carrying a CR or LF."""
    value = " ".join(value.split())
    if value.isascii():
        return f"{name}: {value}\r\n".encode("ascii")
    encoded = email.header.Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n".encode("ascii")


def address_header(name: str, display: str, address: str) -> bytes:
    shown = email.header.Header(display, "utf-8").encode() if not display.isascii() else display
    return f"{name}: {shown} <{address}>\r\n".encode("ascii", "replace")


def auto_kind(headers: bytes) -> str | None:
    """Why a message is itself automatic, from its header block: `report` (a DSN or other
    multipart/report), `auto-submitted` (RFC 3834) or `precedence` (bulk/junk/list); else None."""
    msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(headers)
    if msg.get_content_type() == "multipart/report":
        return "report"
    auto = str(msg.get("Auto-Submitted", "no")).strip().lower()
    if auto and not auto.startswith("no"):
        return "auto-submitted"
    if str(msg.get("Precedence", "")).strip().lower() in ("bulk", "junk", "list"):
        return "precedence"
    return None
