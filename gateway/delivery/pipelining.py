"""One mail transaction in two round trips instead of four (RFC 2920 PIPELINING).

When the server offers PIPELINING, MAIL FROM, RCPT TO and DATA go out in one write and their
three replies are read back in order; then the message, and its one reply. Postfix's client
does the same. Over a wide-area link each round trip saved is one network delay per
message; on loopback it is a system call and a wake-up on both sides.

aiosmtplib (5.x) does not pipeline, and its protocol keeps one reply at a time: a second
reply arriving before the first was collected is dropped. So for the transaction the
connection's transport is handed to `_Replies` (`transport.set_protocol`, plain asyncio),
which queues every complete reply, and handed back after. Flow control and the end of the
connection are passed on to aiosmtplib's protocol, so its own writer (`wire.send_message`)
and its view of the connection stay right.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from dataclasses import dataclass
from typing import Any

import aiosmtplib
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import COMMAND_INJECTION_REGEX, MAX_LINE_LENGTH, MAX_RESPONSE_LENGTH

from gateway.delivery.wire import Data, send_message

_PIPELINED_OK = {"MAIL FROM": (250,), "RCPT TO": (250, 251)}
# aiosmtplib's own address check and quoting, kept per address: mail goes out from and to
# the same few agency addresses, and the email package's address parser behind it costs
# more than writing the three commands (a refused address raises, and is not kept).
_quoted = functools.lru_cache(maxsize=1024)(quote_address)


@dataclass(frozen=True)
class Stop:
    """Where a pipelined transaction ended: the stage (as `smtp.transact` names them), the
    server's reply there, and whether the server is left outside any transaction (so the
    session needs no RSET before the next one)."""

    stage: str
    reply: aiosmtplib.SMTPResponse
    clean: bool


def can_pipeline(client: aiosmtplib.SMTP) -> bool:
    """The server offers PIPELINING and the client's protocol is the one this module knows."""
    proto = client.protocol
    return (
        client.supports_extension("pipelining")
        and proto is not None
        and proto.transport is not None
        and hasattr(proto, "_command_lock")
        and hasattr(proto, "_drain_helper")
        and hasattr(proto.transport, "set_protocol")
    )


def command(verb: str, address: str, options: list[str], encoding: str) -> bytes:
    """`MAIL FROM:<a> OPT…` or `RCPT TO:<a>`, checked as aiosmtplib checks its own commands
    (ValueError for an address or option that cannot go on a command line)."""
    line = f"{verb}:{_quoted(address)}".encode(encoding)
    for option in options:
        line += b" " + option.encode("ascii")
    if COMMAND_INJECTION_REGEX.search(line):
        raise ValueError("Command arg contains a prohibited control character")
    return line + b"\r\n"


async def transaction(
    client: aiosmtplib.SMTP,
    mail: bytes,
    rcpt: bytes,
    data: Data,
    timeout: float,  # noqa: ASYNC109 (per reply, as aiosmtplib)
    progress: list[str],
) -> Stop:
    """MAIL, RCPT and DATA in one write, then the message. Returns where it stopped (the end
    of DATA when all went well). `progress[0]` follows the stage being waited for, so a
    timeout or a lost connection (raised as aiosmtplib raises them) can be named."""
    proto = client.protocol
    assert proto is not None and proto.transport is not None
    lock = proto._command_lock
    if lock is None:
        raise aiosmtplib.SMTPServerDisconnected("Server not connected")
    async with lock:
        transport: Any = proto.transport
        replies = _Replies(proto)
        transport.set_protocol(replies)
        try:
            return await _exchange(
                proto, replies, mail + rcpt + b"DATA\r\n", data, timeout, progress
            )
        finally:
            if not transport.is_closing():
                transport.set_protocol(proto)


async def _exchange(
    proto: Any,
    replies: _Replies,
    head: bytes,
    data: Data,
    timeout: float,  # noqa: ASYNC109 (per reply)
    progress: list[str],
) -> Stop:
    proto.write(head)
    got: dict[str, aiosmtplib.SMTPResponse] = {}
    for stage in ("MAIL FROM", "RCPT TO", "end of DATA"):  # the DATA command's reply too
        progress[0] = stage
        got[stage] = reply = await replies.next(timeout)
        if reply.code == 421:  # the server is closing: no further replies will come
            return Stop(stage, reply, clean=False)
    mail, start = got["MAIL FROM"], got["end of DATA"]
    failed = next(
        (s for s in ("MAIL FROM", "RCPT TO") if got[s].code not in _PIPELINED_OK[s]), None
    )
    if failed is not None:
        if start.code == 354:  # DATA was taken all the same: end the empty message
            proto.write(b".\r\n")
            await replies.next(timeout)
            return Stop(failed, got[failed], clean=True)
        # Without DATA the server may still hold the accepted MAIL: RSET before reuse.
        return Stop(failed, got[failed], clean=mail.code not in _PIPELINED_OK["MAIL FROM"])
    if start.code != 354:
        return Stop("end of DATA", start, clean=False)
    progress[0] = "end of DATA"
    await send_message(proto, data, timeout)
    return Stop("end of DATA", await replies.next(timeout), clean=True)


class _Replies(asyncio.Protocol):
    """Collects every complete SMTP reply in order, for one pipelined transaction."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner  # aiosmtplib's protocol, which gets the connection back after
        self.buffer = bytearray()
        self.queue: deque[aiosmtplib.SMTPResponse] = deque()
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None

    async def next(self, timeout: float) -> aiosmtplib.SMTPResponse:  # noqa: ASYNC109
        while not self.queue:
            if self.error is not None:
                raise self.error
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self.waiter, timeout)
            except TimeoutError:
                raise aiosmtplib.SMTPReadTimeoutError(
                    "Timed out waiting for server response"
                ) from None
            finally:
                self.waiter = None
        return self.queue.popleft()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.error is not None:
            return
        self.buffer += data
        try:
            self._parse()
        except aiosmtplib.SMTPResponseException as exc:
            self.error = exc
        if self.error is None and len(self.buffer) > MAX_RESPONSE_LENGTH:
            self.error = aiosmtplib.SMTPResponseException(-1, "Response too long")
        self._wake()

    def _parse(self) -> None:
        """Move every complete reply (its last line has a space, or nothing, after the
        code) from the buffer to the queue."""
        lines: list[bytes] = []
        start = 0
        while (end := self.buffer.find(b"\n", start)) >= 0:
            line = bytes(self.buffer[start : end + 1])
            if len(line) > MAX_LINE_LENGTH:
                raise aiosmtplib.SMTPResponseException(-1, "Response too long")
            code = line[:3]
            if not code.isdigit():
                text = line.decode("utf-8", "replace").strip()
                raise aiosmtplib.SMTPResponseException(-1, f"Malformed SMTP response line: {text}")
            lines.append(line)
            start = end + 1
            if line[3:4] != b"-":
                message = b"\n".join(x[4:].strip(b" \t\r\n") for x in lines)
                self.queue.append(
                    aiosmtplib.SMTPResponse(int(code), message.decode("utf-8", "surrogateescape"))
                )
                del self.buffer[:start]
                lines, start = [], 0

    def eof_received(self) -> bool:
        self.error = self.error or aiosmtplib.SMTPServerDisconnected("Unexpected EOF received")
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        lost = aiosmtplib.SMTPServerDisconnected("Connection lost")
        if exc is not None:
            lost.__cause__ = exc
        self.error = self.error or lost
        self._wake()
        self.inner.connection_lost(exc)  # aiosmtplib learns the connection is gone

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
