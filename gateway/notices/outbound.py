"""Mail the gateway writes itself (receipts, DSNs, delay warnings) joins the same queue.

A notice is stored as a `messages` row with `source='internal'`, already `processed` (the
pipeline never looks at it), the notice bytes as `raw`, one `deliveries` row per recipient
and its events, all inside the caller's transaction: it is sent, retried and logged exactly
like forwarded mail, and it exists only if the state change that caused it commits
(`store.notices` writes the rows).
"""

from __future__ import annotations

import email.header
import email.parser
import email.policy
import email.utils
from collections.abc import Sequence

from store.db import Transaction
from store.notices import INTERNAL, Notice, enqueue_notices

__all__ = [
    "INTERNAL",
    "Notice",
    "address_header",
    "auto_kind",
    "enqueue",
    "enqueue_many",
    "header",
    "new_message_id",
]


async def enqueue(
    session: Transaction, notice: Notice, *, about: int | None, priority: int = 0
) -> int:
    """Store `notice` with a delivery per recipient; returns the new message's id."""
    return (await enqueue_many(session, [(notice, about)], priority=priority))[0]


async def enqueue_many(
    session: Transaction, notices: Sequence[tuple[Notice, int | None]], *, priority: int = 0
) -> list[int]:
    """`enqueue` for many `(notice, about)` pairs in one round trip; returns the new ids."""
    return await enqueue_notices(session, notices, priority=priority)


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
