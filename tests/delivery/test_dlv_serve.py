"""Two real `edocgw serve` processes on one database share the delivery queue.

Every delivery arrives exactly once when both run to the end; when one is SIGKILLed in the
middle nothing is lost (its claims expire and the other process sends them). Delivery is
at-least-once across a crash: a message the dead process had on the wire may arrive twice,
with the same X-Edocgw-Id, so the receiver can drop it. The duplicates are counted, not hidden.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import os
import signal
import sys
import time
from pathlib import Path

from sqlalchemy import func, insert, select, text

from gateway.delivery.trace import edocgw_id
from store.db import CHANNEL_DELIVERIES
from store.models import Delivery, Event, Message
from tests.delivery.support import Recorder, Sink, add_agency, make_raw, start_sink, wait_until

EDOCGW = Path(sys.executable).parent / "edocgw"
REPO = Path(__file__).resolve().parents[2]
HOST = "gw.test.gov.vn"
N_MESSAGES = 300
N_DEST = 10
WORKERS = 20


class Serve:
    """`edocgw serve` in a subprocess, its log in a file."""

    def __init__(self, cfg: Path, log: Path) -> None:
        self.cfg, self.log = cfg, log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        out = self.log.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("EDOCGW_CONFIG", None)
        self.proc = await asyncio.create_subprocess_exec(
            str(EDOCGW), "serve", "--config", str(self.cfg),
            stdout=out, stderr=out, cwd=REPO, env=env,
        )  # fmt: skip
        out.close()

    async def ready(self, within: float = 30) -> None:
        deadline = time.monotonic() + within
        while b"edocgw ready" not in self.log.read_bytes():
            assert self.proc is not None
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not start:\n{self.log.read_text()[-3000:]}")
            await asyncio.sleep(0.1)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.proc.wait(), 10)

    async def stop(self) -> int | None:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError("serve did not stop on SIGTERM within 30 s") from None


def _config(tmp_path: Path, name: str, db_url: str) -> Path:
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(
        f"""
