"""Seals the event log's hash chain shortly after events are written (see store.events)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from gateway.runner import Runner
from store.db import Database
from store.events import seal_events

log = logging.getLogger("edocgw.sealer")


class EventSealer(Runner[None]):
    name = "event-sealer"

    def __init__(self, db: Database, interval: float = 1.0) -> None:
        super().__init__()
        self.db = db
        self.poll_interval = interval
        self.backoff_initial = interval
        self.backoff_max = max(interval, 30.0)

    async def seal_now(self) -> int:
        total = 0
        while True:
            async with self.db.transaction() as s:
                n = await seal_events(s)
            total += n
            if n == 0:
                return total

    async def claim(self, worker: str) -> Sequence[None]:
        await self.seal_now()
        return ()

    async def failed(self, worker: str, error: BaseException, wait: float) -> None:
        log.warning("sealing the event log failed; will retry", extra={"error": str(error)})

    async def teardown(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.seal_now(), 10)
