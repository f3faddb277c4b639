"""The pipeline's two pools: the parse executor (threads, or spawned processes with
`[gateway] parse_processes`) and the signature verifier (`signing.VerifyPool`).

Both are CPU work off the event loop. A parse process that dies (on this message or another)
breaks the whole pool: it is replaced for the next call, and the call that saw it fails like
any attempt. The verifier's processes are spawned at start, not on the first signed PDF.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar

from config import Settings
from gateway import metrics
from gateway.pipeline.analyse import ContentAnalysis
from signing import SignatureReport

log = logging.getLogger("edocgw.pipeline")

VERIFY_TIMEOUT = 30.0
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


class Pools:
    def __init__(
        self,
        settings: Settings,
        *,
        threads: int,
        verifier: SignatureVerifier | None = None,
        warm_verifier: bool = True,
    ) -> None:
        self.settings = settings
        self.threads = threads
        self.warm_verifier = warm_verifier
        self._verifier = verifier
        self._own_verifier = verifier is None
        self._executor: Executor | None = None
        self._warming: asyncio.Task[None] | None = None

    async def open(self) -> None:
        if self._verifier is None:
            self._verifier = await asyncio.to_thread(self._make_verifier)
            if self.warm_verifier:  # spawn the verifier processes now, not on the first PDF
                self._warming = asyncio.create_task(self._warm(), name="pipeline-warm-verifier")
        self._executor = self._make_executor()

    async def close(self) -> None:
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

    # -- parsing --------------------------------------------------------------------------------

    def _make_executor(self) -> Executor:
        """Threads by default; worker processes (spawned: never fork a running service) when
        `[gateway] parse_processes` is set, so PDF text extraction does not hold our GIL."""
        n = self.settings.gateway.parse_processes
        if n:
            return ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"))
        return ThreadPoolExecutor(self.threads, thread_name_prefix="edocgw-analyse")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
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

    # -- verifying ------------------------------------------------------------------------------

    def _make_verifier(self) -> SignatureVerifier:
        from signing import VerifyPool

        t = self.settings.trust
        size = self.settings.gateway.verify_processes or os.cpu_count() or 1
        return VerifyPool(
            size,
            [*t.anchors, *t.intermediates],
            t.crls,
            t.revocation,
            VERIFY_TIMEOUT,
            weak_algorithms=t.weak_algorithms,
        )

    async def _warm(self) -> None:
        start = getattr(self._verifier, "start", None)
        if start is None:
            return
        try:
            await start()
        except Exception as e:  # jobs start the pool again (and report) if this failed
            log.warning("could not start the verifier processes", extra={"error": repr(e)})

    async def verify(
        self, analysis: ContentAnalysis
    ) -> tuple[dict[int, list[SignatureReport]], list[SignatureReport]]:
        """Every signature of one analysed message: per document index, and S/MIME."""
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


async def _timed(job: Awaitable[Sequence[SignatureReport]]) -> Sequence[SignatureReport]:
    """Feed edocgw_verify_seconds: one observation per document (or S/MIME message) that
    carried a signature, labelled with the signature's format."""
    t0 = time.perf_counter()
    reports = await job
    if reports:
        metrics.observe_verification(time.perf_counter() - t0, reports[0].format)
    return reports
