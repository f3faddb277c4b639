"""Pacing new mail to the pipeline's speed, as Postfix's `in_flow_delay` does to its queue.

The listener can accept mail several times faster than the pipeline reads, classifies and
verifies it. Under a burst, the difference used to pile up here: every message was
acknowledged at once and then waited its turn, so accepted mail was delivered late (a
300-message burst of signed documents waited over half a second each). Now, while a pipeline
is taking work and the oldest message it has not taken yet has waited longer than
`[smtp] in_flow_lag`, a new transaction's answer to MAIL FROM is held until the pipeline
catches up, for at most `[smtp] in_flow_delay`. The senders then keep the rest of the burst
in their own queues, where it is not yet this gateway's responsibility.

"Behind" means more work waits than the pipeline's next claims should find: more messages
than its workers take in one claim each, or more bytes, each message counted up to 16 KB,
than 32 KB per worker (gateway/pipeline/claimsize.py `pace_round`, which says why those
figures). A pipeline that claims in batches leaves messages waiting for the length of a
batch even when it keeps up; holding the senders then only slowed intake (bench/e2e.py:
plain letters at 0.78-0.97 of Postfix's rate, with accept -> delivered at a fifth to a half
of Postfix's).

The lag defaults to 20 ms, one backlog reading (`REFRESH`). Against 50 ms, on bench/e2e.py
(two runs of two rounds per load, interleaved): the signed load's accept -> delivered p50
102-120 ms instead of 139-155 ms and its p99 164-227 ms instead of 266-342 ms, at the same
rate or better (0.49-0.69 of Postfix's against 0.45-0.65); plain letters at 1.06-1.20 of
Postfix's rate against 0.78-1.06; 200 KB letters unchanged (0.86-1.02 against 0.87-1.01).

Nothing is refused and no transaction is held longer than `in_flow_delay`, so a stopped or
slow pipeline never stops intake: with no pipeline taking work (none running, or one busy
on a long scan) nobody is held at all. Mail already in a transaction is never held.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time

from config import Settings
from gateway import metrics
from gateway.pipeline.claimsize import PACE_WEIGHT_MAX, pace_round
from store.backlog import Backlog, read_backlog
from store.db import Database

log = logging.getLogger("edocgw.smtp")

REFRESH = 0.02  # seconds a backlog reading is used before it is read again
RECENT = dt.timedelta(seconds=2)  # a claim this recent means a pipeline is taking work
QUERY_TIMEOUT = 2.0
FAILED_PAUSE = 1.0  # after a failed reading, none for this long (nobody is held)


class InFlow:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.delay = settings.smtp.in_flow_delay.total_seconds()
        self.lag = settings.smtp.in_flow_lag.total_seconds()
        self.lease = settings.gateway.claim_timeout
        # what may wait for the pipeline workers of this process before anyone is held
        self.round_count, self.round_bytes = pace_round(settings.gateway.pipeline_workers)
        self.db = db
        self._reading: Backlog | None = None
        self._read_at = float("-inf")
        self._refresh: asyncio.Task[None] | None = None
        self._failed_at = float("-inf")
        self._held = 0  # transactions held now
        self._caught_up = asyncio.Event()  # set when the held ones may go on
        self._watcher: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.delay > 0

    async def close(self) -> None:
        for task in (self._refresh, self._watcher):
            if task is not None:
                task.cancel()

    async def wait(self) -> float:
        """Hold the caller while the pipeline is behind, up to `in_flow_delay`; the seconds
        it was held.

        Held transactions do not poll: one watcher reads the backlog every `REFRESH` while
        anyone is held and releases them all at once when the pipeline has caught up. (Each
        held session looking again every 10 ms cost a wake-up per session and step: a
        burst from many senders held a hundred sessions and made ten thousand a second.)"""
        if not self.enabled:
            return 0.0
        started = time.monotonic()
        deadline = started + self.delay
        if not await self._behind(deadline):
            return 0.0
        self._caught_up.clear()
        self._held += 1
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch())
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._caught_up.wait(), max(0.0, deadline - time.monotonic())
                )
        finally:
            self._held -= 1
        held = time.monotonic() - started
        metrics.inflow_held(held)
        return held

    async def _watch(self) -> None:
        """While anyone is held: a fresh reading every `REFRESH`; release all when the
        pipeline is no longer behind (or the backlog cannot be read)."""
        while self._held > 0:
            await asyncio.sleep(REFRESH)
            if not await self._behind(time.monotonic() + QUERY_TIMEOUT):
                self._caught_up.set()

    async def _behind(self, deadline: float) -> bool:
        """From a reading at most REFRESH old; a reading that takes past `deadline` is not
        waited for (the last one, or none, answers)."""
        now = time.monotonic()
        if now - self._read_at >= REFRESH:
            if self._refresh is None or self._refresh.done():
                self._refresh = asyncio.create_task(self._read())
            # One reading serves every waiting session; a session that goes away does not
            # cancel it for the others.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._refresh), max(0.0, deadline - now))
        b = self._reading
        return (
            b is not None
            and b.taking
            and b.lag is not None
            and b.lag > self.lag
            and (b.waiting > self.round_count or b.weight > self.round_bytes)
        )

    async def _read(self) -> None:
        try:
            self._reading = await read_backlog(
                await self.db.direct(),  # the process's pool for frequent single statements
                lease=self.lease,
                recent=RECENT,
                within=QUERY_TIMEOUT,
                weight_max=PACE_WEIGHT_MAX,
            )
            self._read_at = time.monotonic()
        except Exception as e:  # pacing is an optimisation: without a reading, hold no one
            self._reading = None
            self._read_at = time.monotonic() + FAILED_PAUSE - REFRESH
            if time.monotonic() - self._failed_at > 60:
                self._failed_at = time.monotonic()
                log.warning("backlog reading failed; not pacing", extra={"error": repr(e)[:300]})
