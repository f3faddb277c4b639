"""A faster reader for PDF hex strings, installed into pyHanko.

pyHanko parses `<...>` hex strings one byte per generator step; a signature's /Contents is
8-32 KB of hex and is read several times per verification, which profiling put at ~30 % of
a signed PDF's verification time. This reader finds the closing `>` with `bytes.find` and
decodes in one call, with the same result, the same stream position afterwards and the same
error for a bad digit; anything unusual (a `%` comment inside, a truncated stream) goes to
pyHanko's own reader so the edge cases behave exactly as before.
"""

from __future__ import annotations

import binascii
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfStreamError

_original = generic.read_hex_string_from_stream
_WHITESPACE = b" \n\r\t\f\x00"
_CHUNK = 64 * 1024


def read_hex_string_from_stream(stream: Any) -> Any:
    begin = stream.tell()
    stream.read(1)  # the opening '<'
    parts: list[bytes] = []
    while True:
        chunk = stream.read(_CHUNK)
        end = chunk.find(b">")
        if not chunk or b"%" in (chunk if end < 0 else chunk[:end]):
            stream.seek(begin)  # truncated, or a comment: pyHanko's reader decides
            return _original(stream)
        if end >= 0:
            parts.append(chunk[:end])
            break
        parts.append(chunk)
    body = b"".join(parts)
    stream.seek(begin + 1 + len(body) + 1)  # just past the closing '>'
    # bytes.translate and unhexlify's own check: a regex substitution and a full match over
    # a 32 KB /Contents took 270 and 45 us, these two 18 and 11 us
    digits = body.translate(None, _WHITESPACE)
    if len(digits) % 2:
        digits += b"0"
    try:
        return generic.pdf_string(binascii.unhexlify(digits))
    except binascii.Error:
        bad = next(c for c in digits if c not in b"0123456789abcdefABCDEF")
        raise PdfStreamError("Unexpected token in hex string: " + repr(bytes([bad]))) from None


def install() -> None:
    generic.read_hex_string_from_stream = read_hex_string_from_stream
