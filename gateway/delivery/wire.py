"""DATA without whole-message copies: the body goes out in slices, normalised as it goes.

aiosmtplib's `data()` rewrites the whole message into CRLF lines with one regex pass (which
also builds a list of every line), dot-stuffs it with another and appends the end marker:
about 4.7 times a 63 MB message at once, measured (bench/memory.py). Here each slice of about
1 MiB, cut just after a line feed, gets exactly the same treatment (bare CR or LF becomes CRLF,
a line's leading dot is doubled) and is written once the transport has room, so only a slice
is copied at a time. This follows aiosmtplib 5's own `execute_data_command` (its command lock,
`_response_pending` and `_drain_helper`); with a protocol lacking those, `data()` is used.

An outgoing message may be `Outgoing` pieces (the DKIM signature, the trace headers, the
stored bytes) sent one after another: joining them would copy the whole message once more.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import aiosmtplib

SLICE = 1 << 20
GROUP = 256 * 1024  # pieces up to this size together go in one write
TINY = len(b"\r\n.\r\n")  # a piece this small (the end marker) goes with the one before


class Outgoing:
    """A message as pieces that each start a line, sent one after another."""

    __slots__ = ("pieces",)

    def __init__(self, *pieces: bytes) -> None:
        self.pieces = tuple(p for p in pieces if p)

    def __len__(self) -> int:
        return sum(len(p) for p in self.pieces)

    def __bytes__(self) -> bytes:
        return b"".join(self.pieces)

    def isascii(self) -> bool:
        return all(p.isascii() for p in self.pieces)

    def prepend(self, head: bytes) -> Outgoing:
        return Outgoing(head, *self.pieces)


Data = bytes | Outgoing
_EOL = re.compile(rb"\r\n|\n|\r(?!\n)")  # aiosmtplib's LINE_ENDINGS_REGEX
_DOT = re.compile(rb"(?m)^\.")  # aiosmtplib's PERIOD_REGEX
_LONE_CR = re.compile(rb"\r(?!\n)")
_LINE_DOT = re.compile(rb"\n\.")


def wire_slices(data: Data, size: int = SLICE) -> Iterator[bytes]:
    """`data` as DATA sends it: CRLF line ends, leading dots doubled, a final CRLF if missing,
    then the `.` line. Joined, the same bytes as aiosmtplib's normalisation of `data`."""
    ends_crlf = False
    for piece in data.pieces if isinstance(data, Outgoing) else (data,):
        for out in _normalised(piece, size):
            ends_crlf = out.endswith(b"\r\n")
            yield out
    yield b".\r\n" if ends_crlf else b"\r\n.\r\n"


def _normalised(data: bytes, size: int) -> Iterator[bytes]:
    start = 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + size) + 1
        if end <= start:  # no LF in this slice: take the line whole
            end = data.find(b"\n", start + size) + 1 or len(data)
        # Every slice starts a line, so `^` at its start is right; a CR is never the last
        # byte of a slice but the message's, so `\r(?!\n)` sees what follows it.
        yield _wire_form(data[start:end])
        start = end


def _wire_form(chunk: bytes) -> bytes:
    """*chunk* with CRLF line ends and leading dots doubled. Mail from the store is CRLF
    already and rarely has a line starting with a dot: quick scans find that, and the two
    rewriting passes (a new copy each) run only when something needs changing. Every CR
    followed by an LF and as many CRs as LFs means every line end is CRLF; the scans are
    one-byte counts and regexes led by one literal byte, faster than searching for two-byte
    strings (0.61 -> 0.34 ms for the bench's 200 KB message)."""
    if chunk.count(b"\r") != chunk.count(b"\n") or _LONE_CR.search(chunk):
        chunk = _EOL.sub(b"\r\n", chunk)
    if chunk.startswith(b".") or _LINE_DOT.search(chunk):
        chunk = _DOT.sub(b"..", chunk)
    return chunk


async def send_data(
    client: aiosmtplib.SMTP,
    data: Data,
    timeout: float,  # noqa: ASYNC109 (per wait, as aiosmtplib)
) -> aiosmtplib.SMTPResponse:
    """DATA, the message in slices, and the server's reply to it. Raises as `client.data()`
    does (SMTPDataError on a reply other than 354 / 250); a stalled write times out after
    `timeout` seconds like a reply would."""
    proto = client.protocol
    lock = getattr(proto, "_command_lock", None)
    if (
        lock is None
        or not hasattr(proto, "_drain_helper")
        or not hasattr(proto, "_response_pending")
    ):
        return await client.data(bytes(data), timeout=timeout)
    assert proto is not None
    async with lock:
        proto._response_pending = True
        proto.write(b"DATA\r\n")
        start = await proto.read_response(timeout=timeout)
        if start.code != 354:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        proto._response_pending = True
        await send_message(proto, data, timeout)
        response = await proto.read_response(timeout=timeout)
        if response.code != 250:
            raise aiosmtplib.SMTPDataError(response.code, response.message)
    return response


async def send_message(proto: Any, data: Data, timeout: float) -> None:  # noqa: ASYNC109
    """The message and the end marker, after the server's 354 (the reply is the caller's:
    `send_data` reads it through aiosmtplib, a pipelined transaction through its own
    reader)."""
    batch: list[bytes] = []
    held = 0
    for piece in wire_slices(data):
        if batch and held + len(piece) > GROUP and len(piece) > TINY:
            await _write(proto, batch, timeout)
            batch, held = [], 0
        batch.append(piece)
        held += len(piece)
    await _write(proto, batch, timeout)


async def _write(proto: Any, pieces: list[bytes], timeout: float) -> None:  # noqa: ASYNC109
    """*pieces* in one write (one writev on uvloop), then wait until the transport has room.
    Pieces are grouped up to `GROUP` bytes, and the end marker always goes with the last:
    a letter's trace headers, its stored bytes and the end marker go out in one system call
    instead of three; each costs a loopback round of the kernel's TCP path on both sides
    (about 40 us here, measured with py-spy). The 1 MiB slices of a big message still go one
    at a time: grouped up to a slice, the worker's peak for a 63 MB message rose by 10-17 MB
    (bench/memory.py)."""
    transport = proto.transport
    if transport is None or transport.is_closing():
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    transport.writelines(pieces)
    try:
        await asyncio.wait_for(proto._drain_helper(), timeout)
    except TimeoutError:
        raise aiosmtplib.SMTPTimeoutError("timed out sending the message") from None
