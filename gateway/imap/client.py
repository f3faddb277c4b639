"""One IMAP connection over aioimaplib, with the guards aioimaplib leaves to its callers.

aioimaplib does not fail pending commands when the connection drops, so a lost server can
leave IDLE (or any command) waiting forever. Every command here races against the
connection-lost callback and a timeout, and any failure raises `ImapError` with a one-line
reason; the caller then throws the connection away and reconnects. STARTTLS (which aioimaplib
lacks) upgrades the transport in place and never falls back to plain text.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from aioimaplib import aioimaplib as aio

from config.settings import ImapAccount
from gateway.imap.utf7 import mailbox_arg, quote

T = TypeVar("T")

KEYWORD = "$Edocgw"
# A fetch may take the command timeout plus one second per this many bytes.
MIN_FETCH_RATE = 256 * 1024


class ImapError(Exception):
    """A failed IMAP step, with a reason fit for one log line."""


@dataclass
class Mailbox:
    uidvalidity: int
    uidnext: int | None
    exists: int | None


def tls_context(account: ImapAccount) -> ssl.SSLContext:
    """System CAs plus `ca_file`; no verification only when `verify_tls = false`."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if account.ca_file:
        ctx.load_verify_locations(cafile=account.ca_file)
    if not account.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def describe(exc: BaseException) -> str:
    """One line for a log or a status page, never a traceback."""
    if isinstance(exc, ImapError):
        return str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"host not found: {exc}"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _text(resp: aio.Response) -> str:
    last = resp.lines[-1] if resp.lines else b""
    return bytes(last).decode("utf-8", "replace") if isinstance(last, bytes | bytearray) else ""


