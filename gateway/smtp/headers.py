"""The few header facts stored beside the raw message: Message-ID, From, decoded Subject.

Only the header block is parsed (never the body), so this stays cheap for big messages. The
values go into PostgreSQL text columns, which refuse NUL and invalid UTF-8: both are cleaned.
Malformed headers yield None, never an exception.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from email import policy
from email.parser import HeaderParser

MAX_HEADER_BLOCK = 256 * 1024
MAX_VALUE = 2000
_PARSER = HeaderParser(policy=policy.default)


@dataclass(frozen=True)
class HeaderFacts:
    message_id: str | None = None
    from_: str | None = None
    subject: str | None = None


def header_block(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n", 0, MAX_HEADER_BLOCK)
    if end < 0:
        end = raw.find(b"\n\n", 0, MAX_HEADER_BLOCK)
    return raw[: end + 2] if end >= 0 else raw[:MAX_HEADER_BLOCK]


def header_facts(raw: bytes) -> HeaderFacts:
    try:
        # UTF-8 covers SMTPUTF8 (RFC 6532) headers; other 8-bit bytes become U+FFFD.
        msg = _PARSER.parsestr(header_block(raw).decode("utf-8", errors="replace"))
        return HeaderFacts(
            message_id=_value(msg, "Message-ID"),
            from_=_value(msg, "From"),
            subject=_value(msg, "Subject"),
        )
    except Exception:  # a header the email package cannot model: store the message anyway
        return HeaderFacts()


def _value(msg: object, name: str) -> str | None:
    try:
        v = msg.get(name)  # type: ignore[attr-defined]
    except Exception:
        return None
    if v is None:
        return None
    try:
        s = str(v)
    except Exception:
        s = str(getattr(v, "_raw", "") or "")  # an undecodable encoded-word: keep it raw
    s = unicodedata.normalize("NFC", s.replace("\x00", "")).strip()
    s = s.encode("utf-8", errors="replace").decode("utf-8")
    return s[:MAX_VALUE] or None
