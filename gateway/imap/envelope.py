"""What the store needs from a fetched message's header block: envelope and summary fields.

IMAP has no SMTP envelope, so the sender comes from Return-Path (else From) and the recipients
from Delivered-To (else the account's own address, else To/Cc). Only the header block is read,
never the body, and every value is made safe for PostgreSQL text (no NUL, valid UTF-8), because
one odd header must not make a message impossible to store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

from mailparse.headers import header_block


@dataclass
class Envelope:
    mail_from: str = ""
    rcpt_to: list[str] = field(default_factory=list)
    message_id: str | None = None
    header_from: str | None = None
    subject: str | None = None


def _clean(value: str) -> str:
    """Undo compat32's surrogate escapes (8-bit headers are usually UTF-8) and drop NULs."""
    try:
        value = value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value.replace("\x00", "").strip()


def _all(msg: Message, name: str) -> list[str]:
    """Every value of a header as it came (raw_items keeps 8-bit bytes recoverable)."""
    name = name.lower()
    return [_clean(str(v)) for k, v in msg.raw_items() if k.lower() == name]


def _header(msg: Message, name: str) -> str | None:
    values = _all(msg, name)
    return values[0] if values else None


def _decoded(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        return _clean(str(make_header(decode_header(raw))))
    except Exception:  # a broken encoded-word: keep the header as it came
        return raw


def _addresses(msg: Message, *names: str) -> list[str]:
    values = [v for n in names for v in _all(msg, n)]
    out: list[str] = []
    for _, addr in getaddresses(values):
        addr = addr.strip()
        if addr and "@" in addr and addr not in out:
            out.append(addr)
    return out


def envelope_of(raw: bytes, account_user: str) -> Envelope:
    msg = BytesHeaderParser(policy=compat32).parsebytes(header_block(raw))
    return_path = _header(msg, "Return-Path")
    if return_path is not None and return_path.replace(" ", "") == "<>":
        senders = [""]  # a null sender (a bounce) stays null: never answer it
    else:
        senders = _addresses(msg, "Return-Path") or _addresses(msg, "From")
    rcpts = _addresses(msg, "Delivered-To")
    if not rcpts:
        rcpts = [account_user] if "@" in account_user else _addresses(msg, "To", "Cc")
    return Envelope(
        mail_from=senders[0] if senders else "",
        rcpt_to=rcpts,
        message_id=_header(msg, "Message-ID"),
        header_from=_decoded(_header(msg, "From")),
        subject=_decoded(_header(msg, "Subject")),
    )
