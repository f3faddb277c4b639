"""Pipeline and delivery in child processes of `serve`, at a lower CPU priority than intake.

One Python process runs on one core. With parsing, classifying, routing and delivery in the
process that holds the SMTP listeners, acceptance gets only what that work leaves over, and a
burst of mail is refused or slowed while earlier mail is being processed (DESIGN §9: durable
acceptance at least as fast as Postfix). The children take their work from the database like
any other gateway process (claims, NOTIFY), niced, so the kernel gives intake the CPU first;
nothing waits in memory, the accepted message is already committed.

A child gets the parent's validated settings as one JSON line on its stdin (never in argv or
the environment: the database URL may hold a password) and stops when that pipe closes, so it
never outlives a parent that was killed with SIGKILL. The parent restarts a child that dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time

from config import Settings
from config.settings import Role
from gateway import handoff

log = logging.getLogger("edocgw.workers")

WORKER_ROLES: tuple[Role, ...] = ("pipeline", "delivery")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
STABLE_AFTER = 60.0  # a child that ran this long restarts without the accumulated delay


class WorkerStartError(Exception):
    """A worker process exited or stayed silent before it was ready."""


class WorkerProcesses:
    name = "workers"

    def __init__(self, settings: Settings, db_url: str, roles: list[Role]) -> None:
        self.settings = settings
        self.db_url = db_url
        self.roles = roles
        self.count = settings.gateway.worker_processes
        self._hands_over = self.count == 1 and "pipeline" in roles  # see `hand`
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._started: dict[int, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def _payload(self) -> bytes:
        data = self.settings.model_dump(mode="json")
        data["gateway"]["roles"] = list(self.roles)
        data["gateway"]["worker_processes"] = 0
        data["database"]["url"] = self.db_url
        data["database"]["url_file"] = ""
        return json.dumps(data).encode() + b"\n"

    async def start(self) -> None:
        self._stopping = False
        for n in range(1, self.count + 1):
            self._procs[n] = await self._spawn(n)
        self._tasks = [
            asyncio.create_task(self._supervise(n), name=f"worker-{n}-supervisor")
            for n in self._procs
        ]

    async def _spawn(self, n: int) -> asyncio.subprocess.Process:
        self._started[n] = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.processes.child",
            str(n),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(self._payload())
            await proc.stdin.drain()
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        except (TimeoutError, OSError):
            line = b""
        except BaseException:  # cancelled while starting: leave nothing behind
            await _kill(proc)
            raise
        if line.strip() != b"ready":
            await _kill(proc)
            raise WorkerStartError(
                f"worker process {n} did not start (exit code {proc.returncode}); "
                "its own log lines above say why"
            )
        log.info(
            f"worker process {n} running {', '.join(self.roles)}",
            extra={"pid": proc.pid, "nice": self.settings.gateway.worker_nice},
        )
        return proc

    def hand(self, sha256: str, raw: bytes) -> None:
        """Give the worker process a copy of a message about to be committed, so its pipeline
        claims it without reading the bytes back (gateway/handoff.py). Only with one worker
        process running the pipeline: with several, which one claims it is not known."""
        proc = self._procs.get(1) if self._hands_over else None
        if proc is not None and proc.returncode is None and proc.stdin is not None:
            handoff.offer(proc.stdin, sha256, raw)

    async def _supervise(self, n: int) -> None:
        """Restart child n whenever it exits, waiting longer after each quick failure."""
        failures = 0
        while True:
            proc = self._procs[n]
            code = await proc.wait()
            _forget_metrics(proc.pid)
            if self._stopping:
                return
            if time.monotonic() - self._started[n] >= STABLE_AFTER:
                failures = 0
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
            failures += 1
            log.warning(
                f"worker process {n} exited with code {code}; starting another in {delay:g} s",
                extra={"pid": proc.pid},
            )
            await asyncio.sleep(delay)
            try:
                self._procs[n] = await self._spawn(n)
            except WorkerStartError as e:
                log.error(str(e))  # the dead process stays current: the next round waits longer

    def alive(self) -> bool:
        return len(self._procs) == self.count and all(
            p.returncode is None for p in self._procs.values()
        )

    async def stop(self) -> None:
        """Close each child's stdin (it stops its workers, releasing what they hold) and wait;
        kill what is still running after STOP_TIMEOUT."""
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        procs = list(self._procs.values())
        for p in procs:
            if p.stdin is not None and not p.stdin.is_closing():
                p.stdin.close()
        results = await asyncio.gather(
            *(asyncio.wait_for(p.wait(), STOP_TIMEOUT) for p in procs), return_exceptions=True
        )
        for p, r in zip(procs, results, strict=True):
            if isinstance(r, BaseException):
                log.warning(f"worker process {p.pid} did not stop in {STOP_TIMEOUT:g} s; killed")
                await _kill(p)
            _forget_metrics(p.pid)
        self._procs = {}


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


def _forget_metrics(pid: int) -> None:
    from gateway import metrics

    metrics.process_gone(pid)
