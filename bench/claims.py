#!/usr/bin/env python3
"""Client CPU of the workers' claims: through a SQLAlchemy session and through the process's
own asyncpg pool (store/direct.py), the same statements on an embedded PostgreSQL.

Measures, per call, the pipeline's claim of four 15 KB letters (a signed load's claim), the
delivery's claim of four deliveries, and the delivery's next-due look-up. The claimed rows
are given back between calls, so every call claims the same rows. Median and minimum of
`--rounds` rounds of `--calls` calls each; the two ways interleave.

    .venv/bin/python bench/claims.py
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import update  # noqa: E402

from store import deliveries as repo  # noqa: E402
from store.db import Database  # noqa: E402
from store.embedded import EmbeddedPostgres  # noqa: E402
from store.models import Delivery, Message  # noqa: E402
from store.results import claim_received  # noqa: E402
from tests.pipeline.pipe_support import make_mail, submit  # noqa: E402

LEASE = dt.timedelta(seconds=60)
RCPT = "vanban@dich.gov.vn"


async def run(calls: int, rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="edocgw-claims-"))
    pg = EmbeddedPostgres(tmp / "pgdata")
    db = Database.connect(pg.start(), pool_size=4)
    try:
        await db.upgrade()
        for i in range(4):
            mid = await submit(
                db, make_mail(f"Công văn số {i}", body="x" * 15_000, to=RCPT), [RCPT]
            )
            async with db.transaction() as s:
                s.add(Delivery(message_id=mid, recipient=RCPT))

        async def free() -> None:
            async with db.transaction() as s:
                await s.execute(update(Message).values(claimed_by=None, claimed_until=None))
                await s.execute(
                    update(Delivery).values(claimed_by=None, claimed_until=None, state="queued")
                )

        async def pipeline_session() -> object:
            async with db.autocommit() as s:
                return await claim_received(
                    s, worker="w", lease=LEASE, limit=32, inline_max=1 << 20, max_bytes=1 << 20
                )

        async def pipeline_pool() -> object:
            return await claim_received(
                await db.direct(),
                worker="w",
                lease=LEASE,
                limit=32,
                inline_max=1 << 20,
                max_bytes=1 << 20,
            )

        async def delivery_session() -> object:
            async with db.autocommit() as s:
                return await repo.claim_due(s, worker="w", lease=LEASE, limit=10)

        async def delivery_pool() -> object:
            return await repo.claim_due(await db.direct(), worker="w", lease=LEASE, limit=10)

        async def due_session() -> object:
            async with db.autocommit() as s:
                return await repo.next_due_at(s)

        async def due_pool() -> object:
            return await repo.next_due_at(await db.direct())

        ways = {
            "pipeline claim (4 letters), session": pipeline_session,
            "pipeline claim (4 letters), pool": pipeline_pool,
            "delivery claim (4), session": delivery_session,
            "delivery claim (4), pool": delivery_pool,
            "next-due look-up, session": due_session,
            "next-due look-up, pool": due_pool,
        }
        figures: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(rounds):
            for name, way in ways.items():
                spent = 0.0
                for _ in range(calls):
                    await free()
                    start = time.process_time()
                    await way()
                    spent += time.process_time() - start
                figures[name].append(spent / calls * 1e6)
        print(f"client CPU per call, {rounds} rounds of {calls} calls (µs, median / min)")
        for name, us in figures.items():
            print(f"  {name:<38} {statistics.median(us):7.0f} / {min(us):7.0f}")
    finally:
        await db.close()
        pg.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.run(run(args.calls, args.rounds))
    except ImportError:
        asyncio.run(run(args.calls, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
