#!/usr/bin/env python3
"""What the intake's hand-off saves (gateway/handoff.py): CPU per 200 KB letter.

The pipeline claims two 200 KB letters at a time in the 200 KB load (pipeline/claimsize.py).
Measured on an embedded PostgreSQL, the rows given back between calls so that every call
claims the same two: the claim with the bytes inline (as without the hand-off) and with the
letters' SHA-256 held (the claim leaves their bytes out), this process's CPU and all of
PostgreSQL's. Then what the hand-off itself costs: frames written with `offer` into a Unix
socket pair (a child's stdin under uvloop) and read back with `FrameReader`, both ends in
this process. Median and minimum of `--rounds` rounds; the ways interleave.

    .venv/bin/python bench/handoff.py
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import update  # noqa: E402

from gateway.handoff import FrameReader, Handed, offer  # noqa: E402
from gateway.pipeline.claimsize import INLINE_MAX  # noqa: E402
from store.db import Database  # noqa: E402
from store.embedded import EmbeddedPostgres  # noqa: E402
from store.models import Message  # noqa: E402
from store.results import claim_received  # noqa: E402
from tests.pipeline.pipe_support import make_mail, submit  # noqa: E402

LEASE = dt.timedelta(seconds=60)
PER_CLAIM = 2


def _postgres_cpu(server: psutil.Process) -> float:
    total = 0.0
    for p in [server, *server.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


async def _claims(
    db: Database, server: psutil.Process, calls: int, held: list[str]
) -> tuple[float, float]:
    """(client µs, PostgreSQL µs) per letter."""
    client = pg = 0.0
    for _ in range(calls):
        async with db.transaction() as s:
            await s.execute(update(Message).values(claimed_by=None, claimed_until=None))
        p0 = _postgres_cpu(server)  # (reading /proc costs this process: not in its figure)
        c0 = time.process_time()
        got = await claim_received(
            await db.direct(), worker="w", lease=LEASE, limit=PER_CLAIM, inline_max=INLINE_MAX,
            held=held,
        )  # fmt: skip
        client += time.process_time() - c0
        pg += _postgres_cpu(server) - p0
        assert len(got) == PER_CLAIM and all((m.raw is None) == bool(held) for m in got)
    return client / calls / PER_CLAIM * 1e6, pg / calls / PER_CLAIM * 1e6


async def _handoff(raws: list[bytes], frames: int) -> float:
    """µs of this process's CPU per frame: written by `offer`, read by `FrameReader`, over a
    Unix socket pair (what uvloop gives a child's stdin), both ends in this process."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    handed, closed = Handed(), asyncio.Event()
    r_transport, _ = await loop.create_unix_connection(
        lambda: FrameReader(handed, closed), sock=theirs
    )
    _, writer = await asyncio.open_unix_connection(sock=ours)
    digests = [hashlib.sha256(r).hexdigest() for r in raws]
    start = time.process_time()
    for n in range(frames):
        raw, sha = raws[n % len(raws)], digests[n % len(raws)]
        assert offer(writer, sha, raw)
        while handed.pop(sha) is None:  # noqa: ASYNC110 (until the reader ran; taken as the pipeline does)
            await asyncio.sleep(0)
    spent = time.process_time() - start
    writer.close()
    await closed.wait()
    r_transport.close()
    return spent / frames * 1e6


async def run(calls: int, rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="edocgw-handoff-"))
    pg = EmbeddedPostgres(tmp / "pgdata")
    db = Database.connect(pg.start(), pool_size=4)
    try:
        await db.upgrade()
        server = psutil.Process(_postmaster(tmp))
        raws = [
            make_mail(f"Công văn số {i}/UBND-VP", body="Kính gửi: Sở.\n" + "x" * 200_000)
            for i in range(PER_CLAIM)
        ]
        for raw in raws:
            await submit(db, raw)
        held = [hashlib.sha256(r).hexdigest() for r in raws]
        inline_c, inline_p, held_c, held_p, hand = [], [], [], [], []
        for _ in range(rounds):
            c, p = await _claims(db, server, calls, [])
            inline_c.append(c)
            inline_p.append(p)
            c, p = await _claims(db, server, calls, held)
            held_c.append(c)
            held_p.append(p)
            hand.append(await _handoff(raws, calls))
        print(
            f"CPU per 200 KB letter, {rounds} rounds of {calls} claims of {PER_CLAIM} "
            "(µs, median / min)"
        )
        for name, us in (
            ("claim, bytes inline: this process", inline_c),
            ("claim, bytes inline: PostgreSQL", inline_p),
            ("claim, bytes held: this process", held_c),
            ("claim, bytes held: PostgreSQL", held_p),
            ("hand-off, socket pair (both ends)", hand),
        ):
            print(f"  {name:<38} {statistics.median(us):7.0f} / {min(us):7.0f}")
        saved = (
            statistics.median(inline_c) + statistics.median(inline_p)
            - statistics.median(held_c) - statistics.median(held_p) - statistics.median(hand)
        )  # fmt: skip
        print(f"  saved per letter (medians)             {saved:7.0f}")
    finally:
        await db.close()
        pg.stop()


def _postmaster(tmp: Path) -> int:
    pid_file = next(tmp.rglob("postmaster.pid"))
    return int(pid_file.read_text().split()[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    uvloop.run(run(args.calls, args.rounds))  # the gateway's own loop
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
