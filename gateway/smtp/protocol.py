"""aiosmtpd's SMTP protocol with the gateway's changes: fast DATA, limits, clear replies.

Changes to stock aiosmtpd 1.4.6, each for a reason:
- DATA goes through `fastdata.read_data` (chunked reads; same end-of-data rules) and has its own
  timeout (`data_timeout`) instead of the idle timer that would cut off a long upload.
- Connection limits (total and per IP) are checked when a connection arrives: `421` and close.
- A timed-out session gets `421 4.4.2` before the close, instead of a silent hang-up.
- `MAIL FROM ... SIZE=n` above the limit and an oversized body both answer `552 5.3.4`.
- A trailing dot on a domain (`user@example.gov.vn.`) is accepted and dropped, not `553`.
- On shutdown, idle sessions get `421 4.3.2` and sessions in DATA may finish first.
- Setting up a session no longer lists every member of the protocol and handler objects
  (`_AuthMembersOnly` below).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import MutableSet
from typing import Any

import aiosmtpd.smtp
from aiosmtpd.smtp import SMTP, syntax

from gateway import metrics
from gateway.smtp.authlimit import ConnectionLimiter
from gateway.smtp.fastdata import MemoryBudget, read_data

_SIZE_PARAM = re.compile(r"(?:^|\s)SIZE=(\d+)", re.IGNORECASE)
_ANGLE_TRAILING_DOT = re.compile(r"^(\s*<[^>]*@[^>]*?)\.>(.*)$", re.DOTALL)
_BARE_TRAILING_DOT = re.compile(r"^(\s*[^<\s]*@\S*?)\.(\s.*)?$", re.DOTALL)
# `<dot-atom@host.name>`: what nearly every MAIL and RCPT carries. The email package's RFC 5322
# parser is a fifth of the listener's CPU per message at 1 KB; this shape it would return as is.
_ATOM = r"[A-Za-z0-9_+=\-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
_PLAIN_ANGLE = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*)>[ \t]*")

TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
NO_ROOM = "452 4.3.1 Insufficient system storage: too much mail in transit, try again later"


class _AuthMembersOnly:
    """Stands in for the `inspect` module inside aiosmtpd.smtp.

    For every connection, SMTP.__init__ calls `inspect.getmembers()` on the protocol object and
    on the handler only to keep the members named `auth_*`: 55 of the 70 us a session costs to
    set up, a tenth of the listener's CPU per message at 1 KB (one message per connection is
    the usual pattern). This returns just those members, their names cached per class, so that
    loop builds the same table (tests/smtp/test_smtp_addresses.py compares the two)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(inspect, name)

    @staticmethod
    def getmembers(obj: object, predicate: Any = None) -> list[tuple[str, Any]]:
        if predicate is not None:
            return inspect.getmembers(obj, predicate)
        names = _auth_names(type(obj))
        extra = [k for k in getattr(obj, "__dict__", {}) if k.startswith("auth_")]
        return [(n, getattr(obj, n)) for n in sorted({*names, *extra})]


_AUTH_NAMES: dict[type, tuple[str, ...]] = {}


def _auth_names(cls: type) -> tuple[str, ...]:
    names = _AUTH_NAMES.get(cls)
    if names is None:
        names = _AUTH_NAMES[cls] = tuple(n for n in dir(cls) if n.startswith("auth_"))
    return names


aiosmtpd.smtp.inspect = _AuthMembersOnly()  # type: ignore[assignment]


def peer_ip(peer: Any) -> str:
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "")


