#!/usr/bin/env python3
"""End-to-end relay: accept → pipeline → deliver, edocgw beside a local Postfix, same run.

Starts an embedded PostgreSQL, `edocgw serve` (an agency whose route is a local sink) and a
throwaway loopback Postfix relaying to the same kind of sink, then sends each load with an
asyncio SMTP client (persistent sessions) and prints, per load and per server: accepted
messages/s, end-to-end messages/s (first send to last arrival at the sink), and p50/p99
accept-to-delivered latency, and each server's CPU per message (edocgw's by kind of process,
Postfix's for its master and daemons together): when the cores are full, as under every
load here, the rates follow what each server spends per message.
Loads: plain 1 KB, 200 KB, and a message with one signed PDF.

    .venv/bin/python bench/e2e.py            # full counts
    .venv/bin/python bench/e2e.py --quick    # fewer messages
    .venv/bin/python bench/e2e.py --rounds 5 # each load 5 times, median ratios
    .venv/bin/python bench/e2e.py --receipts # receipts on (they go to the sink too)
    .venv/bin/python bench/e2e.py --sinks-apart  # the sinks in processes of their own

Runs as root (Postfix). Bounded: fixed message counts and a deadline per load. On a shared
2-core machine the figures are noisy (the client and the sinks share the cores with the
servers): compare the two servers within one run, not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import free_port, wait_port  # noqa: E402

from tests.support.postfix import Postfix as LoopbackPostfix  # noqa: E402
from tests.support.postfix import PostfixError  # noqa: E402

AGENCY = "000.00.00.H99"
RCPT = "vanban@dich.gov.vn"
SENDER = "vanthu@tayninh.gov.vn"
DEADLINE = 180.0
IDLE_COUNT = 20


@dataclass(frozen=True)
class Load:
    name: str
    count: int
    sessions: int
    target: float = 1.0  # issue 17: the e2e rate as a fraction of Postfix's


@dataclass
class Sink:
    """aiosmtpd in its own thread (or process); records when each X-Bench-Id arrived."""

    arrived: dict[str, float] = field(default_factory=dict)
    duplicates: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
        now = time.monotonic()
        data: bytes = envelope.content
        i = data.find(b"X-Bench-Id: ")
        if i >= 0:
            self.record(data[i + 12 : data.find(b"\r\n", i)].decode(), now)
        return "250 2.0.0 Ok"

    def record(self, key: str, at: float) -> None:
        with self.lock:
            if key in self.arrived:
                self.duplicates += 1
            else:
                self.arrived[key] = at

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001, ANN201
        """Offers PIPELINING, as the agencies' Postfix and Exchange servers do (aiosmtpd
        reads pipelined commands in order but does not say so); Postfix's client and
        edocgw's both pipeline to it then."""
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


def start_sink(sink: Sink, apart: bool = False):  # noqa: ANN201
    """The sink in a thread of this process, or with *apart* in a process of its own."""
    if apart:
        return SinkProcess(sink)
    from aiosmtpd.controller import Controller

    ctl = Controller(sink, hostname="127.0.0.1", port=free_port(), decode_data=False)
    ctl.start()
    return ctl


class SinkProcess:
    """`--sinks-apart`: a sink served by a process of its own, which sends each arrival (key,
    monotonic time, the same clock on every process) back to `sink` here. In this process
    the client and both sinks share one interpreter lock, so together they can use one core
    at most; with 200 KB letters that capped Postfix's rate at the sinks' pace (about 85/s
    here, about 135/s with the sinks apart) more than edocgw's (85/s and 100/s)."""

    def __init__(self, sink: Sink) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # not a fork of this threaded process
        self.port = free_port()
        self.sink = sink
        self._arrivals = ctx.SimpleQueue()
        self.proc = ctx.Process(target=_serve_sink, args=(self.port, self._arrivals), daemon=True)
        self.proc.start()
        wait_port(self.port)
        threading.Thread(target=self._collect, daemon=True).start()

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def _collect(self) -> None:
        while True:
            key, at = self._arrivals.get()
            self.sink.record(key, at)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(10)


class _Forward(Sink):
    """The sink's handler in its own process: arrivals go to the parent."""

    def __init__(self, arrivals) -> None:  # noqa: ANN001
        super().__init__()
        self.arrivals = arrivals

    def record(self, key: str, at: float) -> None:
        self.arrivals.put((key, at))


