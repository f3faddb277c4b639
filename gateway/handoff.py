"""An accepted message's bytes handed from the SMTP intake to the pipeline, so that the
pipeline's claim does not read them back out of PostgreSQL.

The intake stores each message and, a millisecond later, the pipeline claims it and reads
the same bytes back. For a 200 KB letter that read costs PostgreSQL 0.18-0.28 ms of CPU and
the pipeline's process 0.08-0.10 ms more than a claim without the bytes; handing them over
costs both ends 0.05 ms (bench/handoff.py, three runs). So, before committing a message of
`MIN_SIZE` to `MAX_SIZE` bytes, the intake hands it over: under `serve` with one worker
process (the default) as one frame (its SHA-256, its length, its bytes) on the child's stdin,
which the parent holds open anyway (it carries the settings and tells the child when the
parent is gone); with the pipeline in the intake's own process, in memory. The pipeline keeps
the latest ones (`Handed`), and its claim leaves out the bytes of the messages whose SHA-256
it holds.

The database stays the record. A copy that is dropped (more than `BACKLOG` waiting unread,
the child restarting), evicted, or never sent (several worker processes, another instance)
only means the claim reads the bytes as before. Keyed by content, so a copy is right for
whichever row it serves; one for a message whose commit failed is simply never used.
"""

from __future__ import annotations

import asyncio
import struct

from gateway.pipeline.claimsize import INLINE_MAX
from gateway.recentraw import MIN_SIZE as RECENT_MIN_SIZE
from gateway.recentraw import BytesLRU

MIN_SIZE = RECENT_MIN_SIZE  # smaller ones cost the claim little: not worth a copy
MAX_SIZE = INLINE_MAX  # bigger ones the pipeline reads alone, a slice at a time
MAX_BYTES = 16 * 1024 * 1024
# The claim sends the held digests to PostgreSQL: keep the list short. A pipeline that keeps
# up holds a few; one that is behind claims the oldest first, for which the newest are no use.
MAX_ITEMS = 64
BACKLOG = 4 * 1024 * 1024  # unread frames beyond this in the parent's pipe buffer: drop
HEADER = struct.Struct("!32sI")  # SHA-256 digest, length


def offer(writer: asyncio.StreamWriter, sha256: str, raw: bytes) -> bool:
    """Write *raw* as one frame to the child's stdin *writer*, unless the size is outside the
    bounds or `BACKLOG` bytes wait unread already. Never waits: the transport buffers what
    the pipe does not take at once. True when written."""
    transport = writer.transport
    if (
        not MIN_SIZE <= len(raw) <= MAX_SIZE
        or transport.is_closing()
        or transport.get_write_buffer_size() > BACKLOG
    ):
        return False
    writer.writelines((HEADER.pack(bytes.fromhex(sha256), len(raw)), raw))
    return True


class Handed(BytesLRU[str]):
    """What the intake handed the pipeline: SHA-256 (hex) → bytes, the oldest dropped first.
    `put` is the hand-off itself when the pipeline runs in the intake's process; the claim
    `pop`s what it used (the pipeline keeps it for its delivery from then on)."""

    def __init__(self, *, max_bytes: int = MAX_BYTES, max_items: int = MAX_ITEMS) -> None:
        super().__init__(
            min_size=MIN_SIZE, max_item=MAX_SIZE, max_bytes=max_bytes, max_items=max_items
        )


class FrameReader(asyncio.Protocol):
    """The child's end of its stdin: frames into *handed*; *closed* is set when the parent
    closes the pipe or is gone (the child then stops)."""

    def __init__(self, handed: Handed, closed: asyncio.Event) -> None:
        self.handed = handed
        self.closed = closed
        self._buf = bytearray()
        self._need = HEADER.size
        self._digest: bytes | None = None
        self._lost = False  # out of step with the frames: the rest is ignored

    def data_received(self, data: bytes) -> None:
        if self._lost:
            return
        self._buf += data
        while len(self._buf) >= self._need:
            if self._digest is None:
                self._digest, size = HEADER.unpack_from(self._buf)
                del self._buf[: HEADER.size]
                if size > MAX_SIZE:  # not a frame the parent writes
                    self._lost = True
                    self._buf.clear()
                    return
                self._need = size
            else:
                with memoryview(self._buf) as view:  # one copy, not a slice and a copy
                    raw = bytes(view[: self._need])
                del self._buf[: self._need]
                self.handed.put(self._digest.hex(), raw)
                self._digest, self._need = None, HEADER.size

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