[gateway]
hostname = "{HOST}"
data_dir = "{tmp_path / name}"
claim_timeout = "3s"
verify_processes = 1
# delivery in the serve process itself: these tests kill and count the delivering process
worker_processes = 0
[database]
url = "{db_url}"
pool_size = 5
[smtp]
relay_listen = "127.0.0.1:0"
submission_listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
enabled = false
[delivery]
retry_schedule = ["1s"]
workers = {WORKERS}
concurrency_per_destination = 5
poll_interval = "1s"
connect_timeout = "5s"
command_timeout = "10s"
[receipts]
enabled = false
[logging]
format = "text"
level = "INFO"
""",
        encoding="utf-8",
    )
    return cfg


async def _setup(db, delay: float) -> tuple[list[Sink], dict[str, str]]:
    """Ten destination sinks (agencies) and 300 queued deliveries; returns (sinks, xid→rcpt)."""
    sinks = [await start_sink(Recorder(delay=delay)) for _ in range(N_DEST)]
    for i, sink in enumerate(sinks):
        await add_agency(db, f"000.00.{i:02d}.H53", f"vanban@dv{i}.gov.vn", sink.route)
    expected: dict[str, str] = {}
    async with db.transaction() as s:
        for n in range(N_MESSAGES):
            raw = make_raw(subject=f"Công văn số {n}/UBND-VP", message_id=f"<cv{n}@tayninh.gov.vn>")
            i = n % N_DEST
            msg_id = (
                await s.execute(
                    insert(Message)
                    .values(
                        source="smtp", peer="127.0.0.1", mail_from="vanthu@tayninh.gov.vn",
                        rcpt_to=[f"vanban@dv{i}.gov.vn"], size=len(raw),
                        sha256=hashlib.sha256(raw).hexdigest(), raw=raw, state="processed",
                    )
                    .returning(Message.id)
                )
            ).scalar_one()  # fmt: skip
            await s.execute(
                insert(Delivery).values(
                    message_id=msg_id, recipient=f"vanban@dv{i}.gov.vn",
                    agency_code=f"000.00.{i:02d}.H53",
                )
            )  # fmt: skip
            expected[edocgw_id(msg_id, HOST)] = f"vanban@dv{i}.gov.vn"
        await s.execute(text("SELECT pg_notify(:c, '')"), {"c": CHANNEL_DELIVERIES})
    return sinks, expected


def _received(sinks: list[Sink]) -> list[tuple[str, str]]:
    return [
        (g.header("X-Edocgw-Id") or "", g.rcpt_tos[0])
        for sink in sinks
        for g in sink.recorder.accepted()
    ]


async def _at_least(sinks: list[Sink], n: int) -> bool:
    return len(_received(sinks)) >= n


async def _wait_delivered(db, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        async with db.transaction() as s:
            done = (
                await s.execute(select(func.count()).where(Delivery.state == "delivered"))
            ).scalar_one()
        if done == N_MESSAGES:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"only {done}/{N_MESSAGES} delivered after {within}s")
        await asyncio.sleep(0.2)


async def _worker_pids(db) -> collections.Counter[str]:
    async with db.transaction() as s:
        workers = (
            await s.execute(
                select(Event.detail["worker"].astext).where(
                    Event.kind == "attempt", Event.detail["outcome"].astext == "delivered"
                )
            )
        ).scalars()
        return collections.Counter(w.split(":")[1] for w in workers if w)


async def test_two_serve_processes_deliver_each_message_exactly_once(db, db_url, tmp_path):
    servers = [Serve(_config(tmp_path, n, db_url), tmp_path / f"{n}.log") for n in ("a", "b")]
    sinks: list[Sink] = []
    try:
        for srv in servers:
            await srv.start()
        for srv in servers:
            await srv.ready()
        sinks, expected = await _setup(db, delay=0.005)
        await _wait_delivered(db, 60)
        got = _received(sinks)
        assert len(got) == N_MESSAGES, f"{len(got) - len(set(got))} duplicates"
        assert dict(got) == expected, "each message reached its own destination"
        pids = await _worker_pids(db)
        assert set(pids) == {str(s.pid) for s in servers}, f"both processes delivered: {pids}"
        for srv in servers:
            assert await srv.stop() == 0
    finally:
        for srv in servers:
            with contextlib.suppress(Exception):
                await srv.stop()
        for sink in sinks:
            await sink.close()


async def test_sigkill_during_delivery_loses_nothing(db, db_url, tmp_path):
    servers = [Serve(_config(tmp_path, n, db_url), tmp_path / f"{n}.log") for n in ("a", "b")]
    victim, survivor = servers
    sinks: list[Sink] = []
    try:
        for srv in servers:
            await srv.start()
        for srv in servers:
            await srv.ready()
        sinks, expected = await _setup(db, delay=0.05)
        await wait_until(lambda: _at_least(sinks, 60), 30, "the first deliveries", 0.02)
        async with db.transaction() as s:
            in_flight = (
                await s.execute(
                    select(func.count()).where(
                        Delivery.state == "sending",
                        Delivery.claimed_by.like(f"%:{victim.pid}:%"),
                    )
                )
            ).scalar_one()
        await victim.kill()
        await _wait_delivered(db, 60)

        got = _received(sinks)
        unique = set(got)
        duplicates = len(got) - len(unique)
        print(
            f"\nSIGKILL with {in_flight} deliveries claimed by the victim: "
            f"{len(unique)} unique, {duplicates} duplicate(s) (same X-Edocgw-Id)"
        )
        assert unique == set(expected.items()), "no message is lost"
        assert duplicates <= WORKERS, "only what was on the wire at the kill can repeat"
        pids = await _worker_pids(db)
        assert pids[str(survivor.pid)] > 0 and pids[str(victim.pid)] > 0
        assert await survivor.stop() == 0
    finally:
        for srv in servers:
            with contextlib.suppress(Exception):
                await srv.stop()
        for sink in sinks:
            await sink.close()
