"""The pipeline's two process pools, both on gateway/processes/pool.py: message analysis
(`[gateway] parse_processes`, 0 = one per core), which also checks small signed parts, and
the signature verifier (VerifyPool) for big parts and retried messages.

Both are CPU work on untrusted input, off the event loop and stoppable: a job past its
deadline kills its process (a thread would keep the CPU after its timeout), a process that
dies fails only its own job, and either way only that process is replaced. Both pools are
spawned at start, not on the first message.

`analysis_threads=True` runs the analyser in threads of this process instead: only for an
analyser that must share state with its caller (tests that count calls on plain mail). Such
work cannot be stopped at its deadline, and PDFium (the PDF text engine) is not thread-safe:
two threads reading PDFs at once abort the whole process (bench/pipeline.py --load pdf did,
before analysis moved to processes). `serve` never uses it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from config import Settings
from gateway import metrics
from gateway.pipeline.analyse import (
    Analyser,
    AnalysisFailed,
    ContentAnalysis,
    RawFile,
    analyse_many,
    analysis_worker,
)
from gateway.processes.pool import JobFailed, ProcessPool
from gateway.processes.verify import VERIFY_TIMEOUT, TrustArgs
from signing import SignatureReport

log = logging.getLogger("edocgw.pipeline")


class SignatureVerifier(Protocol):
    """What the pipeline needs of `gateway.processes.verify.VerifyPool`."""

    async def verify_path(
        self,
        path: str | bytes,
        detected_type: str,
        filename: str | None = None,
        detached_path: str | bytes | None = None,
    ) -> list[SignatureReport]: ...

    async def verify_smime_paths(
        self, signature_path: str | bytes, signed_path: str | bytes | None = None
    ) -> list[SignatureReport]: ...

    async def close(self) -> None: ...


class Pools:
    def __init__(
        self,
        settings: Settings,
        *,
        threads: int,
        verifier: SignatureVerifier | None = None,
        warm_verifier: bool = True,
        analysis_threads: bool = False,
    ) -> None:
        self.settings = settings
        self.threads = threads
        self.warm_verifier = warm_verifier
        self.analysis_threads = analysis_threads
        self._verifier = verifier
        self._own_verifier = verifier is None
        self._analysis: ProcessPool | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._warming: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        if self._verifier is None:
            self._verifier = await asyncio.to_thread(self._make_verifier)
            if self.warm_verifier:  # spawn the verifier processes now, not on the first PDF
                self._warm(self._verifier, "verifier")
        if self.analysis_threads:
            self._threads = ThreadPoolExecutor(self.threads, thread_name_prefix="edocgw-analyse")
        else:
            n = self.settings.gateway.parse_processes or os.cpu_count() or 1
            self._analysis = ProcessPool("analyse", n, analysis_worker, (self._trust_args(),))
            # at start, not on the first message: the pipeline is ready when they are
            await self._warm(self._analysis, "analysis")

    async def close(self) -> None:
        for task in self._warming:
            task.cancel()
        await asyncio.gather(*self._warming, return_exceptions=True)
        self._warming = []
        if self._verifier is not None and self._own_verifier:
            await self._verifier.close()
            self._verifier = None
        if self._analysis is not None:
            await self._analysis.close()
            self._analysis = None
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None

    def analysis_pids(self) -> list[int]:
        return self._analysis.worker_pids() if self._analysis is not None else []

    # -- analysing ------------------------------------------------------------------------------

    async def analyse(
        self,
        analyser: Analyser,
        items: list[tuple[bytes | RawFile, Path]],
        time_limit: float,
        verify: bool = False,
    ) -> list[ContentAnalysis | AnalysisFailed]:
        """`analyse_many` in one analysis process, stopped after *time_limit* seconds; with
        *verify*, that process also verifies the messages' small signed parts
        (analyse.verify_small_parts).

        Raises gateway.processes.pool.JobTimeout (the process was killed) or WorkerDied for
        the job as a whole; a failure of one message is an AnalysisFailed in its place."""
        if self._threads is not None:
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(time_limit):
                return await loop.run_in_executor(self._threads, analyse_many, analyser, items)
        assert self._analysis is not None, "Pools.open() first"
        try:
            return await self._analysis.run((analyser, items, verify), time_limit)
        except JobFailed as e:  # the job itself did not unpickle or run: every message failed
            return [AnalysisFailed(str(e)) for _ in items]

    def _warm(self, pool: object, what: str) -> asyncio.Task[None]:
        async def warm() -> None:
            start = getattr(pool, "start", None)
            if start is None:
                return
            try:
                await start()
            except Exception as e:  # jobs start the pool again (and report) if this failed
                log.warning(f"could not start the {what} processes", extra={"error": repr(e)})

        task = asyncio.create_task(warm(), name=f"pipeline-warm-{what}")
        self._warming.append(task)
        return task

    # -- verifying ------------------------------------------------------------------------------

    def _trust_args(self) -> TrustArgs:
        t = self.settings.trust
        return [*t.anchors, *t.intermediates], list(t.crls), t.revocation, t.weak_algorithms

    def _make_verifier(self) -> SignatureVerifier:
        from gateway.processes.verify import VerifyPool

        anchors, crls, revocation, weak = self._trust_args()
        size = self.settings.gateway.verify_processes or os.cpu_count() or 1
        return VerifyPool(size, anchors, crls, revocation, VERIFY_TIMEOUT, weak_algorithms=weak)

    async def verify(
        self, analysis: ContentAnalysis
    ) -> tuple[dict[int, list[SignatureReport]], list[SignatureReport]]:
        """Every signature of one analysed message: per document index, and S/MIME. What
        the analysis process verified already is taken as it is; the rest (big, spooled
        parts, or a retried message) goes to the verifier processes."""
        assert self._verifier is not None
        v = self._verifier
        reports: dict[int, list[SignatureReport]] = {}
        for d in analysis.docs:
            if d.reports is not None:
                reports[d.index] = d.reports
                _observe(d.verify_seconds, d.reports)
        docs = [d for d in analysis.docs if d.reports is None and d.verify_path is not None]
        jobs = [
            v.verify_path(d.verify_path, d.detected_type, d.filename, d.detached_path)
            for d in docs
            if d.verify_path is not None
        ]
        s = analysis.smime
        if s is not None and s.reports is None:
            jobs.append(v.verify_smime_paths(s.signature_path, s.signed_path))
        results = await asyncio.gather(*(_timed(job) for job in jobs)) if jobs else []
        reports.update({d.index: list(r) for d, r in zip(docs, results, strict=False)})
        if s is None:
            return reports, []
        if s.reports is not None:
            _observe(s.verify_seconds, s.reports)
            return reports, s.reports
        return reports, list(results[-1])


async def _timed(job: Awaitable[Sequence[SignatureReport]]) -> Sequence[SignatureReport]:
    t0 = time.perf_counter()
    reports = await job
    _observe(time.perf_counter() - t0, reports)
    return reports


def _observe(seconds: float, reports: Sequence[SignatureReport]) -> None:
    """Feed edocgw_verify_seconds: one observation per document (or S/MIME message) that
    carried a signature, labelled with the signature's format."""
    if reports:
        metrics.observe_verification(seconds, reports[0].format)
