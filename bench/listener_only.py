#!/usr/bin/env python3
"""Run only the SMTP listeners (no pipeline, delivery or admin) on a config, for bench/ingest.

`edocgw serve` also parses, routes and sends receipts for what it accepts, which competes for
the same cores; this isolates the cost of durable acceptance. Logs like `edocgw serve`, so the
bench finds the relay port the same way. `--profile FILE` writes cProfile stats on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def run(config: str) -> None:
    from config import load_settings
    from gateway.logsetup import setup_logging
    from gateway.smtp import SmtpListener
    from store.db import open_database

    settings = load_settings(config)
    setup_logging(settings.logging.level, settings.logging.format)
    db = await open_database(settings)
    await db.upgrade()
    listener = SmtpListener(settings, db)
    await listener.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await listener.stop()
    await db.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--profile", default="")
    ap.add_argument("--no-uvloop", action="store_true")
    args = ap.parse_args()
    runner = asyncio.run
    if not args.no_uvloop:
        import uvloop

        runner = uvloop.run
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        try:
            runner(run(args.config))
        finally:
            prof.disable()
            prof.dump_stats(args.profile)
    else:
        runner(run(args.config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
