"""Seals the event log's hash chain shortly after events are written (see store.events)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from gateway.eventlog.chainkey import write_witness
from gateway.runner import Runner
from store.db import Database
from store.events import SEAL_LIMIT, checkpoint, seal_events

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
        # Whether events sealed here (or before this start) may lack a checkpoint, and when
        # this sealer last wrote one.
        self._unchecked = True
        self._written: float | None = None

    async def seal_now(self, checkpoint_interval: float = 10.0) -> int:
        """Seal everything unsealed now, in rounds of `SEAL_LIMIT`, then checkpoint the head if
        one is due. A round that seals fewer than the limit has found every event committed
        by then, so no empty round follows it; and a checkpoint is asked for only while this
        sealer has sealed events since its last one, and no sooner than `checkpoint_interval`
        after it (the database would refuse it as too young): when idle, one short
        transaction a second instead of three."""
        total = 0
        while True:
            async with self.db.transaction() as s:
                n = await seal_events(s, SEAL_LIMIT)
            total += n
            if n < SEAL_LIMIT:
                break
        self._unchecked = self._unchecked or total > 0
        now = time.monotonic()
        if (
            self.chain_key is not None
            and self._unchecked
            and (self._written is None or now - self._written >= checkpoint_interval)
        ):
            async with self.db.transaction() as s:
                cp = await checkpoint(s, self.chain_key, checkpoint_interval)
            if cp is not None:
                self._written, self._unchecked = now, False
                if self.witness is not None:
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
