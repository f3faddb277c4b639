"""The pipeline component: workers that take `received` messages through to deliveries.

Like Mailman's runners, each worker loops: claim work (SKIP LOCKED, with a lease that
expires if the worker dies), process it, sleep until a NOTIFY or the slow poll. A worker
claims a *batch* (up to `batch_size` messages, one statement that also counts an attempt for
each and reads the small ones' bytes, committed before the work starts, so a message that
crashes the process counts too). The batch is analysed together (small messages in one
executor call), verified concurrently in the signing pool (only what carries a signature goes
there), and written in one transaction of one statement, fenced by the claim. Database round
trips per message, not CPU, were what limited throughput; batching shares them.

A poison message never takes its batch-mates down: a failure is kept per message; a batch
whose write fails is written again one message at a time; a message on its second attempt,
or too big to come with the claim, is processed alone. At `max_attempts` a message goes to
`failed` with its error and the others keep flowing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import multiprocessing
import os
import shutil
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from config import Settings
from gateway import metrics
from gateway.notices.receipts import NoticeRequest, queue_notice, queue_notices
from gateway.pipeline.analyse import (
    Analyser,
    AnalysisFailed,
    ContentAnalysis,
    analyse_content,
    analyse_many,
    parse_limits,
    spooled,
)
from gateway.pipeline.outcome import Envelope, Outcome, build_outcome
from gateway.pipeline.routing import AgencyIndex, AgencyRef
from gateway.waker import Waker
from signing import SignatureReport
from store.db import CHANNEL_RECEIVED, Database, asyncpg_dsn
from store.models import Agency, Message
from store.results import (
    ClaimedMessage,
    claim_received,
    read_raw,
    record_failure,
    release_unfinished,
    write_batch,
)
from store.senders import Rule, list_rules

log = logging.getLogger("edocgw.pipeline")

NoticeFn = Callable[[AsyncSession, Settings, Message, str, dict[str, Any]], Awaitable[int | None]]
MAX_ATTEMPTS = 3
VERIFY_TIMEOUT = 30.0
BATCH_SIZE = 32
INLINE_MAX = 256 * 1024  # bigger messages are read (and processed) alone, to bound memory
TINY_MAX = 64 * 1024  # messages up to this size are analysed together in one executor call
T = TypeVar("T")


class SignatureVerifier(Protocol):
    """What the pipeline needs of `signing.VerifyPool`."""

    async def verify_path(
        self,
        path: str,
        detected_type: str,
        filename: str | None = None,
        detached_path: str | None = None,
    ) -> list[SignatureReport]: ...

    async def verify_smime_paths(
        self, signature_path: str, signed_path: str | None = None
    ) -> list[SignatureReport]: ...

    async def close(self) -> None: ...


@dataclass(eq=False)
class _Job:
    """One claimed message on its way through a batch."""

    msg: ClaimedMessage
    spool: Path
    analysis: ContentAnalysis | None = None
    reports: dict[int, list[SignatureReport]] = field(default_factory=dict)
    smime: list[SignatureReport] = field(default_factory=list)
    outcome: Outcome | None = None
    error: BaseException | None = None

    @property
    def id(self) -> int:
        return self.msg.id


def _error_text(e: BaseException) -> str:
    """What is stored as the message's error: one line, never the SQL of a failed write."""
    if isinstance(e, AnalysisFailed):
        return str(e)
    if isinstance(e, DBAPIError):
        return f"{type(e).__name__}: {e.orig}"
    return f"{type(e).__name__}: {e}"


def _remove_all(directories: list[Path]) -> None:
    for d in directories:
        shutil.rmtree(d, ignore_errors=True)


def _default_notice() -> NoticeFn | None:
    try:
        from gateway.notices.receipts import queue_notice
    except ImportError:
        log.warning("gateway.notices.receipts is not available: senders will not be told")
        return None
    return queue_notice  # type: ignore[return-value]


