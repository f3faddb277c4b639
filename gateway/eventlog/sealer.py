"""Seals the event log's hash chain shortly after events are written (see store.events)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

from gateway.eventlog.chainkey import write_witness
from gateway.runner import Runner
from store.db import Database
from store.events import checkpoint, seal_events

log = logging.getLogger("edocgw.sealer")


class EventSealer(Runner[None]):
    name = "event-sealer"

    def __init__(
        self,
        db: Database,
        interval: float = 1.0,
        chain_key: bytes | None = None,
        witness: Path | None = None,
    ) -> None:
        super().__init__()
        self.db = db
        self.poll_interval = interval
        self.backoff_initial = interval
        self.backoff_max = max(interval, 30.0)
        self.chain_key = chain_key  # signs checkpoints of the chain head (store.events)
        self.witness = witness  # the newest checkpoint, also kept outside the database

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

    async def claim(self, worker: str) -> Sequence[None]:
        await self.seal_now()
        return ()

    async def failed(self, worker: str, error: BaseException, wait: float) -> None:
        log.warning("sealing the event log failed; will retry", extra={"error": str(error)})

    async def teardown(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.seal_now(checkpoint_interval=0), 10)
