"""A pool of worker processes whose jobs can be stopped: the one implementation behind the
signature verifier (gateway/processes/verify.py) and message analysis (pipeline/pools.py).

A thread cannot be stopped: after its timeout it keeps the CPU until the work ends by
itself. So CPU-heavy work on untrusted input runs here instead. Each worker takes one job at
a time over its own pipe, and the pool knows which job each worker runs: a job past its
timeout kills exactly that worker (SIGKILL), a worker that dies fails exactly its job, and
in both cases that worker alone is replaced while the others go on. Each pipe is read and
written by the pool's own I/O threads, so waiting for an answer never blocks the event loop;
the pipe stays in blocking mode, so a job or an answer bigger than the pipe's buffer (a
batch of messages, a small signed part's bytes) crosses whole. Watching it with
`loop.add_reader` instead let uvloop switch it to non-blocking, and such a message then
broke off half-read with EAGAIN and was taken for a dead worker.

Workers start with the "forkserver" method: forking an asyncio service with threads and
open database connections is unsafe, so a fresh single-threaded server process imports the
factories' modules once (`set_forkserver_preload`) and forks each worker from that. A
spawned worker imported the parsers, pyHanko and PDFium itself: 1.6 s of CPU for every
analysis process at start-up and again for every replacement after a job past its deadline;
a fork from the server costs milliseconds. Every pool of a process shares the one server.
A worker is built by a *factory*: a module-level function (so it pickles by name) that runs
once in the child (load a trust store, warm up) and returns the job handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

log = logging.getLogger("edocgw.processes")

Handler = Callable[[Any], Any]
Factory = Callable[..., Handler]


# The modules of every pool's factory, imported by the fork server when it starts (the pools
# of a process are built before the first one starts, so the one server has them all).
_PRELOAD: set[str] = set()


class JobTimeout(Exception):
    """The job ran past its timeout; its worker was killed."""

    def __init__(self, timeout: float, pid: int | None) -> None:
        super().__init__(f"took longer than {timeout:g} s and was stopped")
        self.timeout = timeout
        self.pid = pid


class WorkerDied(Exception):
    """The worker process died while it ran this job (the job, or something from outside)."""

    def __init__(self, exitcode: int | None, pid: int | None) -> None:
        super().__init__(f"the worker process died (exit code {exitcode})")
        self.exitcode = exitcode
        self.pid = pid


class JobFailed(Exception):
    """The handler raised in the worker: `Type: text` of the original (it crossed a pipe)."""


def _child_main(conn: Connection, name: str, factory: Factory, args: tuple[Any, ...]) -> None:
    """Worker process: build the handler once, then answer jobs until EOF or None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    with contextlib.suppress(OSError):  # `ps -o comm`, top and psutil show what it is
        Path("/proc/self/comm").write_text(f"edocgw-{name}"[:15])
    try:
        handle = factory(*args)
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    # What the factory built (imports, trust store, warm-up) lives as long as the process:
    # out of the cyclic collector's sight, every collection in a job skips it (a tenth of a
    # small signed message's analysis was collections walking it again and again).
    gc.collect()
    gc.freeze()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            reply: tuple[str, Any] = ("ok", handle(job))
        except Exception as exc:  # never lose the worker to one job
            reply = ("error", f"{type(exc).__name__}: {exc}")
        del job
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        except Exception as exc:  # an answer that does not pickle
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        del reply


@dataclass(eq=False)
class _Worker:
    process: Any  # multiprocessing.process.BaseProcess
    conn: Connection

    @property
    def pid(self) -> int | None:
        return self.process.pid


class _Died(Exception):
    pass


