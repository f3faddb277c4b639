"""Signature verification in worker processes (gateway/processes/pool.py), so the event
loop never holds the GIL for it and a hung verification is stopped at its timeout.

pyHanko and certvalidator are CPU-bound and hold the GIL (DESIGN §5: ~14 ms per signed
PDF), and their async API never yields, so threads gain nothing. Each worker loads the trust
store once, then takes jobs (file paths, not megabytes of bytes) over its own pipe. A timeout
or a dead worker fails exactly that job, as a report: verification never raises. This lives
in gateway/, not signing/: signing/ stays pure verification, process wiring is the service's.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gateway.processes.pool import JobFailed, JobTimeout, ProcessPool, WorkerDied
from signing import report as r
from signing.report import SignatureReport
from signing.trust import TrustStore

log = logging.getLogger("edocgw.verify")
_FORMAT_OF = {"pdf": "pdf", "cms": "cms", "edxml": "xmldsig", "xml": "xmldsig"}
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
# pyHanko leaves the file's bytes in reference cycles: a worker kept a 46 MB PDF until the
# cyclic collector happened to run (bench/memory.py). After a job this big, collect at once.
COLLECT_AFTER_BYTES = 8 * 1024 * 1024


def verify_worker(
    anchors: list[str],
    crls: list[str],
    revocation: str,
    weak_algorithms: str = "indeterminate",
) -> Callable[[tuple[str, tuple[Any, ...]]], list[SignatureReport]]:
    """Runs in the worker: load the trust store once; the handler verifies one job."""
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)  # its diff tracebacks are reports
    from signing.verify import verify_file, verify_smime_files

    trust = TrustStore.load(anchors, crls, revocation, weak_algorithms)

    def handle(job: tuple[str, tuple[Any, ...]]) -> list[SignatureReport]:
        nonlocal trust
        kind, args = job
        with contextlib.suppress(Exception):  # keep the old store if a new file is bad
            trust = trust.reloaded()
        if kind == "document":
            path, detected_type, filename, detached_path = args
            files: tuple[str | bytes | None, ...] = (path, detached_path)
            result = verify_file(path, detected_type, filename, trust, detached_path)
        else:
            signature_path, signed_path = args
            files = (signature_path, signed_path)
            result = verify_smime_files(signature_path, signed_path, trust)
        if _size(files) >= COLLECT_AFTER_BYTES:
            gc.collect()  # before the reply, so the memory is back when the job is done
        return result

    return handle


def _size(paths: Iterable[str | bytes | None]) -> int:
    total = 0
    for p in paths:
        if isinstance(p, bytes):
            total += len(p)
        elif p:
            with contextlib.suppress(OSError):
                total += os.stat(p).st_size
    return total


class VerifyPool:
    """A pool of *max_workers* verifier processes with a per-job *timeout* (seconds)."""

    def __init__(
        self,
        max_workers: int,
        trust_anchors: Iterable[str | os.PathLike[str]],
        crls: Iterable[str | os.PathLike[str]] = (),
        revocation: str = "hard-fail",
        timeout: float = 30.0,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        start_timeout: float = 60.0,
        weak_algorithms: str = "indeterminate",
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        anchors = [str(p) for p in trust_anchors]
        crl_files = [str(p) for p in crls]
        # fail here, naming the file or the value
        TrustStore.load(anchors, crl_files, revocation, weak_algorithms)
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._pool = ProcessPool(
            "verify",
            max_workers,
            verify_worker,
            (anchors, crl_files, revocation, weak_algorithms),
            start_timeout=start_timeout,
        )

    # ------------------------------------------------------------------ public API

    async def start(self) -> None:
        """Start every worker (also done lazily by the first job)."""
        await self._pool.start()

    def worker_pids(self) -> list[int]:
        return self._pool.worker_pids()

    async def verify_path(
        self,
        path: str | bytes,
        detected_type: str,
        filename: str | None = None,
        detached_path: str | bytes | None = None,
    ) -> list[SignatureReport]:
        """Verify a spooled attachment (see :func:`signing.verify.verify_document`): the
        path of its file, or a small one's bytes."""
        if detected_type not in _FORMAT_OF:
            return []
        fmt = _FORMAT_OF[detected_type]
        too_big = self._too_big(fmt, path, detached_path)
        if too_big:
            return too_big
        return await self._run(fmt, ("document", (path, detected_type, filename, detached_path)))

    async def verify_smime_paths(
        self, signature_path: str | bytes, signed_path: str | bytes | None = None
    ) -> list[SignatureReport]:
        """Verify S/MIME: the decoded signature and the raw signed part, both spooled (paths)
        or given (bytes)."""
        too_big = self._too_big("smime", signature_path, signed_path)
        if too_big:
            return too_big
        return await self._run("smime", ("smime", (signature_path, signed_path)))

    async def close(self) -> None:
        """Stop the workers (a clean EOF first, then SIGKILL for any that hang)."""
        await self._pool.close()

    async def __aenter__(self) -> VerifyPool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ internals

    def _too_big(self, fmt: str, *paths: str | bytes | None) -> list[SignatureReport] | None:
        for path in paths:
            if path is None:
                continue
            try:
                size = len(path) if isinstance(path, bytes) else Path(path).stat().st_size
            except OSError as exc:
                return [r.malformed(fmt, "unreadable_file", f"cannot read {path}: {exc.strerror}")]
            if size > self.max_bytes:
                return [
                    r.SignatureReport(
                        format=fmt,
                        verdict=r.INDETERMINATE,
                        reason="too_large",
                        detail=f"{size} bytes is over the {self.max_bytes}-byte verification limit",
                    )
                ]
        return None

    async def _run(self, fmt: str, job: tuple[str, tuple[Any, ...]]) -> list[SignatureReport]:
        try:
            return await self._pool.run(job, self.timeout)
        except JobTimeout:
            return [
                r.SignatureReport(
                    format=fmt,
                    verdict=r.INDETERMINATE,
                    reason="worker_timeout",
                    detail=f"verification took longer than {self.timeout:g} s and was stopped",
                )
            ]
        except WorkerDied as exc:
            return [
                r.malformed(
                    fmt,
                    "worker_died",
                    f"the verification worker died (exit code {exc.exitcode}) on this file",
                )
            ]
        except JobFailed as exc:
            return [r.malformed(fmt, "malformed", str(exc))]
