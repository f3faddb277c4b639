"""How long `edocgw report` (store.report) takes over a million messages.

Starts an embedded PostgreSQL in a temporary folder (or uses `--url`), fills it with 60
agencies, `--messages` messages (default 1,000,000) spread over 18 months and about 1.5
deliveries per message, all with `generate_series` in a few INSERT … SELECT statements (not
one insert per row), runs ANALYZE, then times the per-agency report and the monthly one
(`--runs` each, median printed). Target: the per-agency report under 2 s. As the machine
may be shared, it also prints the CPU seconds the query costs in one backend with parallel
workers off (read from /proc: the embedded server runs on this machine), which load does not
inflate.
Run: ``python bench/report.py`` (from the repository root)."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import text  # noqa: E402

AGENCIES = 60

FILL = [
    # 60 agencies, each with an inbox and a domain.
    f"""
    INSERT INTO agencies (code, name, address, domains)
    SELECT '000.00.00.H' || lpad(k::text, 2, '0'), 'Cơ quan ' || k,
           'vanthu@a' || k || '.gov.vn', ARRAY['a' || k || '.gov.vn']
    FROM generate_series(0, {AGENCIES - 1}) AS k
    ON CONFLICT DO NOTHING
    """,
    # Messages: one every ~47 s over 18 months; 90 % from agencies (three senders each),
    # 10 % from elsewhere; verdicts mixed; a few internal and duplicates.
    """
    INSERT INTO messages (received_at, source, peer, mail_from, size, sha256, raw, state,
                          verdict, duplicate_of)
    SELECT timestamptz '2025-01-01 00:00+07' + g * interval '47 seconds',
           CASE WHEN g % 97 = 0 THEN 'internal' ELSE 'smtp' END,
           '127.0.0.1',
           CASE WHEN g % 10 = 0 THEN 'someone' || (g % 1000) || '@example.org'
                ELSE 'vanthu' || (g % 3) || '@a' || (g % 60) || '.gov.vn' END,
           100, md5(g::text), '\\x'::bytea, 'processed',
           CASE WHEN g % 5 = 0 THEN 'invalid' WHEN g % 2 = 0 THEN 'valid' ELSE 'unsigned' END,
           CASE WHEN g % 211 = 0 THEN 1 END
    FROM generate_series(1, :n) AS g
    """,
    # Deliveries: every message to one agency, every second one to another as well.
    """
    INSERT INTO deliveries (message_id, recipient, agency_code, state, created_at, delivered_at)
    SELECT m.id, 'vanban@a' || v.k || '.gov.vn', '000.00.00.H' || lpad(v.k::text, 2, '0'),
           CASE WHEN m.id % 20 = 0 THEN 'deferred' WHEN m.id % 53 = 0 THEN 'bounced'
                WHEN m.id % 71 = 0 THEN 'held' ELSE 'delivered' END,
           m.received_at,
           CASE WHEN m.id % 20 <> 0 AND m.id % 53 <> 0 AND m.id % 71 <> 0
                THEN m.received_at + ((m.id % 600) + 1) * interval '1 second' END
    FROM messages AS m,
         LATERAL (VALUES ((m.id * 7) % 60, true), ((m.id * 13) % 60, m.id % 2 = 0)) AS v(k, wanted)
    WHERE v.wanted
    ON CONFLICT ON CONSTRAINT uq_deliveries_message_recipient DO NOTHING
    """,
]


def _cpu(pid: int) -> float:
    """CPU seconds a local PostgreSQL backend has used (the embedded server runs here)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(url: str, n: int, runs: int) -> None:
    from store.db import Database
    from store.report import usage_by_agency, usage_by_month

    db = Database.connect(url, pool_size=2)
    try:
        await db.upgrade()
        async with db.transaction() as s:
            have = (await s.execute(text("SELECT count(*) FROM messages"))).scalar_one()
        if have < n:
            t0 = time.perf_counter()
            async with db.transaction() as s:
                for sql in FILL:
                    await s.execute(text(sql), {"n": n - have} if ":n" in sql else {})
            async with db.transaction() as s:
                await s.execute(text("ANALYZE messages, deliveries, agencies"))
            print(f"filled {n - have:,} messages in {time.perf_counter() - t0:.1f} s")
        async with db.transaction() as s:
            m = (await s.execute(text("SELECT count(*) FROM messages"))).scalar_one()
            d = (await s.execute(text("SELECT count(*) FROM deliveries"))).scalar_one()
        print(f"database: {m:,} messages, {d:,} deliveries, {AGENCIES} agencies")
        print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for name, fn in (("per agency", usage_by_agency), ("per month", usage_by_month)):
            walls, cpus, rows = [], [], []
            for serial in (False, True):
                for _ in range(runs):
                    async with db.transaction() as s:
                        pid = (await s.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                        if serial:  # all the work in this one backend, so its CPU time is all
                            await s.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
                        c0, t0 = _cpu(pid), time.perf_counter()
                        rows = await fn(s, None, None)
                        (cpus if serial else walls).append(
                            _cpu(pid) - c0 if serial else time.perf_counter() - t0
                        )
            print(
                f"report {name:10}: {statistics.median(walls):.2f} s wall (median of {runs}), "
                f"{statistics.median(cpus):.2f} s CPU in one backend without parallel workers; "
                f"{len(rows)} rows"
            )
        import datetime as dt

        t0 = time.perf_counter()
        async with db.transaction() as s:
            await usage_by_agency(s, dt.date(2025, 6, 1), dt.date(2025, 6, 30))
        print(f"report per agency, one month (June 2025): {time.perf_counter() - t0:.2f} s wall")
    finally:
        await db.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url", help="an existing PostgreSQL (default: embedded, temporary)")
    args = parser.parse_args()
    if args.url:
        asyncio.run(run(args.url, args.messages, args.runs))
        return 0
    from store.embedded import EmbeddedPostgres

    tmp = Path(tempfile.mkdtemp(prefix="edocgw-report-"))
    tmp.chmod(0o755)
    pg = EmbeddedPostgres(tmp / "pgdata")
    try:
        url = pg.start()
        asyncio.run(run(url, args.messages, args.runs))
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
