#!/usr/bin/env python3
"""What holding senders costs the listener: N transactions held by the pacing for the whole
`in_flow_delay` (1 s) while the pipeline stays behind, and the CPU the listener spent on it.

The backlog reading is stubbed (always "behind", 1 ms per reading), so this measures the
hold itself, not PostgreSQL. Before one watcher released held transactions, each looked
again every 10 ms: a hundred held senders cost a fifth of a core.

    .venv/bin/python bench/inflow.py
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config import Settings  # noqa: E402
from gateway.smtp.inflow import InFlow  # noqa: E402
from store.backlog import Backlog  # noqa: E402

BEHIND = Backlog(lag=5.0, taking=True, waiting=10_000, weight=10**9)


class _NoDatabase:
    url = "postgresql://unused/unused"


async def hold(n: int) -> tuple[float, float]:
    inflow = InFlow(Settings(), _NoDatabase())  # type: ignore[arg-type]

    async def reading() -> None:
        await asyncio.sleep(0.001)
        inflow._reading, inflow._read_at = BEHIND, time.monotonic()

    inflow._read = reading  # type: ignore[method-assign]
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(inflow.wait() for _ in range(n)))
    return (time.process_time() - cpu) * 1000, time.perf_counter() - wall


def main() -> None:
    import statistics

    import uvloop

    for n in (10, 100, 500):
        runs = [uvloop.run(hold(n)) for _ in range(3)]
        cpu = statistics.median(c for c, _ in runs)
        wall = statistics.median(w for _, w in runs)
        print(f"{n:4d} transactions held {wall:.2f} s: listener CPU {cpu:6.1f} ms (median of 3)")


if __name__ == "__main__":
    main()
