"""The process pool behind analysis and verification, on the event loop `serve` runs
(uvloop) and on asyncio's own: jobs and answers far bigger than a pipe's buffer cross whole,
and a job past its time limit kills only its worker. Workers, replacements too, come from a
fork server that imported the factory's module once; a pool closed while it starts leaves
no process behind."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import uvloop

from gateway.processes.pool import JobTimeout, ProcessPool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMPORTED_BY = os.getpid()  # in a pool's worker: the process that imported this module


def echo_worker() -> Callable[[Any], Any]:
    """Factory run in the child: answers a job with its bytes reversed, or sleeps."""

    def handle(job: tuple[str, Any]) -> Any:
        kind, value = job
        if kind == "sleep":
            time.sleep(value)
            return "woke"
        if kind == "where":  # after a while, so that jobs at once take a worker each
            time.sleep(value)
            return os.getpid(), IMPORTED_BY
        return value[::-1]

    return handle


async def _big_jobs_and_a_timeout() -> None:
    pool = ProcessPool("echo", 2, echo_worker)
    try:
        await pool.start()
        payloads = [bytes([i]) * (3 * 1024 * 1024) + b"end" for i in range(4)]
        answers = await asyncio.gather(*(pool.run(("echo", p), 60) for p in payloads))
        assert answers == [p[::-1] for p in payloads]
        with pytest.raises(JobTimeout):
            await pool.run(("sleep", 30), 0.5)
        assert await pool.run(("echo", b"abc"), 60) == b"cba"  # the pool goes on
    finally:
        await pool.close()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_jobs_and_answers_bigger_than_a_pipe_cross_whole(loop: str) -> None:
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(asyncio.wait_for(_big_jobs_and_a_timeout(), 120))


# As `serve` does it: a fresh process builds its pools, then starts them.
_PROBE = """
import asyncio, contextlib, json, psutil
from gateway.processes.pool import JobTimeout, ProcessPool
from tests.foundation.test_fnd_process_pool import echo_worker

async def main():
    early = ProcessPool("early-close", 2, echo_worker)
    pool = ProcessPool("probe", 2, echo_worker)
    starting = asyncio.ensure_future(early.start())
    await asyncio.sleep(0.2)  # the fork server is still importing
    await early.close()
    with contextlib.suppress(asyncio.CancelledError):
        await starting
    try:
        first = await asyncio.gather(*(pool.run(("where", 0.3), 60) for _ in range(2)))
        with contextlib.suppress(JobTimeout):
            await pool.run(("sleep", 30), 0.5)
        after = await asyncio.gather(*(pool.run(("where", 0.3), 60) for _ in range(2)))
    finally:
        await pool.close()
    def named(p):
        try:
            return p.name()
        except psutil.Error:  # gone meanwhile
            return ""

    left = []
    for _ in range(30):
        left = [p.pid for p in psutil.Process().children(recursive=True)
                if named(p).startswith("edocgw-early")]
        if not left:
            break
        await asyncio.sleep(0.1)
    print(json.dumps({"first": first, "after": after, "left": left}))

asyncio.run(main())
"""


def test_workers_are_forked_from_a_server_that_imported_the_factory_once() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    pairs = [tuple(p) for p in seen["first"] + seen["after"]]
    workers = {pid for pid, _ in pairs}
    importers = {imported_by for _, imported_by in pairs}
    assert len(workers) == 3  # two, and the one that replaced the worker killed at its deadline
    assert len(importers) == 1 and not importers & workers  # the server's import, not theirs
    assert seen["left"] == []  # closed while starting: nothing left running
