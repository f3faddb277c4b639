"""Verification in worker processes, so the event loop never holds the GIL for it.

pyHanko and certvalidator are CPU-bound and hold the GIL (DESIGN §5: ~14 ms per signed
PDF), and their async API never yields, so threads gain nothing. Each worker loads the trust
store once, then takes jobs (file paths, not megabytes of bytes) over its own pipe. The pool
knows which job each worker runs, so a timeout or a dead worker fails exactly that job, only
that worker is replaced, and the next job is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from signing import report as r
from signing.report import SignatureReport
from signing.trust import TrustStore

log = logging.getLogger(__name__)
_FORMAT_OF = {"pdf": "pdf", "cms": "cms", "edxml": "xmldsig", "xml": "xmldsig"}
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
# pyHanko leaves the file's bytes in reference cycles: a worker kept a 46 MB PDF until the
# cyclic collector happened to run (bench/memory.py). After a job this big, collect at once.
COLLECT_AFTER_BYTES = 8 * 1024 * 1024


def _worker_main(
    conn: Connection,
    anchors: list[str],
    crls: list[str],
    revocation: str,
    weak_algorithms: str = "indeterminate",
) -> None:
    """Worker process: load the trust store once, then answer jobs until EOF or None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)  # its diff tracebacks are reports
    from signing.verify import verify_file, verify_smime_files

    try:
        trust = TrustStore.load(anchors, crls, revocation, weak_algorithms)
    except Exception as exc:
        conn.send(("error", str(exc)))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        kind, args = job
        with contextlib.suppress(Exception):  # keep the old store if a new file is bad
            trust = trust.reloaded()
        files: tuple[str | None, ...] = ()
        try:
            if kind == "document":
                path, detected_type, filename, detached_path = args
                files = (path, detached_path)
                result = verify_file(path, detected_type, filename, trust, detached_path)
            else:
                signature_path, signed_path = args
                files = (signature_path, signed_path)
                result = verify_smime_files(signature_path, signed_path, trust)
            reply: tuple[str, Any] = ("ok", result)
            del result
        except Exception as exc:  # never lose the worker to one job
            reply = ("error", f"{type(exc).__name__}: {exc}")
        if _size(files) >= COLLECT_AFTER_BYTES:
            gc.collect()  # before the reply, so the memory is back when the job is done
        conn.send(reply)
        del reply


def _size(paths: Iterable[str | None]) -> int:
    total = 0
    for p in paths:
        if p:
            with contextlib.suppress(OSError):
                total += os.stat(p).st_size
    return total


@dataclass(eq=False)
class _Worker:
    process: Any  # multiprocessing.process.BaseProcess
    conn: Connection

    @property
    def pid(self) -> int | None:
        return self.process.pid


