"""The few header facts stored beside the raw message: Message-ID, From, decoded Subject.

Only the header block is parsed (never the body), so this stays cheap for big messages. The
values go into PostgreSQL text columns, which refuse NUL and invalid UTF-8: both are cleaned.
Malformed headers yield None, never an exception.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import HeaderParser

from mailparse.headers import header_block

MAX_VALUE = 2000
_PARSER = HeaderParser(policy=policy.default)
__all__ = ["HeaderFacts", "header_block", "header_facts"]


@dataclass(frozen=True)
class HeaderFacts:
    message_id: str | None = None
    from_: str | None = None
    subject: str | None = None


def header_facts(raw: bytes) -> HeaderFacts:
    try:
        # UTF-8 covers SMTPUTF8 (RFC 6532) headers; other 8-bit bytes become U+FFFD.
        text = header_block(raw).decode("utf-8", errors="replace")
        fields = _plain_fields(text)
        if fields is None:  # an odd header block: let the email package read it all
            msg = _PARSER.parsestr(text)
            return HeaderFacts(
                message_id=_get(msg, "Message-ID"),
                from_=_get(msg, "From"),
                subject=_get(msg, "Subject"),
            )
        return HeaderFacts(
            message_id=_fast(fields, "message-id", _PLAIN_MSGID, "Message-ID"),
            from_=_fast(fields, "from", _PLAIN_FROM, "From"),
            subject=_fast(fields, "subject", _PLAIN_TEXT, "Subject"),
        )
    except Exception:  # a header the email package cannot model: store the message anyway
        return HeaderFacts()


# The email package's header objects cost ~100 us a message, a fifth of the listener's CPU at
# 1 KB. For the shapes below their text is known without them (tests/smtp/test_smtp_headers.py
# checks that against the email package); anything else still goes through it.
_FIELD = re.compile(r"[!-9;-~]+:")
_ATOM = r"[A-Za-z0-9_+\-]+"
_DOT_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+)*"
# Each pattern's one matching group is the text the email package prints for the value.
_PLAIN_MSGID = re.compile(rf"(<{_DOT_ATOM}@{_DOT_ATOM}>)")
_ADDR = rf"{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*"
# `addr`, `<addr>` (printed as addr) or `Words <addr>`
_PLAIN_FROM = re.compile(rf"({_ADDR})|<({_ADDR})>|({_ATOM}(?: {_ATOM})* <{_ADDR}>)")
_PLAIN_TEXT = re.compile(r"([^=\x00-\x1f\x7f]*)")  # no encoded word, no control character


def _plain_fields(text: str) -> dict[str, str] | None:
    """The first Message-ID, From and Subject, unfolded as the email package unfolds them; or
    None when the block holds anything its parser treats specially (a Unix From line, a
    continuation before any field, a line that is neither a field nor a continuation)."""
    out: dict[str, str] = {}
    current: str | None = None  # the wanted field whose continuation lines follow
    fields = 0
    for line in _LINES.split(text):
        if not line:
            break
        if line[0] in " \t":
            if not fields:
                return None
            if current is not None:
                out[current] += line
            continue
        m = _FIELD.match(line)
        if m is None:
            return None
        fields += 1
        name = line[: m.end() - 1].lower()
        current = None
        if name in _WANTED and name not in out:
            out[name] = line[m.end() :].lstrip(" \t")
            current = name
    return out


_LINES = re.compile(r"\r\n|\r|\n")  # the email package's line ends, not str.splitlines'
_WANTED = ("message-id", "from", "subject")


def _fast(fields: dict[str, str], key: str, plain: re.Pattern[str], name: str) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    m = plain.fullmatch(value)
    if m:
        return _clean(next(g for g in m.groups() if g is not None))
    try:
        return _value(policy.default.header_factory(name, value))
    except Exception:
        return None


def _get(msg: Message, name: str) -> str | None:
    try:
        return _value(msg.get(name))
    except Exception:
        return None


def _value(v: object) -> str | None:
    if v is None:
        return None
    try:
        s = str(v)
    except Exception:
        s = str(getattr(v, "_raw", "") or "")  # an undecodable encoded-word: keep it raw
    return _clean(s)


def _clean(s: str) -> str | None:
    s = unicodedata.normalize("NFC", s.replace("\x00", "")).strip()
    s = s.encode("utf-8", errors="replace").decode("utf-8")
    return s[:MAX_VALUE] or None