class ImapConnection:
    """Connect, log in, select; then UID-based search, fetch, flag, move, delete and IDLE."""

    def __init__(self, account: ImapAccount, password: str, timeout: float) -> None:
        self.account = account
        self.password = password
        self.timeout = timeout
        self.lost = asyncio.Event()
        self.broken = False  # a command timed out or failed midway: no LOGOUT, just drop it
        self._client: aio.IMAP4 | None = None

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def proto(self) -> aio.IMAP4ClientProtocol:
        if self._client is None:
            raise ImapError("not connected")
        return self._client.protocol

    def _on_lost(self, exc: Exception | None) -> None:
        self.lost.set()

    async def _run(self, aw: Awaitable[T], limit: float | None = None, what: str = "") -> T:
        """Await one command, failing fast when the connection drops or time runs out."""
        limit = self.timeout if limit is None else limit
        task: asyncio.Future[T] = asyncio.ensure_future(aw)
        lost = asyncio.ensure_future(self.lost.wait())
        waiters: set[asyncio.Future[Any]] = {task, lost}
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=limit, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:
            task.cancel()
            self.broken = True
            raise
        finally:
            lost.cancel()
        if task in done:
            try:
                return task.result()
            except ImapError:
                self.broken = True
                raise
            except aio.AioImapException as e:
                self.broken = True
                raise ImapError(f"{what or 'command'} failed: {e or type(e).__name__}") from e
        task.cancel()
        self.broken = True
        if self.lost.is_set():
            raise ImapError(f"connection lost during {what or 'command'}")
        raise ImapError(f"{what or 'command'} timed out after {limit:g}s")

    def has(self, capability: str) -> bool:
        return capability in self.proto.capabilities

    # -- session -------------------------------------------------------------------------------
    async def open(self) -> None:
        a = self.account
        ctx = tls_context(a) if a.tls != "none" else None
        self._client = aio.IMAP4(
            host=a.host,
            port=a.port,
            timeout=self.timeout,
            conn_lost_cb=self._on_lost,
            ssl_context=ctx if a.tls == "implicit" else None,
        )
        await self._run(self._client.wait_hello_from_server(), what="connect")
        self._keepalive()
        if a.tls == "starttls":
            await self._starttls(ctx)  # type: ignore[arg-type]
        if "LOGINDISABLED" in self.proto.capabilities:
            raise ImapError("server refuses LOGIN on this connection (LOGINDISABLED)")
        resp = await self._run(self.proto.login(quote(a.user), self.password), what="login")
        if resp.result != "OK":
            raise ImapError(f"login refused for {a.user}: {_text(resp)}")
        await self._run(self.proto.capability(), what="CAPABILITY")

    async def _starttls(self, ctx: ssl.SSLContext) -> None:
        if "STARTTLS" not in self.proto.capabilities:
            raise ImapError("server does not offer STARTTLS (refusing to log in without TLS)")
        proto = self.proto
        cmd = aio.Command("STARTTLS", proto.new_tag(), loop=proto.loop)
        resp = await self._run(proto.execute(cmd), what="STARTTLS")
        if resp.result != "OK":
            raise ImapError(f"STARTTLS refused: {_text(resp)}")
        loop = asyncio.get_running_loop()
        transport = await self._run(
            loop.start_tls(proto.transport, proto, ctx, server_hostname=self.account.host),
            what="TLS handshake",
        )
        proto.transport = transport
        await self._run(proto.capability(), what="CAPABILITY")

    def _keepalive(self) -> None:
        """TCP keepalive: a server that vanishes without a FIN is noticed even while idle."""
        with contextlib.suppress(Exception):
            sock = self.proto.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 15)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)

    async def select(self, mailbox: str) -> Mailbox:
        resp = await self._run(self.proto.select(mailbox_arg(mailbox)), what="SELECT")
        if resp.result != "OK":
            raise ImapError(f"cannot select {mailbox!r}: {_text(resp)}")
        text = b" ".join(bytes(x) for x in resp.lines)
        v = re.search(rb"\[UIDVALIDITY (\d+)\]", text)
        if not v:
            raise ImapError(f"server gave no UIDVALIDITY for {mailbox!r}")
        nxt = re.search(rb"\[UIDNEXT (\d+)\]", text)
        exists = re.search(rb"(?:^|\s)(\d+) EXISTS", text)
        return Mailbox(
            uidvalidity=int(v.group(1)),
            uidnext=int(nxt.group(1)) if nxt else None,
            exists=int(exists.group(1)) if exists else None,
        )

    async def create(self, mailbox: str) -> None:
        """Create a folder; one that already exists is fine."""
        resp = await self._run(
            self.proto.simple_command("CREATE", mailbox_arg(mailbox)), what="CREATE"
        )
        if resp.result != "OK" and "ALREADYEXISTS" not in _text(resp).upper():
            # Servers without the ALREADYEXISTS code: check that the folder is there.
            st = await self._run(
                self.proto.simple_command("STATUS", mailbox_arg(mailbox), "(UIDVALIDITY)"),
                what="STATUS",
            )
            if st.result != "OK":
                raise ImapError(f"cannot create folder {mailbox!r}: {_text(resp)}")

    async def uid_search(self, *criteria: str) -> list[int]:
        resp = await self._run(
            self.proto.search(*criteria, by_uid=True, charset=None), what="UID SEARCH"
        )
        if resp.result != "OK":
            raise ImapError(f"UID SEARCH failed: {_text(resp)}")
        uids: list[int] = []
        for line in resp.lines[:-1]:
            words = bytes(line).split()
            if words and words[0] == b"SEARCH":
                words = words[1:]
            uids.extend(int(w) for w in words if w.isdigit())
        return sorted(set(uids))

    async def sizes(self, uids: list[int]) -> dict[int, int]:
        """RFC822.SIZE of each UID still in the mailbox (missing ones were expunged)."""
        out: dict[int, int] = {}
        for i in range(0, len(uids), 500):
            chunk = ",".join(str(u) for u in uids[i : i + 500])
            resp = await self._run(
                self.proto.fetch(chunk, "(UID RFC822.SIZE)", by_uid=True), what="UID FETCH SIZE"
            )
            if resp.result != "OK":
                raise ImapError(f"UID FETCH failed: {_text(resp)}")
            for line in resp.lines:
                if not isinstance(line, bytes | bytearray):
                    continue
                u = re.search(rb"UID (\d+)", line)
                s = re.search(rb"RFC822\.SIZE (\d+)", line)
                if u and s:
                    out[int(u.group(1))] = int(s.group(1))
        return out

    async def fetch(self, uid: int, size: int) -> bytes | None:
        """The message exactly as stored (BODY.PEEK: \\Seen is not set); None if it is gone."""
        limit = self.timeout + size / MIN_FETCH_RATE
        resp = await self._run(
            self.proto.fetch(str(uid), "(UID BODY.PEEK[])", by_uid=True),
            limit=limit,
            what=f"UID FETCH {uid}",
        )
        if resp.result != "OK":
            raise ImapError(f"UID FETCH {uid} failed: {_text(resp)}")
        lines: list[Any] = list(resp.lines)
        for i, line in enumerate(lines[:-1]):
            if isinstance(line, bytes) and re.search(rb"BODY\[\] \{\d+\}$", line):
                u = re.search(rb"UID (\d+)", line)
                if u and int(u.group(1)) != uid:
                    continue
                body = lines[i + 1]
                if isinstance(body, bytes | bytearray):
                    return bytes(body)
        return None

    async def _ok(self, aw: Awaitable[aio.Response], what: str) -> None:
        resp = await self._run(aw, what=what)
        if resp.result != "OK":
            raise ImapError(f"{what} failed: {_text(resp)}")

    async def flag(self, uid: int) -> None:
        await self._ok(
            self.proto.store(str(uid), "+FLAGS.SILENT", f"(\\Seen {KEYWORD})", by_uid=True),
            "UID STORE",
        )

    async def _expunge(self, uid: int) -> None:
        if self.has("UIDPLUS"):
            await self._ok(self.proto.expunge(str(uid), by_uid=True), "UID EXPUNGE")
        else:
            await self._ok(self.proto.expunge(), "EXPUNGE")

    async def delete(self, uid: int) -> None:
        await self._ok(
            self.proto.store(str(uid), "+FLAGS.SILENT", "(\\Deleted)", by_uid=True), "UID STORE"
        )
        await self._expunge(uid)

    async def move(self, uid: int, folder: str) -> None:
        """MOVE when offered, else COPY + \\Deleted + EXPUNGE (the copy lands first)."""
        target = mailbox_arg(folder)
        if self.has("MOVE"):
            await self._ok(self.proto.move(str(uid), target, by_uid=True), "UID MOVE")
            return
        await self._ok(self.proto.copy(str(uid), target, by_uid=True), "UID COPY")
        await self.delete(uid)

    async def idle(self, renew: float, stop: asyncio.Event) -> bool:
        """IDLE until the server reports new mail, `renew` seconds pass, or `stop` is set.

        Returns True when new mail was announced. The watchdog: the connection-lost event
        ends the wait at once, and DONE must be answered within the command timeout.
        """
        proto = self.proto
        while not proto.idle_queue.empty():  # pushes left over from an earlier IDLE
            proto.idle_queue.get_nowait()
        idle = asyncio.ensure_future(proto.idle())
        ack = asyncio.ensure_future(proto.wait_for_idle_response())
        try:
            await self._run(
                asyncio.wait({idle, ack}, return_when=asyncio.FIRST_COMPLETED), what="IDLE"
            )
        except BaseException:
            idle.cancel()
            raise
        finally:
            ack.cancel()
        if idle.done():  # the server answered IDLE with a tagged NO/BAD instead of "+"
            exc = None if idle.cancelled() else idle.exception()
            reason = describe(exc) if exc else _text(idle.result())
            raise ImapError(f"IDLE refused: {reason}")
        new_mail = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + renew
        stopping = asyncio.ensure_future(stop.wait())
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            while not new_mail:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                push = asyncio.ensure_future(proto.idle_queue.get())
                done, _ = await asyncio.wait(
                    {push, stopping, lost, idle},
                    timeout=remaining,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if push not in done:
                    push.cancel()
                    if lost in done or idle in done:
                        raise ImapError("connection lost during IDLE")
                    break  # stop requested or time to renew
                lines = push.result()
                if lines == aio.STOP_WAIT_SERVER_PUSH:
                    continue
                new_mail = any(re.search(rb"\d+ (EXISTS|RECENT)", bytes(x)) for x in lines)
                if any(bytes(x).startswith(b"BYE") for x in lines):
                    raise ImapError("server said BYE during IDLE")
        except BaseException:
            idle.cancel()
            raise
        finally:
            stopping.cancel()
            lost.cancel()
        proto.idle_done()
        resp = await self._run(idle, what="IDLE DONE")
        if resp.result != "OK":
            raise ImapError(f"IDLE ended badly: {_text(resp)}")
        return new_mail

    async def wait(self, seconds: float, stop: asyncio.Event) -> None:
        """Sleep between polls; a dropped connection ends the sleep with ImapError."""
        stopping = asyncio.ensure_future(stop.wait())
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait(
                {stopping, lost}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopping.cancel()
            lost.cancel()
        if self.lost.is_set() and not stop.is_set():
            raise ImapError("connection lost")

    async def close(self, grace: float = 5.0) -> None:
        """LOGOUT with a timeout, then drop the transport whatever happened."""
        client, self._client = self._client, None
        if client is None:
            return
        proto = client.protocol
        try:
            usable = not self.lost.is_set() and not self.broken
            if usable and proto.state in (aio.AUTH, aio.SELECTED, aio.NONAUTH):
                if proto.has_pending_idle_command():
                    proto.idle_done()
                await asyncio.wait_for(proto.logout(), grace)
        except Exception:
            pass  # the server is gone or slow: dropping the connection is all that is left
        finally:
            client._client_task.cancel()  # a connect still in progress must not linger
            if proto.transport is not None:
                proto.transport.close()
