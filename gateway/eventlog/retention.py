"""Trims the delivery log's oldest events once they are older than `[logging] retention`.

Only a contiguous prefix of the sealed chain is removed (everything up to the newest sealed
event older than the cut-off), so `edocgw log --verify` still walks an unbroken chain from
the first surviving event. Deleting in batches keeps each transaction short.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

from sqlalchemy import func, select, text

from store.db import Database
from store.models import Event

log = logging.getLogger("edocgw.retention")


async def trim_events(db: Database, retention: dt.timedelta, batch: int = 10_000) -> int:
    """Delete sealed events older than `retention` from the head of the chain."""
    cutoff = dt.datetime.now(dt.UTC) - retention
    async with db.transaction() as s:
        upto = await s.scalar(
            select(func.max(Event.chain_seq)).where(Event.chain_seq.is_not(None), Event.at < cutoff)
        )
    if upto is None:
        return 0
    total = 0
    while True:
        async with db.transaction() as s:
            res = await s.execute(
                text(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events "
                    "WHERE chain_seq <= :upto ORDER BY chain_seq LIMIT :n)"
                ),
                {"upto": upto, "n": batch},
            )
        n = res.rowcount or 0  # type: ignore[attr-defined]
        total += n
        if n < batch:
            return total


class RetentionSweeper:
    name = "retention"

    def __init__(self, db: Database, retention: dt.timedelta, interval: float = 3600.0) -> None:
        self.db = db
        self.retention = retention
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        while True:
            try:
                n = await trim_events(self.db, self.retention)
                if n:
                    log.info(f"removed {n} events older than the retention period")
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("trimming the event log failed; will retry", extra={"error": str(e)})
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