def _serve_sink(port: int, arrivals) -> None:  # noqa: ANN001
    from aiosmtpd.controller import Controller

    Controller(_Forward(arrivals), hostname="127.0.0.1", port=port, decode_data=False).start()
    threading.Event().wait()


def make_message(load: str, i: int, attachment: bytes | None, size: int) -> tuple[str, bytes]:
    key = f"{load}-{i}"
    m = EmailMessage()
    m["From"], m["To"] = SENDER, RCPT
    m["Subject"] = f"Công văn số {i}/UBND-VP ({load})"
    m["Message-ID"] = f"<{key}.{time.time_ns()}@tayninh.gov.vn>"
    m["X-Bench-Id"] = key
    body = "Kính gửi: Sở Thông tin và Truyền thông.\n"
    m.set_content(body + "x" * max(0, size - 600) if size else body)
    if attachment is not None:
        m.add_attachment(attachment, "application", "pdf", filename=f"{i}-UBND-VP.pdf")
    return key, m.as_bytes().replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")


async def setup_agency(url: str, sink_port: int) -> None:
    """The schema, and one agency whose route is the sink (shared with bench/pipeline.py)."""
    from store.agencies import AgencyIn, upsert_agency
    from store.db import Database

    db = Database.connect(url, pool_size=1)
    try:
        await db.upgrade()
        async with db.transaction() as s:
            await upsert_agency(
                s,
                AgencyIn(
                    code=AGENCY,
                    name="Sở Thông tin và Truyền thông (bench)",
                    address=RCPT,
                    domains=["dich.gov.vn"],
                    route=f"smtp://127.0.0.1:{sink_port}",
                    tls="none",
                ),
            )
    finally:
        await db.close()


async def drive(port: int, msgs: list[tuple[str, bytes]], sessions: int) -> dict[str, float]:
    """Send everything over `sessions` persistent connections; returns key → accept time."""
    import aiosmtplib

    accepted: dict[str, float] = {}
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for m in msgs:
        queue.put_nowait(m)

    async def session() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60, start_tls=False)
        await client.connect()
        try:
            while True:
                try:
                    key, raw = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await client.sendmail(SENDER, [RCPT], raw)
                accepted[key] = time.monotonic()
        finally:
            with contextlib.suppress(Exception):
                await client.quit()

    await asyncio.gather(*(session() for _ in range(sessions)))
    return accepted


def idle_latency(port: int, sink: Sink, name: str, count: int) -> list[float]:
    """One message at a time on an idle server: ms from its 250 to its arrival at the sink."""
    out = []
    for i in range(count):
        key, raw = make_message(f"idle-{name}", i, None, 1024)
        accepted = asyncio.run(drive(port, [(key, raw)], 1))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with sink.lock:
                got = sink.arrived.get(key)
            if got is not None:
                out.append((got - accepted[key]) * 1000)
                break
            time.sleep(0.002)
        time.sleep(0.2)  # idle again: nothing in flight
    return sorted(out)


def run_load(port: int, sink: Sink, load: Load, msgs: list[tuple[str, bytes]]) -> dict:
    keys = {k for k, _ in msgs}
    t0 = time.monotonic()
    accepted = asyncio.run(drive(port, msgs, load.sessions))
    t_acc = time.monotonic() - t0
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        with sink.lock:
            if keys <= sink.arrived.keys():
                break
        time.sleep(0.02)
    with sink.lock:
        arrived = {k: sink.arrived[k] for k in keys if k in sink.arrived}
    last = max(arrived.values(), default=t0)
    lat = sorted((arrived[k] - accepted[k]) * 1000 for k in arrived if k in accepted)
    return {
        "accept_rate": len(accepted) / t_acc,
        "e2e_rate": len(arrived) / (last - t0) if arrived else 0.0,
        "delivered": len(arrived),
        "sent": len(msgs),
        "p50": statistics.median(lat) if lat else float("nan"),
        "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
    }


# -- servers ---------------------------------------------------------------------------------


