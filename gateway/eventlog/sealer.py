"""Seals the event log's hash chain shortly after events are written (see store.events)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from store.db import Database
from store.events import seal_events

log = logging.getLogger("edocgw.sealer")


class EventSealer:
    name = "event-sealer"

    def __init__(self, db: Database, interval: float = 1.0) -> None:
        self.db = db
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def seal_now(self) -> int:
        total = 0
        while True:
            async with self.db.transaction() as s:
                n = await seal_events(s)
            total += n
            if n == 0:
                return total

    async def _run(self) -> None:
        while True:
            try:
                await self.seal_now()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("sealing the event log failed; will retry", extra={"error": str(e)})
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.seal_now(), 10)