class GatewaySMTP(SMTP):
    # The StreamReader's buffer limit. aiosmtpd uses 1001, which pauses the socket every 2 KB
    # of DATA; commands are still capped by command_size_limit (512) with a 500 reply.
    line_length_limit = 64 * 1024

    def __init__(
        self,
        handler: Any,
        *,
        limiter: ConnectionLimiter,
        sessions: MutableSet[GatewaySMTP],
        data_timeout: float,
        budget: MemoryBudget | None = None,
        **kwargs: Any,
    ) -> None:
        self._budget = budget
        self._limiter = limiter
        self._sessions = sessions
        self._data_timeout = data_timeout
        self._admitted_ip: str | None = None
        self._counted_per_ip = False
        self._refused = False
        self.busy = False  # inside DATA: reading, committing or answering
        self.stopping = False
        super().__init__(handler, **kwargs)

    # -- connection limits -------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        if self._original_transport is None and self._admitted_ip is None:
            ip = peer_ip(transport.get_extra_info("peername"))
            refusal, self._counted_per_ip = self._limiter.admit(ip)
            if refusal is not None:
                self._refused = True
                transport.write(refusal.encode() + b"\r\n")
                transport.close()
                return
            self._admitted_ip = ip
            self._sessions.add(self)
            metrics.connection_opened(self.event_handler.listener)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._admitted_ip is not None:
            self._limiter.release(self._admitted_ip, self._counted_per_ip)
            self._admitted_ip = None
            self._sessions.discard(self)
            metrics.connection_closed(self.event_handler.listener)
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        if self._refused:
            return False
        return super().eof_received()

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:
        await super().smtp_AUTH(arg)
        if self.session is not None and self.session.authenticated and self._counted_per_ip:
            assert self._admitted_ip is not None
            self._limiter.forgive(self._admitted_ip)
            self._counted_per_ip = False

    def _say_and_close(self, reply: str) -> None:
        t: Any = self.transport
        if t is not None and not t.is_closing():
            t.write(reply.encode() + b"\r\n")
            t.close()

    def _timeout_cb(self) -> None:
        self._say_and_close(f"421 4.4.2 {self.hostname} Error: timeout exceeded")
        super()._timeout_cb()

    def shutdown(self) -> None:
        """Say goodbye (421) and close; used when the service stops."""
        self._say_and_close(f"421 4.3.2 {self.hostname} Service shutting down")

    # -- commands ------------------------------------------------------------------------------

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        plain = _PLAIN_ANGLE.match(arg)
        if plain and not arg.startswith("(", plain.end()):  # a comment: the full parser's job
            address = plain.group(1)
            if not self.local_part_limit or address.index("@") <= self.local_part_limit:
                return address, arg[plain.end() :]
        address, rest = self._parse_addr(arg)
        if address is None:
            fixed = _ANGLE_TRAILING_DOT.sub(r"\1>\2", arg, count=1)
            if fixed == arg:
                fixed = _BARE_TRAILING_DOT.sub(lambda m: m.group(1) + (m.group(2) or ""), arg)
            if fixed != arg:
                address, rest = self._parse_addr(fixed)
        return address, rest

    def _parse_addr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's parser, which raises IndexError on some truncated input (`<`, `<a@`, a
        lone quote): that is a malformed address (553), not a server error (451)."""
        try:
            return super()._getaddr(arg)
        except (IndexError, ValueError):
            return None, None

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        if self.stopping:
            self.shutdown()
            return
        if arg and self.data_size_limit:
            m = _SIZE_PARAM.search(arg)
            if m and int(m.group(1)) > self.data_size_limit:
                await self.push(TOO_BIG)
                return
        await super().smtp_MAIL(arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        self.busy = True
        try:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            self._reset_timeout(self._data_timeout)
            try:
                result = await read_data(self._reader, self.data_size_limit, self._budget)
            except ConnectionResetError:
                if self.transport is not None:
                    self.transport.close()
                return
            self._reset_timeout()
            if result.content is None:
                self._set_post_data_state()
                await self.push(NO_ROOM if result.no_room else TOO_BIG)
                return
            self.envelope.content = result.content
            self.envelope.original_content = result.content
            try:
                status = await self._call_handler_hook("DATA")
            finally:
                if self._budget is not None:
                    self._budget.give_back(result.held)
            self._set_post_data_state()
            await self.push(status)
        finally:
            self.busy = False
