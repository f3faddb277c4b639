#!/usr/bin/env python3
"""Pipeline-only throughput on a real database: N `received` messages in, how fast out?

Starts an embedded PostgreSQL, inserts N messages in state `received` (the listeners' work,
not timed), then starts the pipeline component alone and times it until every message has
left `received`. Prints messages/s per load (median of --runs) and what each message cost in
database round trips, so a change to the pipeline can be measured without SMTP in the way.

    .venv/bin/python bench/pipeline.py                  # plain 1 KB, 200 KB, signed PDF
    .venv/bin/python bench/pipeline.py --quick          # fewer messages
    .venv/bin/python bench/pipeline.py --load plain --count 2000 --receipts
    .venv/bin/python bench/pipeline.py --profile out.prof --load plain   # cProfile the loop

Bounded: fixed counts and a deadline per run. On a shared 2-core machine the figures are
noisy (PostgreSQL shares the cores with the pipeline): take medians, compare within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

from e2e import RCPT, SENDER, setup_agency  # noqa: E402
from e2e import make_message as _e2e_message  # noqa: E402

DEADLINE = 300.0


def make_message(tag: str, i: int, attachment: bytes | None, size: int) -> bytes:
    return _e2e_message(tag, i, attachment, size)[1]


async def insert_received(url: str, raws: list[bytes]) -> None:
    """Insert the load with the listeners' own `insert_message`, 100 per transaction."""
    from store.db import Database
    from store.messages import NewMessage, insert_message

    db = Database.connect(url, pool_size=2)
    try:
        for start in range(0, len(raws), 100):
            async with db.transaction() as s:
                for raw in raws[start : start + 100]:
                    await insert_message(
                        s,
                        NewMessage(
                            source="smtp",
                            peer="127.0.0.1",
                            raw=raw,
                            mail_from=SENDER,
                            rcpt_to=[RCPT],
                        ),
                    )
    finally:
        await db.close()


async def run_pipeline(
    url: str,
    tmp: Path,
    n: int,
    args: argparse.Namespace,
    anchors: list[str],
    crls: list[str],
    **pipe_kw: Any,
) -> tuple[float, int, int, dict[str, int]]:
    """Start the pipeline on the `received` backlog; returns (seconds, transactions,
    statements the pipeline sent, final states)."""
    import asyncpg
    from sqlalchemy import event, func, select

    from config import Settings
    from gateway.pipeline import Pipeline
    from store.db import Database, asyncpg_dsn
    from store.models import Message

    settings = Settings()
    settings.database.url = url
    settings.gateway.data_dir = tmp / "var"
    settings.gateway.hostname = "bench.localdomain"
    settings.trust.anchors = anchors
    settings.trust.crls = crls
    settings.receipts.enabled = args.receipts
    if args.workers:
        settings.gateway.pipeline_workers = args.workers
    settings.gateway.parse_processes = args.parse_processes
    db = Database.connect(url, pool_size=20)
    statements, transactions = [0], [0]

    def count(*_a: object, **_k: object) -> None:
        statements[0] += 1

    def count_tx(*_a: object) -> None:
        transactions[0] += 1

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    event.listen(db.engine.sync_engine, "begin", count_tx)
    # The verifier processes are started (and warm) before the clock starts, as in `serve`.
    from gateway.processes.verify import VerifyPool

    t = settings.trust
    verifier = VerifyPool(
        os.cpu_count() or 1, [*t.anchors, *t.intermediates], t.crls, t.revocation, 30.0
    )
    await verifier.start()
    pipe = Pipeline(settings, db, poll_interval=1.0, verifier=verifier, **pipe_kw)
    watcher = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        # The analysis processes are spawned by start() (as in `serve`, before any mail):
        # the clock starts when the pipeline is ready, as it does for the verifier above.
        await pipe.start()
        tx0, st0 = transactions[0], statements[0]
        t0 = time.monotonic()
        deadline = t0 + DEADLINE
        while time.monotonic() < deadline:
            left = await watcher.fetchval(
                "SELECT count(*) FROM messages WHERE state = 'received' AND source <> 'internal'"
            )
            if left == 0:
                break
            await asyncio.sleep(0.02)
        took = time.monotonic() - t0
        tx = transactions[0] - tx0
        st = statements[0] - st0
        async with db.sessions() as s:
            states = dict(
                (
                    await s.execute(
                        select(Message.state, func.count())
                        .where(Message.source != "internal")
                        .group_by(Message.state)
                    )
                ).all()
            )
    finally:
        await watcher.close()
        await pipe.stop()
        await verifier.close()
        await db.close()
    return took, tx, st, states


