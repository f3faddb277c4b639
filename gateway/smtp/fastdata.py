"""The fast DATA path: large reads up to the end-of-data marker, dot-unstuffing in one pass.

Stock aiosmtpd 1.4.6 reads DATA line by line (a StreamReader round per line), which halves its
speed on 200 KB messages. Here the body is read in chunks of up to 256 KB and searched for the
marker with `bytearray.find`, which runs in C. The smuggling protections of aiosmtpd 1.4.5+
are kept by using exactly its notion of a line: only CRLF ends a line, so the data ends only at
`<CRLF>.<CRLF>` (or `.<CRLF>` as the very first line). A bare LF, `<LF>.<LF>`, `<LF>.<CRLF>` or
`<CRLF>.<LF>` is ordinary content and never ends or splits a message. Dots are unstuffed at the
start of CRLF-delimited lines only, as aiosmtpd does. Lines longer than 1000 octets are kept
as received (no 500), so a message is stored byte for byte.

The size limit is enforced while reading: past it, the body is discarded as it streams in (only
the last four bytes are kept to find the marker) and the caller answers 552 after the marker.
A `MemoryBudget` shared by all sessions bounds the DATA bytes held at once: a session that
would exceed it discards its body the same way and the caller answers 452 (try later).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

END = b"\r\n.\r\n"
CHUNK = 256 * 1024


class MemoryBudget:
    """Octets of DATA all sessions may hold at once (aiosmtpd keeps a message in memory)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def give_back(self, n: int) -> None:
        self.used = max(0, self.used - n)


@dataclass
class DataResult:
    content: bytes | None  # the unstuffed message; None when it was too big or had no room
    received: int  # octets received before the end marker (dot-stuffed)
    held: int = 0  # octets taken from the budget: give them back when done with `content`
    no_room: bool = False  # the memory budget was exhausted

    @property
    def too_big(self) -> bool:
        return self.content is None and not self.no_room


async def read_data(
    reader: asyncio.StreamReader, limit: int | None, budget: MemoryBudget | None = None
) -> DataResult:
    """Read the DATA body up to the end marker; what follows the marker is left in `reader`.

    Raises ConnectionResetError when the client goes away before the marker (the budget
    taken so far is given back first).
    """
    # A virtual CRLF in front (the one ending the DATA command) lets one search find both
    # the `.<CRLF>` first line and every later `<CRLF>.<CRLF>`.
    buf = bytearray(b"\r\n")
    start = 0
    deleted = 0  # octets dropped from the front of buf once over the limit
    over = False
    no_room = False
    held = 0
    while True:
        i = buf.find(END, start)
        if i >= 0:
            break
        # The body so far is at least everything but the virtual CRLF and a partial marker.
        if over or no_room or (limit is not None and deleted + len(buf) - 6 > limit):
            over = over or not no_room
            keep_from = len(buf) - 4  # what could still be the start of the marker
            del buf[:keep_from]
            deleted += keep_from
        start = max(0, len(buf) - 4)
        chunk = await reader.read(CHUNK)
        if not chunk:
            if budget is not None:
                budget.give_back(held)
            raise ConnectionResetError("connection closed during DATA")
        if budget is not None and not (over or no_room):
            if budget.take(len(chunk)):
                held += len(chunk)
            else:
                no_room = True
                budget.give_back(held)
                held = 0
        buf += chunk
    leftover = bytes(buf[i + 5 :])
    if leftover:
        _unread(reader, leftover)
    received = deleted + i
    if no_room:
        return DataResult(None, received, no_room=True)
    if over or (limit is not None and received > limit):
        if budget is not None:
            budget.give_back(held)
        return DataResult(None, received)
    del buf[i + 2 :]  # keep the CRLF that ends the last line
    if buf.find(b"\r\n.") >= 0:
        buf = buf.replace(b"\r\n.", b"\r\n")
    del buf[:2]
    return DataResult(bytes(buf), received, held=held)


def _unread(reader: asyncio.StreamReader, data: bytes) -> None:
    """Put back what the client sent after the marker (a pipelined command, say).

    StreamReader has no public unread; its buffer is a bytearray (aiosmtpd itself clears it on
    STARTTLS the same way).
    """
    reader._buffer[:0] = data  # type: ignore[attr-defined]