class ProcessPool:
    """*size* workers built by *factory*(*args*), one job at a time each."""

    def __init__(
        self,
        name: str,
        size: int,
        factory: Factory,
        args: tuple[Any, ...] = (),
        *,
        start_timeout: float = 60.0,
    ) -> None:
        if size < 1:
            raise ValueError("a process pool needs at least one worker")
        self.name = name
        self.size = size
        self._factory = factory
        self._args = args
        self._start_timeout = start_timeout
        self._ctx = multiprocessing.get_context("forkserver")
        _PRELOAD.add(factory.__module__)
        self._ctx.set_forkserver_preload(sorted(_PRELOAD))
        self._idle: asyncio.Queue[_Worker] | None = None
        self._workers: set[_Worker] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._starting: asyncio.Task[None] | None = None
        self._closed = False
        # one blocking send or receive per worker at a time, and one spare for a replacement
        self._io = ThreadPoolExecutor(size + 1, thread_name_prefix=f"edocgw-{name}-io")

    # ------------------------------------------------------------------ public API

    async def start(self) -> None:
        """Start every worker (also done by the first job). Concurrent callers share one
        start; a start that failed is tried again by the next caller."""
        if self._closed:
            raise RuntimeError(f"the {self.name} pool is closed")
        if self._starting is None or (
            self._starting.done()
            and (self._starting.cancelled() or self._starting.exception() is not None)
        ):
            self._starting = asyncio.get_running_loop().create_task(self._start_all())
        await asyncio.shield(self._starting)

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self._workers if w.pid is not None]

    async def run(self, job: Any, time_limit: float | None) -> Any:
        """Run *job* in a free worker and return the handler's answer.

        Stopped after *time_limit* seconds. Raises JobTimeout (the worker was killed),
        WorkerDied, or JobFailed (the handler raised). If the caller is cancelled (its own
        deadline), the worker is killed too: its late answer would otherwise be read by the
        next job, and its CPU would stay busy."""
        if self._closed:
            raise RuntimeError(f"the {self.name} pool is closed")
        await self.start()
        assert self._idle is not None
        worker = await self._idle.get()
        if not worker.process.is_alive() or worker.conn.poll():
            # died while idle (an idle worker never speaks; EOF polls readable): not this job's fault
            worker = await self._replace(worker, restock=False)
        try:
            kind, value = await asyncio.wait_for(self._exchange(worker, job), time_limit)
        except TimeoutError:
            log.warning(
                "%s job took longer than %ss; worker %s killed", self.name, time_limit, worker.pid
            )
            self._replace_later(worker)
            raise JobTimeout(time_limit or 0.0, worker.pid) from None
        except (_Died, OSError) as exc:
            worker.process.join(1.0)
            code = worker.process.exitcode
            log.warning("%s worker %s died (exit %s): %s", self.name, worker.pid, code, exc)
            self._replace_later(worker)
            raise WorkerDied(code, worker.pid) from None
        except BaseException:  # cancelled (or a job that would not pickle): start afresh
            self._replace_later(worker)
            raise
        self._idle.put_nowait(worker)
        if kind != "ok":
            raise JobFailed(value)
        return value

    async def close(self) -> None:
        """Stop the workers (a clean EOF first, then SIGKILL for any that hang)."""
        self._closed = True
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for worker in list(self._workers):
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        for worker in list(self._workers):
            await asyncio.to_thread(worker.process.join, 2.0)
            self._kill(worker)
        self._io.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ internals

    async def _start_all(self) -> None:
        workers = await asyncio.gather(
            *(self._spawn() for _ in range(self.size)), return_exceptions=True
        )
        failed = [w for w in workers if isinstance(w, BaseException)]
        if failed:
            for w in workers:
                if isinstance(w, _Worker):
                    self._kill(w)
            raise failed[0]
        self._idle = asyncio.Queue()
        for w in workers:
            self._idle.put_nowait(w)  # type: ignore[arg-type]

    async def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_child_main,
            args=(child, self.name, self._factory, self._args),
            name=f"edocgw-{self.name}",
            daemon=True,
        )
        worker = _Worker(process, parent)
        self._workers.add(worker)
        try:
            await _start(process)
        except BaseException:
            self._kill(worker)
            raise
        finally:
            child.close()
        try:
            kind, value = await asyncio.wait_for(self._recv(worker), self._start_timeout)
        except _Died:
            self._kill(worker)
            raise RuntimeError(
                f"{self.name} worker exited during start-up (exit code {process.exitcode}); "
                "a script that starts a process pool needs an `if __name__ == '__main__':` guard"
            ) from None
        except BaseException:
            self._kill(worker)
            raise
        if kind != "ready":
            self._kill(worker)
            raise RuntimeError(f"{self.name} worker failed to start: {value}")
        return worker

    async def _exchange(self, worker: _Worker, job: Any) -> tuple[str, Any]:
        """Send *job* and wait for the answer, both in an I/O thread. A job that does not
        pickle raises as it is (the caller replaces the worker, whose pipe may hold part)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._io, worker.conn.send, job)
        return await self._recv(worker)

    async def _recv(self, worker: _Worker) -> tuple[str, Any]:
        """The worker's next message, read whole in an I/O thread; EOF means the worker
        died. A caller that stops waiting (timeout, cancel) kills the worker, which ends
        the read with EOF."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._io, worker.conn.recv)
        except (EOFError, OSError) as exc:
            raise _Died(str(exc) or "pipe closed") from None

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
                log.exception("cannot start a %s worker; retrying in 1 s", self.name)
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


async def _start(process: Any) -> None:
    """`process.start()` in a thread: it waits for the fork server to answer with the pid, and
    the first start waits for the server's own imports. A start cut short (cancelled) is
    still waited for, so the caller can kill what it started."""
    starting = asyncio.ensure_future(asyncio.to_thread(process.start))
    try:
        await asyncio.shield(starting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await starting
        raise
