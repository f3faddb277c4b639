"""Trims the delivery log's oldest events once they are older than `[logging] retention`
(the rule and the SQL are store.retention's; this is the periodic runner around it)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from gateway.runner import Runner
from store.db import Database
from store.retention import trim_events

__all__ = ["RetentionSweeper", "trim_events"]

log = logging.getLogger("edocgw.retention")


class RetentionSweeper(Runner[None]):
    name = "retention"

    def __init__(self, db: Database, retention: dt.timedelta, interval: float = 3600.0) -> None:
        super().__init__()
        self.db = db
        self.retention = retention
        self.poll_interval = interval
        self.backoff_initial = min(60.0, interval)
        self.backoff_max = interval

    async def claim(self, worker: str) -> Sequence[None]:
        n = await trim_events(self.db, self.retention)
        if n:
            log.info(f"removed {n} events older than the retention period")
        return ()

    async def failed(self, worker: str, error: BaseException, wait: float) -> None:
        log.warning("trimming the event log failed; will retry", extra={"error": str(error)})