async def idle_latency(url: str, tmp: Path, n: int) -> list[float]:
    """Milliseconds from commit to `processed` for *n* messages sent one at a time to an idle
    pipeline (LISTEN/NOTIFY wakes it; the slow poll is set to a minute so it cannot help)."""
    import asyncpg

    from config import Settings
    from gateway.pipeline import Pipeline
    from store.db import Database, asyncpg_dsn
    from store.messages import NewMessage, insert_message

    settings = Settings()
    settings.database.url = url
    settings.gateway.data_dir = tmp / "var"
    db = Database.connect(url, pool_size=5)
    pipe = Pipeline(settings, db, poll_interval=60.0, notice=False)
    watcher = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    out: list[float] = []
    try:
        await pipe.start()
        await asyncio.sleep(1.0)
        for i in range(n):
            async with db.transaction() as s:
                mid = await insert_message(
                    s,
                    NewMessage(
                        source="smtp",
                        peer="127.0.0.1",
                        raw=make_message("idle", i, None, 1024),
                        mail_from=SENDER,
                        rcpt_to=[RCPT],
                    ),
                )
            t0 = time.monotonic()
            while time.monotonic() - t0 < 10:
                q = "SELECT state FROM messages WHERE id = $1"
                if await watcher.fetchval(q, mid) != "received":
                    break
                await asyncio.sleep(0.002)
            out.append((time.monotonic() - t0) * 1000)
            await asyncio.sleep(0.2)
    finally:
        await watcher.close()
        await pipe.stop()
        await db.close()
    return sorted(out)


async def reset(url: str) -> None:
    import asyncpg

    from store.db import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        await conn.execute(
            "TRUNCATE events, signatures, documents, deliveries, messages RESTART IDENTITY CASCADE"
        )
    finally:
        await conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages")
    ap.add_argument("--load", choices=["plain", "200k", "pdf"], action="append")
    ap.add_argument("--count", type=int, default=0, help="messages per run (default by load)")
    ap.add_argument("--runs", type=int, default=3, help="runs per load; the median is printed")
    ap.add_argument("--receipts", action="store_true", help="acceptance receipts on")
    ap.add_argument("--workers", type=int, default=0, help="pipeline_workers (default: config)")
    ap.add_argument("--batch", type=int, default=0, help="messages per claim (default: built in)")
    ap.add_argument("--parse-processes", type=int, default=0, help="[gateway] parse_processes")
    ap.add_argument("--idle", type=int, default=20, help="single messages for the idle latency")
    ap.add_argument("--profile", metavar="FILE", help="cProfile the pipeline (one run) to FILE")
    args = ap.parse_args()
    loads = args.load or ["plain", "200k", "pdf"]
    default = {"plain": 1000, "200k": 300, "pdf": 300}
    k = 0.3 if args.quick else 1.0

    from store.embedded import EmbeddedPostgres
    from tests.support.pki import make_pdf, make_pki, sign_pdf

    tmp = Path(tempfile.mkdtemp(prefix="edocgw-pipe-"))
    tmp.chmod(0o755)
    pki = make_pki(tmp / "pki")
    pdf = sign_pdf(make_pdf("Công văn số 15/UBND-VP về việc đo hiệu năng"), pki.signer("person"))
    anchors, crls = [str(p) for p in pki.anchors], [str(p) for p in pki.crls]
    pg = EmbeddedPostgres(tmp / "pgdata")
    try:
        url = pg.start()
        asyncio.run(setup_agency(url, 9))
        print(
            f"pipeline only, embedded PostgreSQL; receipts {'on' if args.receipts else 'off'}",
            flush=True,
        )
        print(
            f"{'load':<8} {'msgs':>6} {'msg/s (runs)':<30} {'median':>7} {'tx/msg':>7} {'sql/msg':>7}  states"
        )
        for load in loads:
            n = args.count or int(default[load] * k)
            size = 200 * 1024 if load == "200k" else 1024
            att = pdf if load == "pdf" else None
            rates: list[float] = []
            txs: list[float] = []
            sts: list[float] = []
            states: dict[str, int] = {}
            runs = 1 if args.profile else args.runs
            for r in range(runs):
                asyncio.run(reset(url))
                raws = [make_message(f"{load}{r}", i, att, size) for i in range(n)]
                asyncio.run(insert_received(url, raws))
                if args.profile:
                    prof = cProfile.Profile()
                    prof.enable()
                kw = {"batch_size": args.batch} if args.batch else {}
                took, tx, st, states = asyncio.run(
                    run_pipeline(url, tmp, n, args, anchors, crls, **kw)
                )
                if args.profile:
                    prof.disable()
                    prof.dump_stats(args.profile)
                rates.append(n / took)
                txs.append(tx / n)
                sts.append(st / n)
            runs_s = " ".join(f"{x:.0f}" for x in rates)
            print(
                f"{load:<8} {n:>6} {runs_s:<30} {statistics.median(rates):7.0f} "
                f"{statistics.median(txs):7.1f} {statistics.median(sts):7.1f}  {states}",
                flush=True,
            )
        if args.idle:
            asyncio.run(reset(url))
            lat = asyncio.run(idle_latency(url, tmp, args.idle))
            print(
                f"idle: commit→processed p50 {statistics.median(lat):.0f} ms, "
                f"max {lat[-1]:.0f} ms ({len(lat)} messages one at a time)",
                flush=True,
            )
        return 0
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
