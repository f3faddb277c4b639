"""Signature verification in worker processes (gateway/processes/pool.py), so the event
loop never holds the GIL for it and a hung verification is stopped at its timeout.

pyHanko and certvalidator are CPU-bound and hold the GIL (DESIGN §5: ~14 ms per signed
PDF), and their async API never yields, so threads gain nothing. Each worker loads the trust
store once, then takes jobs (file paths, not megabytes of bytes) over its own pipe. A timeout
or a dead worker fails exactly that job, as a report: verification never raises. This lives
in gateway/, not signing/: signing/ stays pure verification, process wiring is the service's.
`Verifier` is also what the analysis processes use for a message's small signed parts
(gateway/pipeline/analyse.py), so both places give the same answer.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gateway.processes.pool import JobFailed, JobTimeout, ProcessPool, WorkerDied
from signing import report as r
from signing.report import SignatureReport
from signing.trust import TrustStore
from signing.verify import verify_file, verify_smime_files

log = logging.getLogger("edocgw.verify")
_FORMAT_OF = {"pdf": "pdf", "cms": "cms", "edxml": "xmldsig", "xml": "xmldsig"}
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
# pyHanko leaves the file's bytes in reference cycles: a worker kept a 46 MB PDF until the
# cyclic collector happened to run (bench/memory.py). After a job this big, collect at once.
COLLECT_AFTER_BYTES = 8 * 1024 * 1024


#: Per document (or S/MIME message), in the verifier processes and in the analysis processes.
VERIFY_TIMEOUT = 30.0
#: Seconds between two looks at whether the trust files changed. A look stats every anchor
#: and CRL file (nine on the bench: 60 us, 4% of verifying a signed letter); CRLs change
#: daily, so looking once a second at most is soon enough.
RELOAD_CHECK = 1.0
#: What crosses to a process that verifies: anchors, CRLs, revocation mode, weak algorithms.
TrustArgs = tuple[list[str], list[str], str, str]


def timeout_report(fmt: str, seconds: float) -> SignatureReport:
    return r.SignatureReport(
        format=fmt,
        verdict=r.INDETERMINATE,
        reason="worker_timeout",
        detail=f"verification took longer than {seconds:g} s and was stopped",
    )


def format_of(detected_type: str) -> str | None:
    """The report format of a document type that can carry a signature, else None."""
    return _FORMAT_OF.get(detected_type)


class Verifier:
    """One process's trust store, reloaded when its files change, and the two kinds of job.
    Built once per process: by the verifier processes, and by the analysis processes, which
    verify a message's small signed parts themselves (one hand-off fewer per message)."""

    def __init__(
        self,
        anchors: list[str],
        crls: list[str],
        revocation: str,
        weak_algorithms: str = "indeterminate",
    ) -> None:
        logging.getLogger("pyhanko").setLevel(logging.CRITICAL)  # its diff tracebacks are reports
        self.trust = TrustStore.load(anchors, crls, revocation, weak_algorithms)
        self._looked = time.monotonic()

    def _current(self) -> TrustStore:
        now = time.monotonic()
        if now - self._looked >= RELOAD_CHECK:
            self._looked = now
            with contextlib.suppress(Exception):  # keep the old store if a new file is bad
                self.trust = self.trust.reloaded()
        return self.trust

    def document(
        self,
        path: str | bytes,
        detected_type: str,
        filename: str | None,
        detached_path: str | bytes | None,
    ) -> list[SignatureReport]:
        return verify_file(path, detected_type, filename, self._current(), detached_path)

    def smime(
        self, signature_path: str | bytes, signed_path: str | bytes | None
    ) -> list[SignatureReport]:
        return verify_smime_files(signature_path, signed_path, self._current())


def verify_worker(
    anchors: list[str],
    crls: list[str],
    revocation: str,
    weak_algorithms: str = "indeterminate",
) -> Callable[[tuple[str, tuple[Any, ...]]], list[SignatureReport]]:
    """Runs in the worker: load the trust store once; the handler verifies one job."""
    verifier = Verifier(anchors, crls, revocation, weak_algorithms)

    def handle(job: tuple[str, tuple[Any, ...]]) -> list[SignatureReport]:
        kind, args = job
        if kind == "document":
            path, detected_type, filename, detached_path = args
            files: tuple[str | bytes | None, ...] = (path, detached_path)
            result = verifier.document(path, detected_type, filename, detached_path)
        else:
            signature_path, signed_path = args
            files = (signature_path, signed_path)
            result = verifier.smime(signature_path, signed_path)
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
        timeout: float = VERIFY_TIMEOUT,
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
            if isinstance(path, bytes):
                size = len(path)
            else:
                try:
                    size = Path(path).stat().st_size
                except OSError as exc:
                    return [
                        r.malformed(fmt, "unreadable_file", f"cannot read {path}: {exc.strerror}")
                    ]
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
            return [timeout_report(fmt, self.timeout)]
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