class VerifyPool:
    """A pool of *max_workers* verifier processes with a per-job *timeout* (seconds).

    Workers start with the "spawn" method: forking an asyncio service with threads and open
    database connections is unsafe, and spawn costs only at start-up and after a failure."""

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
        self._anchors = [str(p) for p in trust_anchors]
        self._crls = [str(p) for p in crls]
        # fail here, naming the file or the value
        TrustStore.load(self._anchors, self._crls, revocation, weak_algorithms)
        self._revocation = revocation
        self._weak_algorithms = weak_algorithms
        self._size = max_workers
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._start_timeout = start_timeout
        self._ctx = multiprocessing.get_context("spawn")
        self._idle: asyncio.Queue[_Worker] | None = None
        self._workers: set[_Worker] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self._closed = False

    # ------------------------------------------------------------------ public API

    async def start(self) -> None:
        """Start every worker (also done lazily by the first job)."""
        if self._started:
            return
        self._started = True
        self._idle = asyncio.Queue()
        workers = await asyncio.gather(*(self._spawn() for _ in range(self._size)))
        for worker in workers:
            self._idle.put_nowait(worker)

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self._workers if w.pid is not None]

    async def verify_path(
        self,
        path: str,
        detected_type: str,
        filename: str | None = None,
        detached_path: str | None = None,
    ) -> list[SignatureReport]:
        """Verify a spooled attachment (see :func:`signing.verify.verify_document`)."""
        if detected_type not in _FORMAT_OF:
            return []
        fmt = _FORMAT_OF[detected_type]
        too_big = self._too_big(fmt, path, detached_path)
        if too_big:
            return too_big
        return await self._run(fmt, ("document", (path, detected_type, filename, detached_path)))

    async def verify_smime_paths(
        self, signature_path: str, signed_path: str | None = None
    ) -> list[SignatureReport]:
        """Verify S/MIME: the decoded signature and the raw signed part, both spooled."""
        too_big = self._too_big("smime", signature_path, signed_path)
        if too_big:
            return too_big
        return await self._run("smime", ("smime", (signature_path, signed_path)))

    async def close(self) -> None:
        """Stop the workers (a clean EOF first, then SIGKILL for any that hang)."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for worker in list(self._workers):
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        for worker in list(self._workers):
            await asyncio.to_thread(worker.process.join, 2.0)
            self._kill(worker)

    async def __aenter__(self) -> VerifyPool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ internals

    def _too_big(self, fmt: str, *paths: str | None) -> list[SignatureReport] | None:
        for path in paths:
            if path is None:
                continue
            try:
                size = Path(path).stat().st_size
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

    async def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_worker_main,
            args=(child, self._anchors, self._crls, self._revocation, self._weak_algorithms),
            name="edocgw-verify",
            daemon=True,
        )
        process.start()
        child.close()
        worker = _Worker(process, parent)
        self._workers.add(worker)
        try:
            kind, value = await asyncio.wait_for(self._recv(worker), self._start_timeout)
        except _WorkerDied:
            self._kill(worker)
            raise RuntimeError(
                f"verification worker exited during start-up (exit code {process.exitcode}); "
                "a script that starts a VerifyPool needs an `if __name__ == '__main__':` guard"
            ) from None
        except BaseException:
            self._kill(worker)
            raise
        if kind != "ready":
            self._kill(worker)
            raise RuntimeError(f"verification worker failed to start: {value}")
        return worker

    async def _recv(self, worker: _Worker) -> tuple[str, Any]:
        """Wait for the worker's next message without blocking the loop: the pipe is
        watched with add_reader; EOF means the worker died."""
        loop = asyncio.get_running_loop()
        fd = worker.conn.fileno()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, wake)
        try:
            await ready
        finally:
            loop.remove_reader(fd)
        try:
            return worker.conn.recv()
        except (EOFError, OSError) as exc:
            raise _WorkerDied(str(exc) or "pipe closed") from None

    async def _run(self, fmt: str, job: tuple[str, tuple]) -> list[SignatureReport]:
        if self._closed:
            raise RuntimeError("the verification pool is closed")
        if not self._started:
            await self.start()
        assert self._idle is not None
        worker = await self._idle.get()
        if not worker.process.is_alive() or worker.conn.poll():
            # died while idle (an idle worker never speaks; EOF polls readable): not this job's fault
            worker = await self._replace(worker, restock=False)
        try:
            worker.conn.send(job)
            kind, value = await asyncio.wait_for(self._recv(worker), self.timeout)
        except TimeoutError:
            log.warning(
                "verification job timed out after %ss; worker %s killed", self.timeout, worker.pid
            )
            self._replace_later(worker)
            return [
                r.SignatureReport(
                    format=fmt,
                    verdict=r.INDETERMINATE,
                    reason="worker_timeout",
                    detail=f"verification took longer than {self.timeout:g} s and was stopped",
                )
            ]
        except (_WorkerDied, OSError) as exc:
            code = worker.process.exitcode
            log.warning("verification worker %s died (exit %s): %s", worker.pid, code, exc)
            self._replace_later(worker)
            return [
                r.malformed(
                    fmt,
                    "worker_died",
                    f"the verification worker died (exit code {code}) on this file",
                )
            ]
        except asyncio.CancelledError:
            self._replace_later(worker)  # its answer would be read by the next job: discard it
            raise
        self._idle.put_nowait(worker)
        return value if kind == "ok" else [r.malformed(fmt, "malformed", str(value))]

    def _replace_later(self, worker: _Worker) -> None:
        self._kill(worker)
        if self._closed:
            return
        task = asyncio.get_running_loop().create_task(self._replace(worker, restock=True))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _replace(self, worker: _Worker, *, restock: bool) -> _Worker:
        self._kill(worker)
        while True:
            try:
                fresh = await self._spawn()
                break
            except Exception:
                log.exception("cannot start a verification worker; retrying in 1 s")
                await asyncio.sleep(1.0)
        if restock and self._idle is not None:
            self._idle.put_nowait(fresh)
        return fresh

    def _kill(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(1.0)
        with contextlib.suppress(OSError):
            worker.conn.close()
        self._workers.discard(worker)


class _WorkerDied(Exception):
    pass
