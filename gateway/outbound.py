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
from dataclasses import dataclass

from sqlalchemy import insert
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