class Gateway:
    def __init__(
        self,
        tmp: Path,
        url: str,
        sink_port: int,
        anchors: list[str],
        crls: list[str],
        receipts: bool = False,
        roles: tuple[str, ...] = ("intake", "pipeline", "delivery"),
        overrides: list[str] | None = None,
        log: str | None = None,
    ):
        self.tmp, self.url, self.sink_port, self.receipts = tmp, url, sink_port, receipts
        self.roles = roles
        self.overrides = overrides or []
        self.log = log
        tmp.mkdir(parents=True, exist_ok=True)
        self.anchors, self.crls = anchors, crls
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: list[str] = []

    def start(self) -> None:
        asyncio.run(setup_agency(self.url, self.sink_port))
        import tomllib

        cfg = self.tmp / "edocgw.toml"
        text = f"""
[gateway]
hostname = "bench.localdomain"
data_dir = "{self.tmp / "var"}"
roles = {json.dumps(list(self.roles))}
[database]
url = "{self.url}"
pool_size = 20
[smtp]
relay_listen = "127.0.0.1:0"
submission_listen = "127.0.0.1:0"
max_connections = 1000
max_connections_per_ip = 1000
[trust]
anchors = {json.dumps(self.anchors)}
crls = {json.dumps(self.crls)}
[delivery]
workers = 50
concurrency_per_destination = 20
smarthost = "{f"127.0.0.1:{self.sink_port}" if self.receipts else ""}"
require_tls = false
[receipts]
enabled = {"true" if self.receipts else "false"}
[admin]
listen = "127.0.0.1:0"
enabled = false
[logging]
level = "INFO"
format = "json"
"""
        doc = tomllib.loads(text)
        for o in self.overrides:
            name, _, value = o.partition("=")
            section, _, key = name.partition(".")
            doc.setdefault(section, {})[key] = tomllib.loads(f"v = {value}")["v"]
        cfg.write_text(_toml(doc), encoding="utf-8")
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "edocgw"), "serve", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.tmp,
        )
        found = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            log = open(self.log, "a", encoding="utf-8") if self.log else None  # noqa: SIM115
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip()
                if log is not None:
                    log.write(line + "\n")
                    log.flush()
                self.lines.append(line)
                del self.lines[:-50]
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("listener") == "relay" and rec.get("port"):
                    self.port = int(rec["port"])
                    found.set()
                if "intake" not in self.roles and rec.get("msg") == "edocgw ready":
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(60):
            self.stop()
            raise SystemExit("edocgw serve did not start:\n" + "\n".join(self.lines[-15:]))
        if self.port:
            wait_port(self.port)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def peak_rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _toml(doc: dict) -> str:
    """The small TOML writer the bench's config needs (tables of scalars and lists)."""
    out = []
    for section, table in doc.items():
        out.append(f"[{section}]")
        out += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    return "\n".join(out) + "\n"


class Postfix:
    """The loopback Postfix of tests/support/postfix.py, relaying everything to `sink_port`."""

    def __init__(self, tmp: Path, sink_port: int) -> None:
        self.instance = LoopbackPostfix(
            relayhost=f"127.0.0.1:{sink_port}",
            hostname="bench.localdomain",
            root=tmp / "postfix",
            process_limit=200,
        )

    @property
    def port(self) -> int:
        return self.instance.port

    def start(self) -> None:
        try:
            self.instance.start()
        except PostfixError as e:
            raise SystemExit(str(e)) from None

    def stop(self) -> None:
        self.instance.stop()

    def cpu(self) -> float:
        """CPU seconds Postfix has used: its master, every daemon it started (smtpd, cleanup,
        qmgr, smtp, ...), and what daemons that exited used (the master's children's times),
        so none vanishes mid-load. The measure CpuMeter takes of edocgw."""
        import psutil

        total = 0.0
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            master = psutil.Process(self.instance.master_pid())
            for p in [master, *master.children()]:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    total += t.user + t.system + t.children_user + t.children_system
        return total


def _kind_of(proc) -> str:  # noqa: ANN001
    """workers (pipeline + delivery children), analysis, or verify (and the fork server the
    pools' workers come from): gateway/processes/pool.py names its workers edocgw-<pool>."""
    if "gateway.processes.child" in " ".join(proc.cmdline()):
        return "workers"
    return "analysis" if proc.name().startswith("edocgw-analyse") else "verify"


def interpreter() -> str:
    """The Python the gateway runs on (its venv's base): a build with profile-guided and
    link-time optimisation (Debian's) spends less CPU per message than a plain source build
    (pyenv's), so the figures say which one they were measured with."""
    cfg = ROOT / ".venv" / "pyvenv.cfg"
    try:
        keys = dict(
            (k.strip(), v.strip())
            for k, _, v in (ln.partition("=") for ln in cfg.read_text().splitlines())
        )
    except OSError:
        return "Python of an unknown build"
    return f"Python {keys.get('version', '?')} from {keys.get('executable', keys.get('home', '?'))}"


