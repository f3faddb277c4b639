"""A worker process of `serve` (see gateway/processes/supervisor.py): `python -m gateway.processes.child N`.

Reads its settings as one JSON line on stdin, lowers its CPU priority, runs the components of
its roles, writes `ready` on stdout, and stops when stdin closes (the parent stopping, or
gone) or on SIGTERM. Until then stdin brings the bytes of the messages the parent's intake
commits (gateway/handoff.py). SIGINT is left to the parent: a terminal's Ctrl-C reaches the
whole process group, and the parent stops intake before its workers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from config import Settings
from gateway.app import STOP_TIMEOUT, Component, build_components
from gateway.handoff import FrameReader, Handed
from gateway.logsetup import setup_logging
from store.db import open_database

log = logging.getLogger("edocgw.worker")


async def run(settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    handed = Handed()  # what the intake hands over on stdin after the settings
    await loop.connect_read_pipe(lambda: FrameReader(handed, stopping), sys.stdin)
    db = await open_database(settings)
    components: list[Component] = []
    try:
        components = build_components(settings, db, handed)
        for c in components:
            await c.start()
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        # Nobody reads the pipe after this: anything a library prints goes to the log instead
        # of filling the pipe until this process blocks.
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        await stopping.wait()
    finally:
        for c in reversed(components):
            try:
                await asyncio.wait_for(c.stop(), STOP_TIMEOUT)
            except Exception as e:
                log.warning(f"stopping {c.name} failed", extra={"error": repr(e)})
        await db.close()
    return 0


def main() -> int:
    number = sys.argv[1] if len(sys.argv) > 1 else "1"
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        settings = Settings.model_validate_json(sys.stdin.buffer.readline())
    except ValueError as e:
        print(f"edocgw worker {number}: unusable settings from the parent: {e}", file=sys.stderr)
        return 2
    g = settings.gateway
    setup_logging(settings.logging.level, settings.logging.format, process=f"worker-{number}")
    os.nice(g.worker_nice)
    runner = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    try:
        return runner(run(settings))
    except Exception:
        log.exception("worker process failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
