"""Reusing one SMTP session for several deliveries to the same next hop.

Opening a session costs a TCP handshake, the greeting, EHLO (twice with STARTTLS) and the
TLS handshake, on both sides; a burst of deliveries to one agency pays that once here.
A session is kept only while other deliveries to its destination are in hand (the caller
says so through `want`/`unwant`), at most `max_idle` per server, for at most `max_uses`
transactions and `idle` seconds, so no connection lingers on a destination between bursts
(Postfix's connection cache keeps one for 2 s the same way). A transaction left open (a refused RCPT) is RSET before the next.
A kept session the server has meanwhile closed costs nothing: when it fails before DATA was
sent, the delivery is tried again at once on a fresh session.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass

import aiosmtplib

from gateway.delivery.smtp import (
    Result,
    Session,
    Target,
    Timeouts,
    TlsContexts,
    open_session,
    transact,
)
from gateway.delivery.wire import Data

_BEFORE_DATA = ("MAIL FROM", "RCPT TO")


@dataclass
class _Idle:
    session: Session
    since: float


class Connections:
    def __init__(self, *, max_uses: int = 100, idle: float = 2.0, max_idle: int = 5) -> None:
        self.max_uses = max_uses
        self.idle = idle
        self.max_idle = max_idle
        self._idle: dict[tuple[Target, str], list[_Idle]] = defaultdict(list)
        self._wanted: dict[str, int] = defaultdict(int)
        self._closing: set[asyncio.Task[None]] = set()
        self.opened = 0  # sessions opened (for tests and metrics)
        self.reused = 0  # transactions on a kept session

    def want(self, destination: str) -> None:
        """A delivery to `destination` is in hand (from its claim until it is recorded)."""
        self._wanted[destination] += 1

    def unwant(self, destination: str) -> None:
        self._wanted[destination] -= 1
        if self._wanted[destination] <= 0:
            del self._wanted[destination]

    async def send(
        self,
        target: Target,
        *,
        mail_from: str,
        recipient: str,
        data: Data,
        helo: str,
        timeouts: Timeouts,
        contexts: TlsContexts,
        destination: str,
    ) -> Result:
        """`smtp.send`, on a kept session when one is ready; never raises (but cancellation).
        `destination` is the key the caller's `want` counts deliveries by."""
        key = (target, helo)
        session = await self._checkout(key, timeouts)
        if session is not None:
            result, ok = await self._run(session, mail_from, recipient, data, timeouts)
            if ok or session.stage not in _BEFORE_DATA:
                await self._checkin(key, session, ok, timeouts, destination)
                self.reused += 1
                return result
            session.client.close()  # closed while kept: nothing was sent, try a fresh one
        opened = await open_session(target, helo=helo, timeouts=timeouts, contexts=contexts)
        if isinstance(opened, Result):
            return opened
        self.opened += 1
        result, ok = await self._run(opened, mail_from, recipient, data, timeouts)
        await self._checkin(key, opened, ok, timeouts, destination)
        return result

    async def _run(
        self, session: Session, mail_from: str, recipient: str, data: Data, timeouts: Timeouts
    ) -> tuple[Result, bool]:
        try:
            return await transact(
                session, mail_from=mail_from, recipient=recipient, data=data, timeouts=timeouts
            )
        except BaseException:
            session.client.close()
            raise

    async def _checkout(self, key: tuple[Target, str], timeouts: Timeouts) -> Session | None:
        kept = self._idle.get(key)
        now = time.monotonic()
        while kept:
            item = kept.pop()
            s = item.session
            if now - item.since >= self.idle or not s.client.is_connected:
                await _close(s, timeouts)
                continue
            if not s.clean:
                try:
                    await s.client.rset(timeout=timeouts.command)
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    s.client.close()
                    continue
                s.clean = True
            return s
        return None

    async def _checkin(
        self,
        key: tuple[Target, str],
        session: Session,
        ok: bool,
        timeouts: Timeouts,
        destination: str,
    ) -> None:
        """Keep `session` when it is healthy and other deliveries to its destination are in
        hand (this one counts itself until its outcome is recorded)."""
        kept = self._idle[key]
        if (
            ok
            and session.uses < self.max_uses
            and self._wanted.get(destination, 0) > 1
            and len(kept) < self.max_idle
        ):
            kept.append(_Idle(session, time.monotonic()))
            asyncio.get_running_loop().call_later(self.idle + 0.05, self._expire, key, timeouts)
            return
        if ok:
            await _close(session, timeouts)
        else:
            session.client.close()

    def _expire(self, key: tuple[Target, str], timeouts: Timeouts) -> None:
        """Close the sessions of `key` kept longer than `idle` (a timer, so none lingers)."""
        kept = self._idle.get(key)
        if not kept:
            return
        limit = time.monotonic() - self.idle
        stale = [i for i in kept if i.since <= limit]
        kept[:] = [i for i in kept if i.since > limit]
        if not kept:
            del self._idle[key]
        for item in stale:
            task = asyncio.get_running_loop().create_task(_close(item.session, timeouts))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self, timeouts: Timeouts) -> None:
        """QUIT every kept session (on stop)."""
        kept = [i.session for items in self._idle.values() for i in items]
        self._idle.clear()
        await asyncio.gather(*(_close(s, timeouts) for s in kept), *self._closing)


async def _close(session: Session, timeouts: Timeouts) -> None:
    try:
        await session.client.quit(timeout=min(timeouts.command, 5))
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        pass
    finally:
        session.client.close()