def machine_share(sink_pids: tuple[int, ...] = ()) -> tuple[float, float, float, float]:
    """CPU seconds this process (the client, and the sinks unless apart) and the sink
    processes (`--sinks-apart`) have used, the machine's idle and total CPU seconds so far,
    and the clock: a load the bench itself starves, or one that leaves the cores idle, shows
    in these. The client and the sinks in this process share one interpreter lock, so it can
    use one core at most: near that, it sets the pace for both servers."""
    import psutil

    t, c = os.times(), psutil.cpu_times()
    own = t.user + t.system
    for pid in sink_pids:
        with contextlib.suppress(psutil.Error):
            s = psutil.Process(pid).cpu_times()
            own += s.user + s.system
    return own, c.idle, sum(c), time.monotonic()


class CpuMeter:
    """CPU seconds the gateway's processes used, by kind: intake (the serve process), workers
    (its pipeline + delivery children), the analysis and verify processes, postgres.
    Per message, these are steadier than rates on a machine other work shares."""

    def __init__(self, gw_pid: int, pgdata: Path) -> None:
        self.gw_pid, self.pgdata = gw_pid, pgdata

    def snapshot(self) -> dict[str, float]:
        import psutil

        out = {"intake": 0.0, "workers": 0.0, "analysis": 0.0, "verify": 0.0, "postgres": 0.0}
        procs: list[tuple[str, psutil.Process]] = []
        with contextlib.suppress(psutil.Error):
            gw = psutil.Process(self.gw_pid)
            procs.append(("intake", gw))
            for c in gw.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    procs.append((_kind_of(c), c))
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            pm = psutil.Process(int((self.pgdata / "postmaster.pid").read_text().split()[0]))
            procs += [("postgres", p) for p in [pm, *pm.children(recursive=True)]]
        for kind, p in procs:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                # with what its children that ended used (a PostgreSQL backend whose
                # connection closed, a replaced worker): else their CPU vanishes mid-load
                out[kind] += t.user + t.system + t.children_user + t.children_system
        return out


class Profiler:
    """py-spy sampling the gateway and every child (workers, parse and verify processes) while
    the loads run. Writes collapsed stacks (speedscope and flamegraph.pl read them) and prints
    each process's busiest functions: self = samples on top of the stack, total = anywhere
    on it (idle threads are not sampled, so these are shares of the CPU it used)."""

    def __init__(self, pid: int, out: str) -> None:
        self.out = Path(out)
        spy = shutil.which("py-spy") or str(ROOT / ".venv" / "bin" / "py-spy")
        self.proc = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--subprocesses",
                "--rate",
                "100",
                "--format",
                "raw",
                "--nonblocking",
                "-o",
                str(self.out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1)  # py-spy attaches to the processes

    def stop(self, top: int = 12) -> None:
        import collections
        import signal

        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if not self.out.exists():
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            print(f"py-spy wrote nothing: {err[-500:]}")
            return
        own: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        total: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        samples: collections.Counter[str] = collections.Counter()
        for line in self.out.read_text(errors="replace").splitlines():
            stack, _, n = line.rpartition(" ")
            if not n.isdigit():
                continue
            frames = stack.split(";")
            procs = [f for f in frames if f.startswith("process ")]
            frames = [
                f for f in frames if not f.startswith("process ") and not f.startswith("thread ")
            ]
            who = procs[-1] if procs else "?"
            pid, _, cmd = who.removeprefix("process ").partition(":")
            cmd = cmd.strip('"').replace(str(ROOT / ".venv" / "bin") + "/", "")
            who = f"{pid} {cmd[:90]}"
            samples[who] += int(n)
            if frames:
                own[who][frames[-1]] += int(n)
                for f in set(frames):
                    total[who][f] += int(n)
        print(f"py-spy profile ({self.out}), per process, % of that process's samples:")
        for who, n in samples.most_common():
            print(f"  {who}: {n} samples")
            for label, counts in (("self", own[who]), ("total", total[who])):
                for f, c in counts.most_common(top):
                    print(f"    {label:<5} {100 * c / n:5.1f}%  {f[:150]}")


