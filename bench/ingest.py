#!/usr/bin/env python3
"""Durable SMTP acceptance: edocgw's relay listener against a local Postfix, same load, same run.

Starts an embedded PostgreSQL and `edocgw serve` in a temporary folder, a throwaway
loopback-only Postfix (tests/support/postfix.py: its own main.cf/master.cf) relaying to
Postfix's `smtp-sink`, then drives each with Postfix's `smtp-source` at 1 KB and 200 KB, 10 and
50 sessions, and prints accepted messages/s (median of the runs), the ratio, and the gateway's
peak RSS. Every message the gateway accepted is checked to be in the database.

Between runs it waits until the server just measured has worked off what it accepted (the
gateway's pipeline and deliveries, Postfix's queue), so neither is measured while the other's
leftover work takes CPU; it prints how long that took. `--overlap` skips the wait.

    .venv/bin/python bench/ingest.py            # 3 runs per load
    .venv/bin/python bench/ingest.py --quick    # 1 run, fewer messages

Runs as root (Postfix's daemons drop to the `postfix` user; smtp-sink to `nobody`). Bounded:
every smtp-source run has a time limit and a fixed message count. Figures on a shared 2-core
machine are noisy; read the ratio, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.postfix import Postfix as LoopbackPostfix  # noqa: E402
from tests.support.postfix import PostfixError, free_port  # noqa: E402

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
RUN_TIMEOUT = 180.0
DRAIN_TIMEOUT = 600.0
RCPT = "vanban@localhost"  # a processing address: accepted by the gateway from anyone
SENDER = "from@a.test"


@dataclass(frozen=True)
class Load:
    size: int
    sessions: int
    count: int

    @property
    def label(self) -> str:
        size = f"{self.size // 1024} KB"
        return f"{size}, {self.sessions} sessions"


@dataclass
class Result:
    rates: dict[str, list[float]] = field(default_factory=dict)


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.recv(512)  # the greeting: the server is really up
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answers on 127.0.0.1:{port} after {timeout:g} s")


# -- the gateway ---------------------------------------------------------------------------


class Gateway:
    def __init__(
        self, tmp: Path, db_url: str, listener_only: bool = False, profile: str = ""
    ) -> None:
        self.tmp = tmp
        self.db_url = db_url
        self.listener_only = listener_only
        self.profile = profile
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_lines: list[str] = []

    def start(self) -> None:
        cfg = self.tmp / "edocgw.toml"
        cfg.write_text(
            "[gateway]\n"
            f'data_dir = "{self.tmp / "var"}"\n'
            'hostname = "bench.localdomain"\n'
            # smtp-source sends the same bytes every time: with duplicate detection on, every
            # message after the first would be stored as a duplicate of it and never processed,
            # which is not the traffic this measures (distinct messages, as agencies send).
            'duplicate_window = "0s"\n'
            "[database]\n"
            f'url = "{self.db_url}"\n'
            "pool_size = 20\n"
            "[smtp]\n"
            'relay_listen = "127.0.0.1:0"\n'
            'submission_listen = "127.0.0.1:0"\n'
            "max_connections = 1000\n"
            "max_connections_per_ip = 1000\n"
            "[admin]\n"
            'listen = "127.0.0.1:0"\n'
            "[logging]\n"
            'level = "INFO"\n'
            'format = "json"\n',
            encoding="utf-8",
        )
        if self.listener_only:
            cmd = [sys.executable, str(ROOT / "bench" / "listener_only.py"), "--config", str(cfg)]
            if self.profile:
                cmd += ["--profile", self.profile]
        else:
            cmd = [str(ROOT / ".venv" / "bin" / "edocgw"), "serve", "--config", str(cfg)]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.tmp,
        )
        found = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip()
                self.log_lines.append(line)
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("listener") == "relay" and rec.get("port"):
                    self.port = int(rec["port"])
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(60):
            self.stop()
            tail = "\n".join(self.log_lines[-15:])
            raise SystemExit(f"edocgw serve did not report its relay port:\n{tail}")
        wait_port(self.port)

    def peak_rss_mb(self) -> float:
        assert self.proc is not None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- the local Postfix ----------------------------------------------------------------------


class Postfix:
    """The loopback Postfix of tests/support/postfix.py, relaying to Postfix's smtp-sink."""

    def __init__(self, tmp: Path) -> None:
        self.sink_port = free_port()
        self.instance = LoopbackPostfix(
            relayhost=f"127.0.0.1:{self.sink_port}",
            hostname="bench.localdomain",
            root=tmp / "postfix",
            process_limit=200,
        )
        self.sink: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return self.instance.port

    def start(self) -> None:
        self.sink = subprocess.Popen(
            [SMTP_SINK, "-u", "nobody", f"127.0.0.1:{self.sink_port}", "256"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self.instance.start()
        except PostfixError as e:
            self.stop()
            raise SystemExit(str(e)) from None

    def stop(self) -> None:
        self.instance.stop()
        if self.sink and self.sink.poll() is None:
            self.sink.terminate()
            try:
                self.sink.wait(20)
            except subprocess.TimeoutExpired:
                self.sink.kill()


# -- load ----------------------------------------------------------------------------------


def drive(port: int, load: Load) -> float:
    """Messages/s accepted by the server at `port` (smtp-source aborts on any non-2xx)."""
    cmd = [
        SMTP_SOURCE,
        "-s",
        str(load.sessions),
        "-m",
        str(load.count),
        "-l",
        str(load.size),
        "-f",
        SENDER,
        "-t",
        RCPT,
        f"127.0.0.1:{port}",
    ]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, timeout=RUN_TIMEOUT, check=False)
    elapsed = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(
            f"smtp-source failed against port {port} ({load.label}): "
            f"{p.stderr.decode(errors='replace').strip()[:500]}"
        )
    return load.count / elapsed


async def count_messages(url: str) -> int:
    import asyncpg

    from store.db import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        # only what came in over SMTP: `serve` also stores the receipts it writes
        return int(await conn.fetchval("SELECT count(*) FROM messages WHERE source = 'smtp'"))
    finally:
        await conn.close()


async def gateway_backlog(url: str) -> int:
    """Work the gateway still owes for what it accepted: messages not yet through the
    pipeline, and deliveries (receipts included) queued or on the wire."""
    import asyncpg

    from store.db import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        return int(
            await conn.fetchval(
                "SELECT (SELECT count(*) FROM messages WHERE state = 'received')"
                " + (SELECT count(*) FROM deliveries WHERE state IN ('queued', 'sending'))"
            )
        )
    finally:
        await conn.close()


def settle(name: str, url: str, pf: Postfix, limit: float = DRAIN_TIMEOUT) -> float:
    """Wait until the server just measured has finished the work behind what it accepted, so
    that it does not eat into the next server's run; returns the seconds that took."""
    t0 = time.perf_counter()
    if name == "postfix":
        pf.instance.wait_empty(limit)
        return time.perf_counter() - t0
    while asyncio.run(gateway_backlog(url)):
        if time.perf_counter() - t0 > limit:
            raise SystemExit(f"the gateway still has work after {limit:g} s")
        time.sleep(0.2)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one run per load, fewer messages")
    ap.add_argument("--runs", type=int, default=None, help="runs per load (default 3; 1 quick)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    ap.add_argument(
        "--listener-only",
        action="store_true",
        help="run only the SMTP listeners (bench/listener_only.py), not the whole edocgw serve",
    )
    ap.add_argument(
        "--overlap",
        action="store_true",
        help="start the next run at once, while the last server still works off its backlog "
        "(default: wait, so each server is measured on otherwise idle cores)",
    )
    ap.add_argument("--profile", default="", help="with --listener-only: cProfile output file")
    ap.add_argument(
        "--loads", default="", help="subset of loads, e.g. 1k10,200k50 (default: all four)"
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/ingest.py must run as root (Postfix daemons, smtp-sink -u)", file=sys.stderr)
        return 2
    for exe in (SMTP_SOURCE, SMTP_SINK, POSTFIX):
        if not Path(exe).exists():
            print(f"{exe} not found: install the Debian package postfix", file=sys.stderr)
            return 2
    runs = args.runs or (1 if args.quick else 3)
    k = (0.4 if args.quick else 1.0) * args.scale
    loads = [
        Load(1024, 10, int(2000 * k)),
        Load(1024, 50, int(2000 * k)),
        Load(200 * 1024, 10, int(500 * k)),
        Load(200 * 1024, 50, int(500 * k)),
    ]
    if args.loads:
        wanted = set(args.loads.split(","))
        loads = [ld for ld in loads if f"{ld.size // 1024}k{ld.sessions}" in wanted]

    from store.embedded import EmbeddedPostgres

    tmp = Path(tempfile.mkdtemp(prefix="edocgw-bench-"))
    tmp.chmod(0o755)
    pg = EmbeddedPostgres(tmp / "pgdata")
    gw: Gateway | None = None
    pf: Postfix | None = None
    results: dict[Load, Result] = {ld: Result() for ld in loads}
    try:
        t0 = time.monotonic()
        url = pg.start()
        gw = Gateway(tmp, url, args.listener_only, args.profile)
        gw.start()
        pf = Postfix(tmp)
        pf.start()
        print(
            f"edocgw relay on 127.0.0.1:{gw.port}, Postfix on 127.0.0.1:{pf.port} "
            f"(sink {pf.sink_port}); started in {time.monotonic() - t0:.1f} s; "
            f"{os.cpu_count()} CPUs; {runs} run(s) per load; "
            + ("SMTP listeners only" if args.listener_only else "whole edocgw serve"),
            flush=True,
        )
        drive(gw.port, Load(1024, 5, 50))  # warm-up: imports, pool, caches
        drive(pf.port, Load(1024, 5, 50))
        sent = 50
        drain: dict[str, list[float]] = {"edocgw": [], "postfix": []}
        for load in loads:
            for _ in range(runs):
                for name, port in (("edocgw", gw.port), ("postfix", pf.port)):
                    rate = drive(port, load)
                    results[load].rates.setdefault(name, []).append(rate)
                    if name == "edocgw":
                        sent += load.count
                    if not args.overlap:
                        drain[name].append(settle(name, url, pf))
            r = results[load].rates
            print(
                f"  {load.label:<22} edocgw {statistics.median(r['edocgw']):7.0f} msg/s   "
                f"postfix {statistics.median(r['postfix']):7.0f} msg/s   "
                f"ratio {statistics.median(r['edocgw']) / statistics.median(r['postfix']):.2f}"
                f"   (runs: {', '.join(f'{x:.0f}' for x in r['edocgw'])} / "
                f"{', '.join(f'{x:.0f}' for x in r['postfix'])})",
                flush=True,
            )
        if not args.overlap:
            print(
                "  after each run, before the next: the gateway finished its backlog in "
                f"{statistics.median(drain['edocgw']):.1f} s (median; max "
                f"{max(drain['edocgw']):.1f} s), Postfix emptied its queue in "
                f"{statistics.median(drain['postfix']):.1f} s"
            )
        stored = asyncio.run(count_messages(url))
        print(
            f"gateway peak RSS {gw.peak_rss_mb():.0f} MB; messages accepted {sent}, "
            f"stored {stored}" + ("" if stored == sent else "  <-- MISMATCH")
        )
        return 0 if stored == sent else 1
    finally:
        if gw:
            gw.stop()
        if pf:
            pf.stop()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
