"""The pipeline component: workers that take `received` messages through to deliveries.

Like Mailman's runners, each worker loops: claim one message (SKIP LOCKED, with a lease
that expires if the worker dies), process it, sleep until a NOTIFY or the slow poll. The
attempt is counted in its own committed transaction before the work starts, so a message
that crashes the process counts too; at `max_attempts` it goes to `failed` with its error
and the others keep flowing. All results of one message commit in one transaction, and only
if this worker still holds the claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import multiprocessing
import os
import shutil
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config import Settings
from gateway.notify import Waker
from gateway.pipeline.analyse import Analyser, ContentAnalysis, analyse_content
from gateway.pipeline.outcome import Envelope, Outcome, build_outcome
from gateway.routing import AgencyIndex, AgencyRef
from signing import SignatureReport
from store.claims import claim
from store.db import CHANNEL_RECEIVED, Database, asyncpg_dsn
from store.models import Agency, Message
from store.results import (
    begin_attempt,
    lock_claimed,
    record_failure,
    release_unfinished,
    write_results,
)

log = logging.getLogger("edocgw.pipeline")

NoticeFn = Callable[[AsyncSession, Settings, Message, str, dict[str, Any]], Awaitable[int | None]]
MAX_ATTEMPTS = 3
VERIFY_TIMEOUT = 30.0


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


def _default_notice() -> NoticeFn | None:
    try:
        from gateway.receipts import queue_notice
    except ImportError:
        log.warning("gateway.receipts is not available: senders will not be told")
        return None
    return queue_notice  # type: ignore[return-value]


class Pipeline:
    """`pipeline_workers` concurrent workers sharing a verify pool and a parse executor."""

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
    ) -> None:
        self.settings = settings
        self.db = db
        self.analyser = analyser
        self.poll_interval = poll_interval
        self.retry_delay = retry_delay
        self.max_attempts = max_attempts
        self.agency_ttl = agency_ttl
        self.stop_grace = stop_grace
        self.warm_verifier = warm_verifier
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
        self._busy: dict[str, int] = {}  # worker name → message id being processed
        self._agencies: AgencyIndex | None = None
        self._agencies_at = 0.0
        self._agency_lock = asyncio.Lock()
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
        loop = asyncio.get_running_loop()
        executor = self._executor
        try:
            return await loop.run_in_executor(executor, self.analyser, raw, spool)
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
        unfinished: dict[str, int] = {}
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self.stop_grace)
            unfinished = dict(self._busy)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._tasks = []
        if unfinished:
            try:
                async with self.db.transaction() as s:
                    for worker, mid in unfinished.items():
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
                claimed = await self._claim(worker)
                backoff = 0.5
            except Exception as e:  # database away: wait and retry, never die
                log.warning("claiming failed", extra={"error": repr(e)})
                await self._sleep(backoff)
                backoff = min(backoff * 2, 30)
                continue
            if claimed is None:
                await self._idle()
                continue
            message_id, attempts = claimed
            self._busy[worker] = message_id
            try:
                await self._handle(worker, message_id, attempts)
            except Exception:  # a bug here must not end the worker: the lease expires
                log.error("pipeline worker error", exc_info=True, extra={"message_id": message_id})
                await self._sleep(backoff)
            finally:
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

    async def _claim(self, worker: str) -> tuple[int, int] | None:
        async with self.db.transaction() as s:
            ids = await claim(
                s,
                Message,
                worker=worker,
                lease=self.lease,
                limit=1,
                where=[Message.state == "received", Message.source != "internal"],
                order_by=[Message.received_at],
            )
            if not ids:
                return None
            return ids[0], await begin_attempt(s, ids[0])

    async def _handle(self, worker: str, message_id: int, attempts: int) -> None:
        if attempts > self.max_attempts:
            # It was claimed this often without finishing: a worker died on it each time.
            await self._fail(
                worker,
                message_id,
                f"gave up after {attempts - 1} attempts (the worker stopped while processing)",
                final=True,
                keep_error=True,
            )
            return
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.lease.total_seconds() * 0.9):
                await self.process(worker, message_id)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            final = attempts >= self.max_attempts
            log.warning(
                "processing failed" + (": giving up" if final else "; will retry"),
                exc_info=True,
                extra={"message_id": message_id, "attempt": attempts},
            )
            await self._fail(worker, message_id, f"{type(e).__name__}: {e}", final=final)
            return
        log.debug(
            "processed", extra={"message_id": message_id, "ms": (time.monotonic() - started) * 1000}
        )

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
        except Exception as e:  # the claim expires and the attempt is already counted
            log.warning("could not record a failure", extra={"error": repr(e)})

    # -- one message -----------------------------------------------------------------------

    async def process(self, worker: str, message_id: int) -> Outcome | None:
        """Parse, classify, verify, decide and route one claimed message; commit it all."""
        async with self.db.sessions() as s:
            row = (
                await s.execute(
                    select(Message.raw, Message.source, Message.mail_from, Message.rcpt_to).where(
                        Message.id == message_id
                    )
                )
            ).one()
        env = Envelope(message_id, row.source, row.mail_from or "", list(row.rcpt_to or []))
        spool = self.spool_root / f"{message_id}-{uuid.uuid4().hex[:12]}"
        try:
            analysis = await self._analyse(row.raw, spool)
            del row
            reports, smime_reports = await self._verify(analysis)
        finally:
            await asyncio.to_thread(shutil.rmtree, spool, True)
        agencies = await self._agency_index()
        outcome = build_outcome(env, analysis, reports, smime_reports, agencies, self.settings)
        async with self.db.transaction() as s:
            message = await lock_claimed(s, message_id, worker)
            if message is None:
                log.warning(
                    "claim lost while processing; dropping results",
                    extra={"message_id": message_id},
                )
                return None
            await write_results(s, message, outcome.result)
            await self._tell_sender(s, message, outcome)
        self.processed += 1
        return outcome

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
        results = await asyncio.gather(*jobs)
        reports = {d.index: list(r) for (d, _), r in zip(docs, results, strict=False)}
        smime = list(results[-1]) if analysis.smime is not None else []
        return reports, smime

    async def _tell_sender(self, s: AsyncSession, message: Message, outcome: Outcome) -> None:
        if self._notice is None:
            return
        try:
            async with s.begin_nested():  # a receipts bug must not lose the message's results
                await self._notice(s, self.settings, message, outcome.notice, outcome.notice_detail)
        except Exception as e:
            log.warning(
                "could not queue the sender's notice",
                exc_info=True,
                extra={"message_id": message.id, "kind": outcome.notice, "error": repr(e)},
            )

    async def _agency_index(self) -> AgencyIndex:
        async with self._agency_lock:
            now = time.monotonic()
            if self._agencies is None or now - self._agencies_at >= self.agency_ttl:
                async with self.db.sessions() as s:
                    rows = (await s.scalars(select(Agency).where(Agency.active.is_(True)))).all()
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
