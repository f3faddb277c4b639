"""Faster PDF token reading, installed into pyHanko: token ends and names found by search.

pyHanko reads every token up to the next delimiter one byte per generator step and builds
every `/Name` one byte at a time through a BytesIO. Verifying a small signed PDF reads some
60 such tokens (the xref, the catalog, the AcroForm, the signature dictionary), nearly 400
generator steps; with cProfile that was about a fifth of the verification (0.65 ms of 3.1).
Here the end of a token is found with one regex search over a slice of the stream, and a
plain ASCII name is decoded in one call. Results, the stream's position afterwards and
errors are pyHanko's own; a stream that is not a BytesIO, or a name with a `#` escape or a
byte outside plain ASCII, goes to pyHanko's own code, so its edge cases stay as they were.
(Skipping whitespace one byte at a time stays: a run is one or two bytes, and a search costs
as much as pyHanko's loop there.)
"""

from __future__ import annotations

import io
import re
from typing import Any

from pyhanko.pdf_utils import generic, misc

_original_until_class = misc._read_until_class
_original_decode_name = generic._decode_name
_CHUNK = 128  # a token is short: a name, a number, a keyword
_FINDERS: dict[bytes, re.Pattern[bytes]] = {}
# A name whose bytes pyHanko takes as they are: printable ASCII, no '#', no delimiter
# (whitespace is below 0x21 already). Anything else takes pyHanko's own path.
_PLAIN_NAME = re.compile(rb"[!-~]*")
_NOT_PLAIN = re.compile(rb"[#()<>\[\]{}/%]")


def _finder(class_chars: bytes) -> re.Pattern[bytes]:
    found = _FINDERS.get(class_chars)
    if found is None:
        found = _FINDERS[class_chars] = re.compile(
            b"[" + b"".join(re.escape(bytes([c])) for c in class_chars) + b"]"
        )
    return found


def read_until_class(class_chars: bytes, stream: Any, maxchars: int | None = None) -> Any:
    """pyHanko's `_read_until_class`: the bytes before the first of *class_chars* (which is
    consumed), and whether the stream ended first; at most *maxchars* bytes when given."""
    if (
        type(stream) is not io.BytesIO
        or not class_chars
        or (maxchars is not None and maxchars <= 0)
    ):
        return _original_until_class(class_chars, stream, maxchars=maxchars)
    finder = _finder(class_chars)
    start = stream.tell()
    parts: list[bytes] = []
    left = maxchars
    while True:
        size = _CHUNK if left is None else min(_CHUNK, left)
        chunk = stream.read(size)
        hit = finder.search(chunk)
        if hit is not None:  # the stop byte is consumed: the stream stands just past it
            i = hit.start()
            stream.seek(start + i + 1)
            return (b"".join(parts) + chunk[:i] if parts else chunk[:i]), False
        parts.append(chunk)
        start += len(chunk)
        if len(chunk) < size:  # the stream ended
            return b"".join(parts), True
        if left is not None:
            left -= len(chunk)
            if left <= 0:  # read maxchars bytes, none of them a stop
                return b"".join(parts), False


def decode_name(name_bytes: bytes) -> Any:
    """pyHanko's `_decode_name` (a name's bytes after the `/`), in one call when plain."""
    if _PLAIN_NAME.fullmatch(name_bytes) and not _NOT_PLAIN.search(name_bytes):
        return generic.NameObject("/" + name_bytes.decode("ascii"))
    return _original_decode_name(name_bytes)


def install() -> None:
    misc._read_until_class = read_until_class
    generic._decode_name = decode_name
