"""Turning bytes and half-decoded header strings into clean NFC Vietnamese text."""

from __future__ import annotations

import codecs
import re
import unicodedata

_FALLBACK_CHARSETS = ("utf-8", "cp1258")
# Raw 8-bit bytes carried in header text (the email package's surrogate escapes).
SURROGATES = re.compile("[\udc80-\udcff]")


def nfc(text: str) -> str:
    """NFC-normalise: cp1258 and some PDF producers yield combining tone marks. NUL (which an
    encoded-word or RFC 2231 `%00` can smuggle in) becomes U+FFFD: it means nothing in these
    texts, and PostgreSQL refuses it in text columns. ASCII text is NFC already: Python
    knows a string is ASCII without reading it, while `normalize` checks every character
    (0.2 ms for a 200 KB plain-text body)."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return text.replace("\x00", "\ufffd")


def decode_bytes(data: bytes, charset: str | None = None) -> tuple[str, list[str]]:
    """Decode with the declared charset, then UTF-8, then windows-1258; never raises.

    Returns the NFC text and defects (unknown charset, undeclared 8-bit, bad bytes)."""
    defects: list[str] = []
    tried: list[str] = []
    if charset:
        cs = charset.strip().strip('"').lower()
        try:
            codecs.lookup(cs)
            tried.append(cs)
        except LookupError:
            defects.append(f"unknown_charset:{cs[:40]}")
    elif not data[:65536].isascii():
        defects.append("undeclared_8bit")
    for cs in _FALLBACK_CHARSETS:
        if cs not in tried:
            tried.append(cs)
    for cs in tried:
        try:
            text = data.decode(cs)
        except (UnicodeDecodeError, LookupError):
            continue
        if cs in ("us-ascii", "ascii") and not data.isascii():
            continue
        if cs != tried[0] and charset:
            defects.append(f"charset_mismatch:{tried[0]}->{cs}")
        return nfc(text), defects
    defects.append("undecodable_bytes")
    return nfc(data.decode("utf-8", "replace")), defects


def fix_surrogates(text: str) -> str:
    """Repair header text carrying raw 8-bit bytes (as surrogate escapes) and NFC it."""
    if SURROGATES.search(text):
        raw = text.encode("utf-8", "surrogateescape")
        text, _ = decode_bytes(raw, None)
    return nfc(text)