def with_statements(pg) -> str:  # noqa: ANN001
    """Restart the embedded server with pg_stat_statements loaded; returns its URL."""
    pg.server.psql("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';")
    pg.server.psql("ALTER SYSTEM SET pg_stat_statements.track_planning = on;")
    pg.stop()
    return pg.start()


@contextlib.asynccontextmanager
async def _connection(url: str):  # noqa: ANN202
    """One asyncpg connection to the bench's database, closed after use."""
    import asyncpg

    from store.db import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        yield conn
    finally:
        await conn.close()


async def reset_statements(url: str) -> None:
    """Forget what start-up and warm-up ran (new connections plan and introspect anew)."""
    async with _connection(url) as conn:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")


async def top_statements(url: str, messages: int, top: int = 15) -> str:
    """The statements PostgreSQL spent most time executing (wall time, the loads only), per
    message sent to edocgw (`reset_statements` made the extension and zeroed it)."""
    async with _connection(url) as conn:
        rows = await conn.fetch(
            """SELECT calls, total_exec_time, total_plan_time, plans, rows, shared_blks_dirtied, wal_bytes,
                      regexp_replace(query, '\\s+', ' ', 'g') AS q
               FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT $1""",
            top,
        )
    out = [f"PostgreSQL statements by execution time (per message, {messages} messages):"]
    for r in rows:
        out.append(
            f"  {r['total_exec_time'] / messages:7.3f} ms"
            f" (+{r['total_plan_time'] / messages:.3f} planning,"
            f" {r['plans'] / max(1, r['calls']):.2f} plans/call)"
            f" {r['calls'] / messages:6.2f} calls "
            f"{r['wal_bytes'] / messages / 1024:8.1f} KB WAL  {r['q'][:140]}"
        )
    return "\n".join(out)