class Pipeline:
    """`pipeline_workers` concurrent workers sharing a verify pool and a parse executor; each
    takes up to `batch_size` messages at a time."""

    name = "pipeline"

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        verifier: SignatureVerifier | None = None,
        analyser: Analyser = analyse_content,
        notice: NoticeFn | None | bool = True,
        poll_interval: float = 30.0,
        retry_delay: float = 5.0,
        max_attempts: int = MAX_ATTEMPTS,
        agency_ttl: float = 30.0,
        workers: int | None = None,
        stop_grace: float = 10.0,
        warm_verifier: bool = True,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.settings = settings
        self.db = db
        if analyser is analyse_content:  # the real one: parse within the configured size limit
            limits = parse_limits(settings.smtp.max_message_size)
            analyser = functools.partial(analyse_content, limits=limits)
        self.analyser = analyser
        self.poll_interval = poll_interval
        self.retry_delay = retry_delay
        self.max_attempts = max_attempts
        self.agency_ttl = agency_ttl
        self.stop_grace = stop_grace
        self.warm_verifier = warm_verifier
        self.batch_size = max(1, batch_size)
        self._warming: asyncio.Task[None] | None = None
        self.workers = workers or settings.gateway.pipeline_workers
        self.lease = settings.gateway.claim_timeout
        self.spool_root = Path(settings.gateway.data_dir) / "spool"
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:pipe:{uuid.uuid4().hex[:8]}"
        self._notice_arg = notice
        self._notice: NoticeFn | None = None
        self._verifier = verifier
        self._own_verifier = verifier is None
        self._executor: Executor | None = None
        self._waker: Waker | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._busy: dict[str, set[int]] = {}  # worker name → claimed ids not yet finished
        self._agencies: AgencyIndex | None = None
        self._agencies_at = 0.0
        self._agency_lock = asyncio.Lock()
        self._sender_rules: list[Rule] = []  # refreshed with the agencies
        self.processed = 0  # messages this component finished (any final state)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._notice_arg is True:
            self._notice = _default_notice()
        elif callable(self._notice_arg):
            self._notice = self._notice_arg
        await asyncio.to_thread(self.spool_root.mkdir, parents=True, exist_ok=True)
        if self._verifier is None:
            self._verifier = await asyncio.to_thread(self._make_pool)
            if self.warm_verifier:  # spawn the verifier processes now, not on the first PDF
                self._warming = asyncio.create_task(self._warm(), name="pipeline-warm-verifier")
        self._executor = self._make_executor()
        self._waker = Waker(asyncpg_dsn(self.db.url), [CHANNEL_RECEIVED])
        await self._waker.start()
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._work(f"{self.worker_id}/{i}"), name=f"pipeline-{i}")
            for i in range(self.workers)
        ]

    async def _warm(self) -> None:
        start = getattr(self._verifier, "start", None)
        if start is None:
            return
        try:
            await start()
        except Exception as e:  # jobs start the pool again (and report) if this failed
            log.warning("could not start the verifier processes", extra={"error": repr(e)})

    def _make_executor(self) -> Executor:
        """Threads by default; worker processes (spawned: never fork a running service) when
        `[gateway] parse_processes` is set, so PDF text extraction does not hold our GIL."""
        n = self.settings.gateway.parse_processes
        if n:
            return ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"))
        return ThreadPoolExecutor(self.workers, thread_name_prefix="edocgw-analyse")

    async def _analyse(self, raw: bytes, spool: Path) -> ContentAnalysis:
        return await self._in_executor(self.analyser, raw, spool)

    async def _in_executor(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        executor = self._executor
        try:
            return await loop.run_in_executor(executor, fn, *args)
        except BrokenProcessPool:
            # A parse process died (on this message or another): start a fresh pool for the
            # next attempt; this attempt counts against the message like any failure.
            if executor is self._executor and executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._make_executor()
            raise

    def _make_pool(self) -> SignatureVerifier:
        from signing import VerifyPool

        t = self.settings.trust
        size = self.settings.gateway.verify_processes or os.cpu_count() or 1
        return VerifyPool(
            size,
            [*t.anchors, *t.intermediates],
            t.crls,
            t.revocation,
            VERIFY_TIMEOUT,
        )

    async def stop(self) -> None:
        """Stop claiming, let current messages finish briefly, give back what is unfinished."""
        self._stopping.set()
        if self._waker is not None:
            self._waker.poke(CHANNEL_RECEIVED)
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self.stop_grace)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._tasks = []
        unfinished = [(w, mid) for w, ids in self._busy.items() for mid in sorted(ids)]
        self._busy.clear()
        if unfinished:
            try:
                async with self.db.transaction() as s:
                    for worker, mid in unfinished:
                        await release_unfinished(s, mid, worker)
            except Exception as e:
                log.warning("could not release claims; they expire", extra={"error": repr(e)})
        if self._waker is not None:
            await self._waker.stop()
            self._waker = None
        if self._warming is not None:
            self._warming.cancel()
            await asyncio.gather(self._warming, return_exceptions=True)
            self._warming = None
        if self._verifier is not None and self._own_verifier:
            await self._verifier.close()
            self._verifier = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # -- the loop --------------------------------------------------------------------------

    async def _work(self, worker: str) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                batch = await self._claim(worker)
                backoff = 0.5
            except Exception as e:  # database away: wait and retry, never die
                log.warning("claiming failed", extra={"error": repr(e)})
                await self._sleep(backoff)
                backoff = min(backoff * 2, 30)
                continue
            if not batch:
                await self._idle()
                continue
            self._busy[worker] = {m.id for m in batch}
            try:
                await self._handle(worker, batch)
            except Exception:  # a bug here must not end the worker: the leases expire
                log.error(
                    "pipeline worker error",
                    exc_info=True,
                    extra={"message_ids": [m.id for m in batch]},
                )
                await self._sleep(backoff)
            finally:
                if not self._stopping.is_set():  # else stop() gives back what is left
                    self._busy.pop(worker, None)

    async def _idle(self) -> None:
        """Until a NOTIFY, the slow poll, or stop() (whichever comes first)."""
        assert self._waker is not None
        woken = asyncio.ensure_future(self._waker.wait(CHANNEL_RECEIVED, self.poll_interval))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({woken, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in (woken, stopping):
                f.cancel()
            await asyncio.gather(woken, stopping, return_exceptions=True)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _claim(self, worker: str) -> list[ClaimedMessage]:
        async with self.db.transaction() as s:
            return await claim_received(
                s, worker=worker, lease=self.lease, limit=self.batch_size, inline_max=INLINE_MAX
            )

    async def _handle(self, worker: str, batch: list[ClaimedMessage]) -> None:
        """Fresh small messages together; retried or big ones alone, one after another."""
        deadline = asyncio.get_running_loop().time() + self.lease.total_seconds() * 0.9
        together: list[ClaimedMessage] = []
        alone: list[ClaimedMessage] = []
        for m in batch:
            if m.attempts > self.max_attempts:
                # It was claimed this often without finishing: a worker died on it each time.
                await self._fail(
                    worker,
                    m.id,
                    f"gave up after {m.attempts - 1} attempts (the worker stopped while processing)",
                    final=True,
                    keep_error=True,
                )
            elif m.attempts > 1 or m.raw is None:
                alone.append(m)
            else:
                together.append(m)
        if together:
            await self._run(worker, together, deadline)
        for m in alone:
            if self._stopping.is_set():
                return
            await self._run(worker, [m], deadline)

    async def _run(self, worker: str, msgs: list[ClaimedMessage], deadline: float) -> None:
        started = time.monotonic()
        jobs = [_Job(m, self.spool_root / f"{m.id}-{uuid.uuid4().hex[:12]}") for m in msgs]
        await self._prepare(jobs, deadline)
        await self._store(worker, [j for j in jobs if j.error is None], deadline)
        for j in jobs:
            if j.error is not None:
                final = j.msg.attempts >= self.max_attempts
                log.warning(
                    "processing failed" + (": giving up" if final else "; will retry"),
                    exc_info=j.error,
                    extra={"message_id": j.id, "attempt": j.msg.attempts},
                )
                await self._fail(worker, j.id, _error_text(j.error), final=final)
        log.debug(
            "batch processed",
            extra={"messages": len(jobs), "ms": (time.monotonic() - started) * 1000},
        )

    def _done(self, worker: str, message_id: int) -> None:
        ids = self._busy.get(worker)
        if ids is not None:
            ids.discard(message_id)

    async def _fail(
        self, worker: str, message_id: int, error: str, *, final: bool, keep_error: bool = False
    ) -> None:
        try:
            async with self.db.transaction() as s:
                await record_failure(
                    s,
                    message_id,
                    worker,
                    error,
                    final=final,
                    retry_after=dt.timedelta(seconds=self.retry_delay),
                    keep_error=keep_error,
                )
            if final:
                self.processed += 1
                metrics.message_processed("failed")
            self._done(worker, message_id)
        except Exception as e:  # the claim expires and the attempt is already counted
            log.warning("could not record a failure", extra={"error": repr(e)})

    # -- the stages ------------------------------------------------------------------------

    async def _prepare(self, jobs: list[_Job], deadline: float) -> None:
        """Analyse, verify and decide: fills each job's outcome, or its error."""
        try:
            await self._analyse_jobs(jobs, deadline)
            await asyncio.gather(
                *(self._verify_job(j, deadline) for j in jobs if j.analysis is not None)
            )
        finally:
            # Most mail spools nothing; clean up what was, in one hand-off to a thread.
            dirs = [j.spool for j in jobs if j.analysis is None or spooled(j.analysis)]
            if dirs:
                await asyncio.to_thread(_remove_all, dirs)
        if not any(j.analysis is not None and j.error is None for j in jobs):
            return
        try:
            agencies = await self._agency_index()
        except Exception as e:
            for j in jobs:
                j.error = j.error or e
            return
        for j in jobs:
            if j.analysis is None or j.error is not None:
                continue
            env = Envelope(
                j.id,
                j.msg.source,
                j.msg.mail_from,
                j.msg.rcpt_to,
                j.msg.auth_results,
                j.msg.header_from,
            )
            try:
                j.outcome = build_outcome(
                    env,
                    j.analysis,
                    j.reports,
                    j.smime,
                    agencies,
                    self.settings,
                    self._sender_rules,
                )
            except Exception as e:
                j.error = e

    async def _analyse_jobs(self, jobs: list[_Job], deadline: float) -> None:
        for j in jobs:
            if j.msg.raw is None:  # too big to come with the claim
                try:
                    async with self.db.sessions() as s:
                        j.msg.raw = await read_raw(s, j.id)
                except Exception as e:
                    j.error = e
        ready = [j for j in jobs if j.error is None]
        tiny: list[_Job] = []
        singles: list[_Job] = []
        for j in ready:
            small = len(ready) > 1 and len(j.msg.raw or b"") <= TINY_MAX
            (tiny if small else singles).append(j)
        await asyncio.gather(
            *([self._analyse_chunk(tiny, deadline)] if tiny else []),
            *(self._analyse_one(j, deadline) for j in singles),
        )
        for j in jobs:
            j.msg.raw = None  # analysed: the bytes are not needed any more

    async def _analyse_one(self, j: _Job, deadline: float) -> None:
        assert j.msg.raw is not None
        try:
            async with asyncio.timeout_at(deadline):
                j.analysis = await self._analyse(j.msg.raw, j.spool)
        except Exception as e:
            j.error = e

    async def _analyse_chunk(self, jobs: list[_Job], deadline: float) -> None:
        work = [(j.msg.raw or b"", j.spool) for j in jobs]
        try:
            async with asyncio.timeout_at(deadline):
                results = await self._in_executor(analyse_many, self.analyser, work)
        except BrokenProcessPool:
            # A parse process died on one of them: one at a time finds which (the pool is
            # rebuilt after each death), so the others still get through on this attempt.
            for j in jobs:
                await self._analyse_one(j, deadline)
            return
        except Exception as e:
            for j in jobs:
                j.error = e
            return
        for j, r in zip(jobs, results, strict=True):
            if isinstance(r, AnalysisFailed):
                j.error = r
            else:
                j.analysis = r

    async def _verify_job(self, j: _Job, deadline: float) -> None:
        assert j.analysis is not None
        if j.analysis.smime is None and not any(d.verify_path for d in j.analysis.docs):
            return  # nothing to verify: no round trip to the signing processes
        try:
            async with asyncio.timeout_at(deadline):
                j.reports, j.smime = await self._verify(j.analysis)
        except Exception as e:
            j.error = e

    async def _verify(
        self, analysis: ContentAnalysis
    ) -> tuple[dict[int, list[SignatureReport]], list[SignatureReport]]:
        assert self._verifier is not None
        v = self._verifier
        docs = [(d, d.verify_path) for d in analysis.docs if d.verify_path]
        jobs = [
            v.verify_path(path, d.detected_type, d.filename, d.detached_path) for d, path in docs
        ]
        if analysis.smime is not None:
            jobs.append(
                v.verify_smime_paths(analysis.smime.signature_path, analysis.smime.signed_path)
            )
        results = await asyncio.gather(*(_timed(job) for job in jobs))
        reports = {d.index: list(r) for (d, _), r in zip(docs, results, strict=False)}
        smime = list(results[-1]) if analysis.smime is not None else []
        return reports, smime

    async def _store(self, worker: str, jobs: Sequence[_Job], deadline: float) -> None:
        """All results of the batch in one transaction; if that fails, one by one, so a
        message the database refuses (or whose notice fails) does not hold the others."""
        if not jobs:
            return
        try:
            async with asyncio.timeout_at(deadline), self.db.transaction() as s:
                written = await write_batch(s, worker, [j.outcome.result for j in jobs])  # type: ignore[union-attr]
                if self._notice is queue_notice:  # the default: all the batch's at once
                    await queue_notices(
                        s,
                        self.settings,
                        [
                            NoticeRequest(j.id, j.outcome.notice, j.outcome.notice_detail)  # type: ignore[union-attr]
                            for j in jobs
                            if j.id in written
                        ],
                    )
                elif self._notice is not None:
                    for j in jobs:
                        if j.id in written:
                            assert j.outcome is not None
                            await self._notice(
                                s,
                                self.settings,
                                Message(id=j.id),
                                j.outcome.notice,
                                j.outcome.notice_detail,
                            )
        except Exception as e:
            log.warning(
                "writing a batch failed; writing its messages one by one",
                extra={"messages": len(jobs), "error": repr(e)},
            )
            for j in jobs:
                try:
                    self._finished(worker, j, await self._store_one(worker, j, deadline))
                except Exception as e1:
                    j.error = e1
            return
        for j in jobs:
            self._finished(worker, j, j.id in written)

    async def _store_one(self, worker: str, j: _Job, deadline: float) -> bool:
        """One message's results and notice in its own transaction; the notice in a
        savepoint, so a receipts bug does not lose the results. False: the claim was lost."""
        assert j.outcome is not None
        async with asyncio.timeout_at(deadline), self.db.transaction() as s:
            written = await write_batch(s, worker, [j.outcome.result])
            if j.id in written:
                await self._tell_sender(s, j.id, j.outcome)
        return j.id in written

    def _finished(self, worker: str, j: _Job, written: bool) -> None:
        self._done(worker, j.id)
        if not written:
            log.warning("claim lost while processing; dropping results", extra={"message_id": j.id})
            return
        assert j.outcome is not None
        self.processed += 1
        metrics.message_processed(j.outcome.result.state)

    # -- one message -----------------------------------------------------------------------

    async def process(self, worker: str, message_id: int) -> Outcome | None:
        """Parse, classify, verify, decide and route one message claimed by *worker*; commit
        it all. None when the claim was lost meanwhile (nothing is written); raises when the
        message cannot be processed."""
        async with self.db.sessions() as s:
            row = (
                await s.execute(
                    select(
                        Message.attempts,
                        Message.source,
                        Message.mail_from,
                        Message.rcpt_to,
                        Message.size,
                        Message.raw,
                        Message.auth_results,
                        Message.header_from,
                    ).where(Message.id == message_id)
                )
            ).one()
        msg = ClaimedMessage(
            message_id,
            row.attempts,
            row.source,
            row.mail_from or "",
            list(row.rcpt_to or []),
            row.size,
            row.raw,
            row.auth_results,
            row.header_from,
        )
        job = _Job(msg, self.spool_root / f"{message_id}-{uuid.uuid4().hex[:12]}")
        deadline = asyncio.get_running_loop().time() + self.lease.total_seconds() * 0.9
        await self._prepare([job], deadline)
        if job.error is not None:
            raise job.error
        if not await self._store_one(worker, job, deadline):
            log.warning(
                "claim lost while processing; dropping results", extra={"message_id": message_id}
            )
            return None
        self.processed += 1
        return job.outcome

    async def _tell_sender(self, s: AsyncSession, message_id: int, outcome: Outcome) -> None:
        if self._notice is None:
            return
        try:
            async with s.begin_nested():  # a receipts bug must not lose the message's results
                await self._notice(
                    s, self.settings, Message(id=message_id), outcome.notice, outcome.notice_detail
                )
        except Exception as e:
            log.warning(
                "could not queue the sender's notice",
                exc_info=True,
                extra={"message_id": message_id, "kind": outcome.notice, "error": repr(e)},
            )

    async def _agency_index(self) -> AgencyIndex:
        async with self._agency_lock:
            now = time.monotonic()
            if self._agencies is None or now - self._agencies_at >= self.agency_ttl:
                async with self.db.sessions() as s:
                    rows = (await s.scalars(select(Agency).where(Agency.active.is_(True)))).all()
                    self._sender_rules = await list_rules(s)
                refs = [
                    AgencyRef(
                        code=a.code,
                        name=a.name,
                        address=a.address,
                        aliases=tuple(a.aliases or ()),
                        domains=tuple(a.domains or ()),
                    )
                    for a in rows
                ]
                self._agencies = await asyncio.to_thread(AgencyIndex.build, refs)
                self._agencies_at = now
            return self._agencies


async def _timed(job: Awaitable[Sequence[SignatureReport]]) -> Sequence[SignatureReport]:
    """Feed edocgw_verify_seconds: one observation per document (or S/MIME message) that
    carried a signature, labelled with the signature's format."""
    t0 = time.perf_counter()
    reports = await job
    if reports:
        metrics.observe_verification(time.perf_counter() - t0, reports[0].format)
    return reports
