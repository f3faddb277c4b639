"""Seals the event log's hash chain shortly after events are written (see store.events)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from gateway.eventlog.chainkey import write_witness
from store.db import Database
from store.events import checkpoint, seal_events

log = logging.getLogger("edocgw.sealer")


class EventSealer:
    name = "event-sealer"

    def __init__(
        self,
        db: Database,
        interval: float = 1.0,
        chain_key: bytes | None = None,
        witness: Path | None = None,
    ) -> None:
        self.db = db
        self.interval = interval
        self.chain_key = chain_key  # signs checkpoints of the chain head (store.events)
        self.witness = witness  # the newest checkpoint, also kept outside the database
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def seal_now(self, checkpoint_interval: float = 10.0) -> int:
        total = 0
        while True:
            async with self.db.transaction() as s:
                n = await seal_events(s)
            total += n
            if n == 0:
                break
        if self.chain_key is not None:
            async with self.db.transaction() as s:
                cp = await checkpoint(s, self.chain_key, checkpoint_interval)
            if cp is not None and self.witness is not None:
                await asyncio.to_thread(write_witness, self.witness, cp)
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
            await asyncio.wait_for(self.seal_now(checkpoint_interval=0), 10)