async def stage_breakdown(url: str) -> str:
    """Where edocgw's latency goes, per load: accept → deliveries created (pipeline) →
    delivered. A message's load is the first word of its subject's bracket (make_message)."""
    async with _connection(url) as conn:
        rows = await conn.fetch(
            """SELECT substring(m.subject from '[(]([a-z0-9]+)') AS load,
                      extract(epoch FROM d.created_at - m.received_at) AS pipe,
                      extract(epoch FROM d.delivered_at - d.created_at) AS dlv
               FROM deliveries d JOIN messages m ON m.id = d.message_id
               WHERE m.source = 'smtp' AND d.delivered_at IS NOT NULL"""
        )
    if not rows:
        return "no delivered rows"
    out = []
    for load in sorted({r["load"] or "?" for r in rows}):
        mine = [r for r in rows if (r["load"] or "?") == load]
        pipe = sorted(float(r["pipe"]) * 1000 for r in mine)
        dlv = sorted(float(r["dlv"]) * 1000 for r in mine)
        out.append(
            f"edocgw stages ({load}, {len(mine)} deliveries): accept→routed p50 "
            f"{statistics.median(pipe):.0f} ms p99 {pipe[int(len(pipe) * 0.99)]:.0f} ms; "
            f"routed→delivered p50 {statistics.median(dlv):.0f} ms "
            f"p99 {dlv[int(len(dlv) * 0.99)]:.0f} ms"
        )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages")
    ap.add_argument(
        "--receipts",
        action="store_true",
        help="receipts on (acceptance + delivery receipts to the sender go to the sink too)",
    )
    ap.add_argument(
        "--sinks-apart",
        action="store_true",
        help="each sink in a process of its own (by default both share this process, and its "
        "one core, with the client: with 200 KB letters that sets the pace for both servers)",
    )
    ap.add_argument(
        "--split",
        action="store_true",
        help="two gateway processes ([gateway] roles): intake, and pipeline + delivery",
    )
    ap.add_argument(
        "--profile",
        metavar="FILE",
        help="sample the gateway and its child processes with py-spy during the loads: "
        "FILE (speedscope) and the top functions per process on stdout",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=TOML",
        help="override a gateway setting, e.g. --set gateway.worker_processes=2 (repeatable)",
    )
    ap.add_argument(
        "--statements",
        action="store_true",
        help="load pg_stat_statements and print the statements PostgreSQL spent most time on",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        metavar="N",
        help="run each load N times, the servers' order alternating, and print the median "
        "ratios (one round is a few seconds: a shared machine's speed changes between rounds)",
    )
    ap.add_argument("--log", metavar="FILE", help="append the gateway's log lines to FILE")
    ap.add_argument(
        "--only",
        metavar="NAME",
        action="append",
        help="run only the loads whose name starts with NAME (plain, 200, signed); repeatable",
    )
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds: expected 1 or more")
    if os.geteuid() != 0:
        print("bench/e2e.py must run as root (Postfix)", file=sys.stderr)
        return 2
    k = 0.3 if args.quick else 1.0
    loads = [
        Load("plain 1 KB", int(1000 * k), 10, 1.0),
        Load("200 KB", int(300 * k), 10, 1.0),
        Load("signed PDF", int(300 * k), 10, 0.5),
    ]
    if args.only:
        loads = [x for x in loads if any(x.name.startswith(o) for o in args.only)]
    from store.embedded import EmbeddedPostgres
    from tests.support.pki import make_pdf, make_pki, sign_pdf

    tmp = Path(tempfile.mkdtemp(prefix="edocgw-e2e-"))
    tmp.chmod(0o755)
    pki = make_pki(tmp / "pki")
    pdf = sign_pdf(make_pdf("Công văn số 15/UBND-VP về việc đo hiệu năng"), pki.signer("person"))
    pg = EmbeddedPostgres(tmp / "pgdata")
    gw_sink, pf_sink = Sink(), Sink()
    controllers = [start_sink(gw_sink, args.sinks_apart), start_sink(pf_sink, args.sinks_apart)]
    sink_pids = tuple(c.pid for c in controllers if isinstance(c, SinkProcess))
    gw = pf = None
    workers: Gateway | None = None
    try:
        url = pg.start()
        if args.statements:
            url = with_statements(pg)
        gw = Gateway(
            tmp,
            url,
            controllers[0].port,
            [str(p) for p in pki.anchors],
            [str(p) for p in pki.crls],
            receipts=args.receipts,
            roles=("intake",) if args.split else ("intake", "pipeline", "delivery"),
            overrides=args.set,
            log=args.log,
        )
        if args.split:
            workers = Gateway(
                tmp / "workers",
                url,
                controllers[0].port,
                [str(p) for p in pki.anchors],
                [str(p) for p in pki.crls],
                receipts=args.receipts,
                roles=("pipeline", "delivery"),
                overrides=args.set,
                log=args.log,
            )
            workers.start()
        gw.start()
        pf = Postfix(tmp, controllers[1].port)
        pf.start()
        print(
            f"edocgw relay 127.0.0.1:{gw.port}, Postfix 127.0.0.1:{pf.port}; "
            f"{os.cpu_count()} CPUs; gateway on {interpreter()}; client "
            + (
                "here, each sink in a process of its own"
                if sink_pids
                else "and sinks in this process"
            ),
            flush=True,
        )
        warm = [make_message("warm", i, None, 1024) for i in range(30)]
        run_load(gw.port, gw_sink, Load("warm", 30, 5), warm)
        run_load(pf.port, pf_sink, Load("warm", 30, 5), warm)
        if args.statements:
            asyncio.run(reset_statements(url))  # count the loads only, not start-up and warm-up
        profiler = Profiler(gw.pid, args.profile) if args.profile else None
        cpu = CpuMeter((workers or gw).pid if args.split else gw.pid, pg.pgdata)
        header = f"{'load':<12} {'server':<8} {'accept/s':>9} {'e2e/s':>8} {'p50 ms':>8} {'p99 ms':>8}  delivered"
        print(header)
        ok = True
        rounds: dict[str, list[tuple[float, float]]] = {}
        for load, rnd in [(x, n) for x in loads for n in range(args.rounds)]:
            size = 200 * 1024 if load.name == "200 KB" else 1024
            att = pdf if load.name == "signed PDF" else None
            tag = load.name.split()[0].lower() + (f"-r{rnd}" if rnd else "")
            rows = {}
            shares: dict[str, tuple[float, float, float]] = {}
            spent: dict[str, dict[str, float]] = {}  # server -> CPU ms per message, by kind
            servers = [("edocgw", gw.port, gw_sink), ("postfix", pf.port, pf_sink)]
            for name, port, sink in servers if rnd % 2 == 0 else servers[::-1]:
                msgs = [make_message(f"{tag}-{name}", i, att, size) for i in range(load.count)]
                meter = cpu.snapshot if name == "edocgw" else lambda: {"postfix": pf.cpu()}
                before = meter()
                own0, idle0, all0, at0 = machine_share(sink_pids)
                r = rows[name] = run_load(port, sink, load, msgs)
                own1, idle1, all1, at1 = machine_share(sink_pids)
                shares[name] = (
                    (own1 - own0) * 1000 / load.count,
                    (idle1 - idle0) / max(all1 - all0, 1e-9),
                    (own1 - own0) / max(at1 - at0, 1e-9),
                )
                after = meter()
                spent[name] = {k: (after[k] - before[k]) * 1000 / load.count for k in after}
                ok &= r["delivered"] == r["sent"]
                print(
                    f"{load.name:<12} {name:<8} {r['accept_rate']:9.0f} {r['e2e_rate']:8.0f} "
                    f"{r['p50']:8.0f} {r['p99']:8.0f}  {r['delivered']}/{r['sent']}",
                    flush=True,
                )
            gw_ms, pf_ms = (sum(spent[k].values()) for k in ("edocgw", "postfix"))
            print(
                f"{'':<12} edocgw CPU ms/message: "
                + ", ".join(f"{k} {v:.1f}" for k, v in spent["edocgw"].items())
                + f"; total {gw_ms:.1f}",
                flush=True,
            )
            print(
                f"{'':<12} postfix CPU ms/message: {pf_ms:.1f} (master and daemons); "
                f"edocgw/postfix {gw_ms / max(pf_ms, 1e-9):.1f}x",
                flush=True,
            )
            print(
                f"{'':<12} bench client + sinks CPU ms/message: "
                + ", ".join(
                    f"beside {k} {shares[k][0]:.1f} ({shares[k][2]:.0%} of a core)"
                    for k in ("edocgw", "postfix")
                )
                + "; machine idle: "
                + ", ".join(f"{k} {shares[k][1]:.0%}" for k in ("edocgw", "postfix")),
                flush=True,
            )
            ratio = rows["edocgw"]["e2e_rate"] / max(rows["postfix"]["e2e_rate"], 1e-9)
            p50x = rows["edocgw"]["p50"] / max(rows["postfix"]["p50"], 1e-9)
            print(
                f"{'':<12} e2e ratio edocgw/postfix {ratio:.2f} (target >= {load.target:.1f}); "
                f"p50 edocgw/postfix {p50x:.1f}x (target <= 2x)",
                flush=True,
            )
            rounds.setdefault(load.name, []).append((ratio, p50x))
            if args.rounds > 1 and rnd == args.rounds - 1:
                got = rounds[load.name]
                print(
                    f"{load.name:<12} median of {len(got)} rounds: e2e ratio "
                    f"{statistics.median(r for r, _ in got):.2f} (target >= {load.target:.1f}; "
                    f"rounds {' / '.join(f'{r:.2f}' for r, _ in got)}), p50 edocgw/postfix "
                    f"{statistics.median(x for _, x in got):.1f}x (target <= 2x; rounds "
                    f"{' / '.join(f'{x:.1f}' for _, x in got)})",
                    flush=True,
                )
        if profiler is not None:
            profiler.stop()
        if args.statements:
            print(asyncio.run(top_statements(url, sum(x.count for x in loads) * args.rounds)))
        for name, port, sink in (("edocgw", gw.port, gw_sink), ("postfix", pf.port, pf_sink)):
            lat = idle_latency(port, sink, name, IDLE_COUNT)
            p50 = statistics.median(lat) if lat else float("nan")
            print(
                f"idle {name:<8} 250 -> delivered p50 {p50:.0f} ms, max "
                f"{max(lat, default=float('nan')):.0f} ms ({len(lat)}/{IDLE_COUNT} one at a time)"
                + (" (target <= 300 ms)" if name == "edocgw" else ""),
                flush=True,
            )
            ok &= len(lat) == IDLE_COUNT
        print(asyncio.run(stage_breakdown(url)))
        rss = f"{gw.peak_rss_mb():.0f} MB" + (
            f" + workers {workers.peak_rss_mb():.0f} MB" if workers else ""
        )
        print(
            f"gateway peak RSS {rss}; duplicates at the sinks: "
            f"edocgw {gw_sink.duplicates}, postfix {pf_sink.duplicates}"
        )
        return 0 if ok else 1
    finally:
        if gw:
            gw.stop()
        if workers:
            workers.stop()
        if pf:
            pf.stop()
        for c in controllers:
            c.stop()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
