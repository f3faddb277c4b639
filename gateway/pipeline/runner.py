"""The pipeline stage: workers that take `received` messages through to deliveries.

It runs on gateway.runner.Runner (claim, handle, wait for NOTIFY or the slow poll, back off,
stop and release). A worker claims a *batch* (up to `batch_size` messages, one statement that
also counts an attempt for each and reads the small ones' bytes, committed before the work
starts, so a message that crashes the process counts too). The batch is prepared together
(pipeline/batch.py: analysis in the parse pool, signatures in the verify pool, routing) and
written in one transaction of one statement, fenced by the claim (pipeline/writer.py).
Database round trips per message, not CPU, were what limited throughput; batching shares them.

The write goes *behind*: once a batch is prepared, its write starts as a task of its own and
the worker claims and prepares its next batch meanwhile (one write in flight per worker; the
next waits for it). Written in line, the claim-analyse-write cycle left the analysis processes
idle for the claim and the write, a fifth of the cycle on the signed load (bench/e2e.py:
machine 7-16% idle, rate 0.45-0.54 of Postfix's; written behind, 4-11% idle and 0.47-0.64,
three runs of two rounds interleaved). A stop waits for the writes in flight (`settle`);
what they did not write is released with the rest.

A poison message never takes its batch-mates down: a failure is kept per message; a batch
whose write fails is written again one message at a time; a message on its second attempt,
or too big to come with the claim, is processed alone. At `max_attempts` a message goes to
`failed` with its error and the others keep flowing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from config import Settings
from gateway import metrics
from gateway.handoff import Handed
from gateway.pipeline.agencies import AgencyCache
from gateway.pipeline.analyse import Analyser, analyse_content, parse_limits
from gateway.pipeline.batch import BatchPreparer, Job
from gateway.pipeline.claimsize import BATCH_SIZE, CLAIM_BYTES, CLAIM_WEIGHT_MAX, INLINE_MAX
from gateway.pipeline.pools import Pools, SignatureVerifier
from gateway.pipeline.writer import NoticesFn, ResultWriter, error_text
from gateway.recentraw import RecentRaw
from gateway.runner import Runner
from store.db import CHANNEL_RECEIVED, Database, asyncpg_dsn
from store.results import ClaimedMessage, claim_received, release_unfinished

log = logging.getLogger("edocgw.pipeline")

MAX_ATTEMPTS = 3


def _default_notices() -> NoticesFn | None:
    try:
        from gateway.notices.receipts import queue_notices
    except ImportError:
        log.warning("gateway.notices.receipts is not available: senders will not be told")
        return None
    return queue_notices


class Pipeline(Runner[ClaimedMessage]):
    """`pipeline_workers` concurrent workers sharing a verify pool and a parse executor; each
    takes up to `batch_size` messages at a time."""

    name = "pipeline"
    channel = CHANNEL_RECEIVED
    done_after_handle = False  # batches are written behind (`_run`): `_write` lets them go

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        verifier: SignatureVerifier | None = None,
        analyser: Analyser = analyse_content,
        notice: NoticesFn | None | bool = True,
        poll_interval: float = 30.0,
        retry_delay: float = 5.0,
        max_attempts: int = MAX_ATTEMPTS,
        agency_ttl: float = 30.0,
        workers: int | None = None,
        stop_grace: float = 10.0,
        warm_verifier: bool = True,
        batch_size: int = BATCH_SIZE,
        analysis_threads: bool = False,  # see pipeline/pools.py: for tests that share state
        recent_raw: RecentRaw | None = None,
        handed: Handed | None = None,
    ) -> None:
        super().__init__()
        self.recent_raw = recent_raw  # for the delivery in this process (gateway/recentraw.py)
        self.handed = handed  # bytes the intake handed this process (gateway/handoff.py)
        self.settings = settings
        self.db = db
        self.dsn = asyncpg_dsn(db.url)
        if analyser is analyse_content:  # the real one: parse within the configured size limit
            limits = parse_limits(settings.smtp.max_message_size)
            analyser = functools.partial(analyse_content, limits=limits)
        self.analyser = analyser
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.stop_grace = stop_grace
        self.batch_size = max(1, batch_size)
        self.workers = workers or settings.gateway.pipeline_workers
        self.lease = settings.gateway.claim_timeout
        self.spool_root = Path(settings.gateway.data_dir) / "spool"
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:pipe:{uuid.uuid4().hex[:8]}"
        self.pools = Pools(
            settings,
            threads=self.workers,
            verifier=verifier,
            warm_verifier=warm_verifier,
            analysis_threads=analysis_threads,
        )
        self.preparer = BatchPreparer(
            settings, db, self.pools, analyser, AgencyCache(db, agency_ttl)
        )
        if notice is True:  # none to queue when receipts are off: batches write without them
            notices = _default_notices() if settings.receipts.enabled else None
        else:
            notices = notice or None
        self.writer = ResultWriter(db, settings, notices, retry_delay)  # type: ignore[arg-type]
        self.processed = 0  # messages this component finished (any final state)
        self._writing: dict[str, asyncio.Task[None]] = {}  # worker -> its write in flight

    # -- the runner's hooks -------------------------------------------------------------------

    async def setup(self) -> None:
        await asyncio.to_thread(self.spool_root.mkdir, parents=True, exist_ok=True)
        await self.pools.open()

    async def settle(self) -> None:
        """The writes in flight finish (they are short: one statement); what they did not
        write is released with the rest."""
        writing = set(self._writing.values())
        if writing:
            _, late = await asyncio.wait(writing, timeout=self.stop_grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def teardown(self) -> None:
        await self.pools.close()

    async def claim(self, worker: str) -> Sequence[ClaimedMessage]:
        # one statement, committed on its own before the work (store/direct.py)
        handed = self.handed
        claimed = await claim_received(
            await self.db.direct(),
            worker=worker,
            lease=self.lease,
            limit=self.batch_size,
            inline_max=INLINE_MAX,
            max_bytes=CLAIM_BYTES,
            weight_max=CLAIM_WEIGHT_MAX,
            held=handed.keys() if handed is not None else (),
        )
        if handed is None:
            return claimed
        for m in claimed:
            # Left out because held here; gone since (evicted): read alone, as a big one.
            if m.raw is None and (raw := handed.pop(m.sha256)) is not None:
                m.raw = raw
                metrics.raw_handed()
        return claimed

    async def release(self, worker: str, unfinished: Sequence[ClaimedMessage]) -> None:
        """The interrupted attempts do not count against the messages (it was the stop)."""
        async with self.db.transaction() as s:
            for m in sorted(unfinished, key=lambda m: m.id):
                await release_unfinished(s, m.id, worker)

    async def handle(self, worker: str, batch: Sequence[ClaimedMessage]) -> None:
        """Fresh small messages together; retried or big ones alone, one after another."""
        deadline = asyncio.get_running_loop().time() + self.lease.total_seconds() * 0.9
        together: list[ClaimedMessage] = []
        alone: list[ClaimedMessage] = []
        for m in batch:
            if m.attempts > self.max_attempts:
                # It was claimed this often without finishing: a worker died on it each time.
                await self._fail(
                    worker,
                    m,
                    f"gave up after {m.attempts - 1} attempts (the worker stopped while processing)",
                    final=True,
                    keep_error=True,
                )
                self.finished(worker, m)
            elif m.attempts > 1 or m.raw is None:
                alone.append(m)
            else:
                together.append(m)
        try:
            if together:
                await self._run(worker, together, deadline)
            for m in alone:
                if self.stopping:
                    return
                await self._run(worker, [m], deadline)
        except BaseException:
            if not self.stopping:  # as the runner does: the claims expire (stop releases them)
                for m in batch:
                    self.finished(worker, m)
            raise

    # -- one batch ----------------------------------------------------------------------------

    async def _run(self, worker: str, msgs: list[ClaimedMessage], deadline: float) -> None:
        """Prepare the batch, then write it behind: the worker claims and prepares its next
        batch while this one is written (one write in flight per worker, in order)."""
        started = time.monotonic()
        if self.recent_raw is not None:
            for m in msgs:
                if m.raw is not None:
                    self.recent_raw.put(m.id, m.raw)
        jobs = [Job(m, self.spool_root / f"{m.id}-{uuid.uuid4().hex[:12]}") for m in msgs]
        await self.preparer.prepare(jobs, deadline)
        await self._written(worker)
        task = asyncio.create_task(self._write(worker, jobs, deadline, started))
        self._writing[worker] = task

    async def _written(self, worker: str) -> None:
        """Wait for the worker's write in flight, if any."""
        task = self._writing.get(worker)
        if task is not None:
            await asyncio.shield(task)

    async def _write(self, worker: str, jobs: list[Job], deadline: float, started: float) -> None:
        try:
            await self._write_results(worker, jobs, deadline)
        except Exception:  # a bug must not end the worker: the claims expire
            log.exception("writing a batch failed", extra={"messages": len(jobs)})
        for j in jobs:  # (cancelled by the stop: release() gives back what is left)
            self.finished(worker, j.msg)
        log.debug(
            "batch processed",
            extra={"messages": len(jobs), "ms": (time.monotonic() - started) * 1000},
        )

    async def _write_results(self, worker: str, jobs: list[Job], deadline: float) -> None:
        ready = [j for j in jobs if j.error is None]
        written = await self.writer.write(worker, ready, deadline)
        for j in ready:
            if j.error is not None:
                continue
            if j.id not in written:
                log.warning(
                    "claim lost while processing; dropping results", extra={"message_id": j.id}
                )
                continue
            assert j.outcome is not None
            self.processed += 1
            metrics.message_processed(j.outcome.result.state)
        for j in jobs:
            if j.error is not None:
                final = j.msg.attempts >= self.max_attempts
                log.warning(
                    "processing failed" + (": giving up" if final else "; will retry"),
                    exc_info=j.error,
                    extra={"message_id": j.id, "attempt": j.msg.attempts},
                )
                await self._fail(worker, j.msg, error_text(j.error), final=final)

    async def _fail(
        self,
        worker: str,
        m: ClaimedMessage,
        error: str,
        *,
        final: bool,
        keep_error: bool = False,
    ) -> None:
        if await self.writer.fail(worker, m.id, error, final=final, keep_error=keep_error):
            if final:
                self.processed += 1
                metrics.message_processed("failed")
            else:  # written behind, so a worker may be waiting for work already: look again
                self.poke()
            self.finished(worker, m)
