"""The process pool behind analysis and verification, on the event loop `serve` runs
(uvloop) and on asyncio's own: jobs and answers far bigger than a pipe's buffer cross whole,
and a job past its time limit kills only its worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import uvloop

from gateway.processes.pool import JobTimeout, ProcessPool


def echo_worker() -> Callable[[Any], Any]:
    """Factory run in the child: answers a job with its bytes reversed, or sleeps."""

    def handle(job: tuple[str, Any]) -> Any:
        kind, value = job
        if kind == "sleep":
            time.sleep(value)
            return "woke"
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
