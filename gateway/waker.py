"""Wake-ups from PostgreSQL LISTEN/NOTIFY, with a slow poll as the fallback.

Workers call `await waker.wait(channel, timeout)`: it returns early when a NOTIFY arrives on
the channel, or after the poll interval anyway, so a lost notification (or a lost LISTEN
connection) only delays work, never strands it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

import asyncpg

log = logging.getLogger("edocgw.notify")


class Waker:
    def __init__(self, dsn: str, channels: Iterable[str]) -> None:
        self._dsn = dsn
        self._events = {c: asyncio.Event() for c in channels}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notify-listener")

    def poke(self, channel: str) -> None:
        self._events[channel].set()

    def take(self, channel: str) -> bool:
        """Whether a NOTIFY (or a poke) for `channel` came since the last wait ended; it is
        taken, as a `wait` that returned for it would have."""
        ev = self._events[channel]
        if not ev.is_set():
            return False
        ev.clear()
        return True

    async def wait(self, channel: str, poll: float) -> None:
        """Return on a NOTIFY for `channel`, or after `poll` seconds at the latest."""
        ev = self._events[channel]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ev.wait(), poll)
        ev.clear()

    async def _run(self) -> None:
        backoff = 0.5
        while not self._stopping:
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for ch in self._events:
                    await conn.add_listener(ch, self._on_notify)
                for ev in self._events.values():
                    ev.set()  # catch up with whatever arrived while not listening
                backoff = 0.5
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the poll keeps work moving meanwhile
                log.warning("LISTEN connection failed; retrying", extra={"error": str(e)})
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 5)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10)

    def _on_notify(self, _conn: object, _pid: int, channel: str, _payload: str) -> None:
        ev = self._events.get(channel)
        if ev is not None:
            ev.set()

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
