#!/usr/bin/env python3
"""Memory targets of DESIGN §9: one 50 MB attachment, and 10,000 messages in the queue.

Starts an embedded PostgreSQL, `edocgw serve` (the SMTP listeners; its children are the
pipeline+delivery worker process and that one's signature verification processes) and an
aiosmtpd sink in this process, then samples the RSS of the serve process and of each
descendant every 50 ms (psutil), and also reads each process's exact high-water
mark (VmHWM, reset per phase through /proc/PID/clear_refs when we may write it).

1. Big attachments. After a warm-up (a small signed PDF, so pyHanko is loaded in the
   workers) and an idle reading, sends one message carrying a big attachment and waits until
   the sink has it: a signed PDF whose page is an uncompressed image (a scan), then a .zip
   (one stored member of random bytes). Prints, per process, peak RSS above idle in MB and as
   a multiple of the attachment size, and what is still held a few seconds later. The size is
   46 MiB by default: base64 makes that a 63 MiB message, the most mailparse parses
   (`Limits.max_message_bytes`, 64 MiB); a 50 MB attachment makes a 68 MB message, which is
   held as malformed. The config raises `max_message_size` (default 50 MiB) to 100 MiB.
2. A queue that does not drain. Sends N small messages (10,000; 2,000 with --quick) routed to
   an agency whose server answers `451` to every RCPT, so every delivery stays deferred and is
   retried every 2 s; prints the serve process's RSS at N/10, N/2 and N queued and after each
   of a few delivery rounds (N more attempts in all). Flat or growing?

    .venv/bin/python bench/memory.py               # 46 MiB attachments, 10,000 queued
    .venv/bin/python bench/memory.py --quick       # 2,000 queued
    .venv/bin/python bench/memory.py --tracemalloc # also: where the Python-level peak was
    .venv/bin/python bench/memory.py --skip-queue --dkim  # phase 1 only, DKIM signing on

`--tracemalloc` runs serve under a small launcher that traces allocations (slow) and, at the
end of each phase, writes the traced peak and the biggest allocation sites seen near it.
Bounded: fixed counts, a deadline per phase. On a shared 2-core machine the timings are noisy;
the memory figures much less so, but RSS sampled every 50 ms can miss a spike shorter than
that (VmHWM does not).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

MB = 1024 * 1024
UP, DOWN = "000.00.00.H98", "000.00.00.H97"
UP_RCPT, DOWN_RCPT = "vanban@dich.gov.vn", "vanban@down.gov.vn"
SENDER = "vanthu@tayninh.gov.vn"
LIMITS = {"deadline": 600.0}  # seconds any one wait may take (--deadline)

# Runs `edocgw serve` with tracemalloc on; a request file makes it append the peak since the last
# request and the biggest allocation sites of the largest snapshot a watcher thread took.
TRACER = r"""
import os, sys, threading, time, tracemalloc
tracemalloc.start(10)
out = os.environ["EDOCGW_TRACE_OUT"]
req = out + ".req"
def dump(snap, best):
    cur, peak = tracemalloc.get_traced_memory()
    lines = [f"traced peak {peak / 2**20:.1f} MB; largest snapshot {best / 2**20:.1f} MB"]
    if snap is not None:
        snap = snap.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        for st in snap.statistics("traceback")[:10]:
            if st.size < (1 << 20):
                break
            lines.append(f"  {st.size / 2**20:7.1f} MB in {st.count} blocks, allocated at:")
            lines += ["      " + ln for ln in st.traceback.format(limit=7, most_recent_first=True)]
    with open(out, "a") as f:
        f.write("\n".join(lines) + "\n\f\n")
def watch():
    best, snap = 0, None
    while True:
        time.sleep(0.02)
        if os.path.exists(req):
            dump(snap, best)
            tracemalloc.reset_peak()
            best, snap = tracemalloc.get_traced_memory()[0], None
            os.unlink(req)
            continue
        cur = tracemalloc.get_traced_memory()[0]
        if cur > best * 1.02 + (1 << 20):
            snap, best = tracemalloc.take_snapshot(), cur
threading.Thread(target=watch, daemon=True).start()
from gateway.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Proc:
    label: str
    ps: psutil.Process
    rss: int = 0
    peak: int = 0
    samples: list[int] = field(default_factory=list)


class Sampler:
    """RSS of a process tree every 50 ms, with per-process peaks since the last `mark()`."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.procs: dict[int, Proc] = {pid: Proc("serve", self.root)}
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.can_reset_hwm = True

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join(2)

    def _label(self, p: psutil.Process) -> str:
        try:
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            cmd = ""
        if "resource_tracker" in cmd:
            return f"resource_tracker[{p.pid}]"
        if "gateway.processes.child" in cmd:
            return f"pipeline+delivery[{p.pid}]"  # serve's worker process
        if "spawn_main" in cmd or "forkserver" in cmd:
            try:
                name = p.name()  # gateway/processes/pool.py names its workers edocgw-<pool>
            except psutil.Error:
                name = ""
            if name.startswith("edocgw-analyse"):
                return f"analyse[{p.pid}]"  # its message analysis processes
            if name.startswith("edocgw-"):
                return f"verifier[{p.pid}]"  # its signature verification processes
            return f"forkserver[{p.pid}]"  # the process the pools' workers are forked from
        return f"child[{p.pid}]"

    def _run(self) -> None:
        while not self.stop_flag.wait(0.05):
            self.sample()

    def sample(self) -> None:
        try:
            kids = self.root.children(recursive=True)
        except psutil.Error:
            return
        with self.lock:
            for k in kids:
                if k.pid not in self.procs:
                    self.procs[k.pid] = Proc(self._label(k), k)
                elif self.procs[k.pid].label.startswith("verifier"):  # named after it started
                    self.procs[k.pid].label = self._label(k)
            for p in list(self.procs.values()):
                try:
                    p.rss = p.ps.memory_info().rss
                except psutil.Error:
                    p.rss = 0
                    continue
                p.peak = max(p.peak, p.rss)
                p.samples.append(p.rss)
                del p.samples[:-200]

    def mark(self) -> None:
        """Start a phase: peaks restart from now (sampled and the kernel's VmHWM)."""
        with self.lock:
            for p in self.procs.values():
                p.peak = p.rss
                p.samples.clear()
                if self.can_reset_hwm:
                    try:
                        Path(f"/proc/{p.ps.pid}/clear_refs").write_text("5")
                    except PermissionError:
                        self.can_reset_hwm = False
                    except OSError:
                        pass  # a process that has gone

    def steady(self, seconds: float = 1.5) -> dict[str, int]:
        """Median RSS per live process over `seconds`."""
        with self.lock:
            for p in self.procs.values():
                p.samples.clear()
        time.sleep(seconds)
        with self.lock:
            return {
                p.label: int(statistics.median(p.samples))
                for p in self.procs.values()
                if p.samples and p.rss
            }

    def peaks(self) -> dict[str, tuple[int, int]]:
        """label → (sampled peak, VmHWM) since `mark()`, for processes alive now."""
        out = {}
        with self.lock:
            for p in self.procs.values():
                if not p.rss:
                    continue
                out[p.label] = (p.peak, vm_hwm(p.ps.pid) if self.can_reset_hwm else 0)
        return out


def vm_hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# -- the destination server ------------------------------------------------------------------


@dataclass
class Sink:
    """Accepts mail for dich.gov.vn; answers 451 to every RCPT for down.gov.vn."""

    arrived: dict[str, int] = field(default_factory=dict)  # X-Bench-Id → size
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: ANN001, ANN201
        if address.lower().endswith("@down.gov.vn"):
            with self.lock:
                self.refused += 1
            return "451 4.3.0 Destination down (bench), try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
        data: bytes = envelope.content
        i = data.find(b"X-Bench-Id: ", 0, 64 * 1024)
        if i >= 0:
            key = data[i + 12 : data.find(b"\r\n", i)].decode()
            with self.lock:
                self.arrived[key] = len(data)
        envelope.content = envelope.original_content = b""
        return "250 2.0.0 Ok"


def start_sink(sink: Sink):  # noqa: ANN201
    from aiosmtpd.controller import Controller

    from tests.support.postfix import free_port

    ctl = Controller(
        sink, hostname="127.0.0.1", port=free_port(), decode_data=False, data_size_limit=None
    )
    ctl.start()
    return ctl


# -- the gateway -----------------------------------------------------------------------------


class Gateway:
    def __init__(  # noqa: ANN001
        self, tmp: Path, url: str, sink_port: int, pki, trace: bool, dkim: bool = False
    ) -> None:
        self.tmp, self.url, self.sink_port, self.pki, self.trace = tmp, url, sink_port, pki, trace
        self.dkim = dkim
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = tmp / "edocgw.log"
        self.trace_out = tmp / "tracemalloc.txt"

    def start(self) -> None:
        asyncio.run(self._agencies())
        cfg = self.tmp / "edocgw.toml"
        cfg.write_text(
            f"""
[gateway]
hostname = "bench.localdomain"
data_dir = "{self.tmp / "var"}"
local_domains = ["bench.localdomain"]
[database]
url = "{self.url}"
[smtp]
relay_listen = "127.0.0.1:0"
submission_listen = "127.0.0.1:0"
max_message_size = {100 * MB}
[trust]
anchors = {json.dumps([str(p) for p in self.pki.anchors])}
crls = {json.dumps([str(p) for p in self.pki.crls])}
[delivery]
workers = 50
concurrency_per_destination = 20
retry_schedule = ["2s"]
poll_interval = "2s"
delay_warning = "1d"
[receipts]
enabled = false
[admin]
listen = "127.0.0.1:0"
enabled = false
[logging]
level = "INFO"
format = "json"
"""
            + self._dkim_section(),
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDOCGW_")}
        if self.trace:
            env["EDOCGW_TRACE_OUT"] = str(self.trace_out)
            cmd = [sys.executable, "-c", TRACER, "serve", "--config", str(cfg)]
        else:
            cmd = [str(ROOT / ".venv" / "bin" / "edocgw"), "serve", "--config", str(cfg)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=out, cwd=self.tmp, env={**env, "PYTHONPATH": str(ROOT)}
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            ready = False
            for line in self.log.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    rec = json.loads(line)
                    if rec.get("listener") == "relay" and rec.get("port"):
                        self.port = int(rec["port"])
                    ready |= rec.get("msg") == "edocgw ready"
            if ready and self.port:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise SystemExit("edocgw serve did not start:\n" + self.tail())

    def _dkim_section(self) -> str:
        """With --dkim, everything sent is signed (an RSA key made for this run)."""
        if not self.dkim:
            return ""
        from gateway.delivery.dkimsign import generate

        key = self.tmp / "dkim.pem"
        key.write_bytes(generate("rsa")[0])
        return f'[dkim]\ndomain = "bench.localdomain"\nselector = "s1"\nkey_file = "{key}"\n'

    def tail(self, n: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def warnings(self) -> list[str]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                if json.loads(line).get("level") in ("error", "critical"):
                    out.append(line[:300])
            except ValueError:
                out.append(line[:300])
        return out

    async def _agencies(self) -> None:
        from store.agencies import AgencyIn, upsert_agency
        from store.db import Database

        db = Database.connect(self.url, pool_size=1)
        try:
            await db.upgrade()
            async with db.transaction() as s:
                for code, name, rcpt in (
                    (UP, "Sở Thông tin và Truyền thông (bench)", UP_RCPT),
                    (DOWN, "Sở Nội vụ (bench, máy chủ hỏng)", DOWN_RCPT),
                ):
                    await upsert_agency(
                        s,
                        AgencyIn(
                            code=code,
                            name=name,
                            address=rcpt,
                            domains=[rcpt.partition("@")[2]],
                            route=f"smtp://127.0.0.1:{self.sink_port}",
                            tls="none",
                        ),
                    )
        finally:
            await db.close()

    def trace_report(self) -> str:
        """Ask the traced serve for the peak since the last call; '' when not tracing."""
        if not self.trace or self.proc is None:
            return ""
        before = self.trace_out.read_text() if self.trace_out.exists() else ""
        Path(f"{self.trace_out}.req").touch()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = self.trace_out.read_text() if self.trace_out.exists() else ""
            if now.endswith("\f\n") and len(now) > len(before):
                return now[len(before) :].rstrip("\f\n")
            time.sleep(0.2)
        return "(no tracemalloc report)"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# -- mail --------------------------------------------------------------------------------------


def big_pdf(size: int, pki) -> bytes:  # noqa: ANN001
    """A signed one-page PDF whose page shows an uncompressed `size`-byte RGB image (a scan)."""
    from tests.support.pki import sign_pdf

    width = 4000
    height = max(1, size // (width * 3))
    pixels = random.Random(7).randbytes(width * height * 3)
    text = b"BT /F1 12 Tf 72 800 Td (CONG VAN SO 15/UBND-VP: BAN QUET 50 MB) Tj ET\n"
    text += b"q 450 0 0 600 72 120 cm /Im0 Do Q\n"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 6 0 R >> /XObject << /Im0 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream",
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
        b"/BitsPerComponent 8 /Length %d >>\nstream\n"
        % (width, height, len(pixels))
        + pixels
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % n + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return sign_pdf(out.getvalue(), pki.signer("person"))


def big_zip(size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("ho-so-quet.bin", random.Random(8).randbytes(size))
    return buf.getvalue()


def mail(key: str, rcpt: str, attachment: tuple[bytes, str, str, str] | None = None) -> bytes:
    m = EmailMessage()
    m["From"], m["To"] = SENDER, rcpt
    m["Subject"] = f"Công văn số 15/UBND-VP ({key})"
    m["Message-ID"] = f"<{key}.{time.time_ns()}@tayninh.gov.vn>"
    m["X-Bench-Id"] = key
    m.set_content("Kính gửi: Sở Thông tin và Truyền thông.\nVăn bản đính kèm.\n")
    if attachment is not None:
        data, maintype, subtype, filename = attachment
        m.add_attachment(data, maintype, subtype, filename=filename)
    return m.as_bytes().replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")


async def send_all(port: int, msgs: list[bytes], rcpt: str, sessions: int = 10) -> list[str]:
    """Send over persistent sessions; returns the 250 replies."""
    import aiosmtplib

    queue = list(reversed(msgs))
    replies: list[str] = []

    async def session() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=300, start_tls=False)
        await client.connect()
        try:
            while queue:
                raw = queue.pop()
                _, reply = await client.sendmail(SENDER, [rcpt], raw)
                replies.append(reply)
        finally:
            with contextlib.suppress(Exception):
                await client.quit()

    await asyncio.gather(*(session() for _ in range(min(sessions, len(msgs)))))
    return replies


async def db_value(url: str, sql: str, *args: object) -> object:
    import asyncpg

    from store.db import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def db_row(url: str, sql: str, *args: object) -> tuple:
    import asyncpg

    from store.db import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        return tuple(await conn.fetchrow(sql, *args))
    finally:
        await conn.close()


def wait_for(what: str, check, timeout: float | None = None) -> float:  # noqa: ANN001
    timeout = timeout or LIMITS["deadline"]
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - t0


# -- phases --------------------------------------------------------------------------------------


WHERE_SQL = """SELECT 'message ' || m.state || coalesce(' (' || m.error || ')', '') || '; deliveries: '
    || coalesce((SELECT string_agg(d.state || ' ' || coalesce(d.last_reply, ''), ', ')
                 FROM deliveries d WHERE d.message_id = m.id), 'none')
    || '; signatures: ' || coalesce((SELECT string_agg(s.verdict || ' ' || coalesce(s.reason, '')
                 || ' ' || left(coalesce(s.detail, ''), 200), ', ')
                 FROM signatures s WHERE s.message_id = m.id), 'none')
FROM messages m WHERE m.id = $1"""


def fmt(n: int) -> str:
    return f"{n / MB:7.1f}"


def phase_big(gw: Gateway, sampler: Sampler, sink: Sink, name: str, att, size: int) -> None:  # noqa: ANN001
    raw = mail(name, UP_RCPT, att)
    idle = sampler.steady()
    sampler.mark()
    t0 = time.monotonic()
    reply = asyncio.run(send_all(gw.port, [raw], UP_RCPT))[0]
    t_acc = time.monotonic() - t0
    msg_id = int(reply.rsplit(" ", 1)[-1])
    seen = {"at": time.monotonic()}

    def arrived() -> bool:
        if name in sink.arrived:
            return True
        if time.monotonic() - seen["at"] > 15:  # say where it is while waiting
            seen["at"] = time.monotonic()
            where = asyncio.run(db_value(gw.url, WHERE_SQL, msg_id))
            print(f"  ... {time.monotonic() - t0:.0f} s: {where}", flush=True)
        return False

    t_dlv = wait_for(f"{name} at the sink", arrived) + t_acc
    time.sleep(1.0)  # let the pipeline's and the delivery's last steps finish
    peaks = sampler.peaks()
    after = sampler.steady(3.0)
    state = asyncio.run(db_value(gw.url, "SELECT state FROM messages WHERE id = $1", msg_id))
    verdict = asyncio.run(
        db_value(
            gw.url,
            "SELECT string_agg(coalesce(verdict, '-'), ',') FROM documents WHERE message_id = $1",
            msg_id,
        )
    )
    print(
        f"\n{name}: attachment {size / MB:.1f} MB, message {len(raw) / MB:.1f} MB; accepted in "
        f"{t_acc:.1f} s, at the sink after {t_dlv:.1f} s ({sink.arrived[name] / MB:.1f} MB); "
        f"message state {state}, document verdicts {verdict}"
    )
    print(f"  {'process':<24}{'idle MB':>8}{'peak MB':>8}{'HWM MB':>8}{'peak-idle':>10}"
          f"{'x att':>7}{'after MB':>9}")  # fmt: skip
    for label, (peak, hwm) in sorted(peaks.items(), key=lambda kv: kv[0] != "serve"):
        base = idle.get(label, 0)
        top = max(peak, hwm)
        print(
            f"  {label:<24}{fmt(base)}{' ':1}{fmt(peak)}{fmt(hwm)}{fmt(top - base):>10}"
            f"{(top - base) / size:7.2f}{fmt(after.get(label, 0)):>9}"
        )
    report = gw.trace_report()
    if report:
        print("  tracemalloc (serve process, Python allocations):")
        print("\n".join("    " + ln for ln in report.splitlines()))


def phase_queue(gw: Gateway, sampler: Sampler, sink: Sink, total: int, rounds: int) -> None:
    """A round is `total` more attempts in all (every attempt is one more RCPT refused at the
    sink). `tried` counts the deliveries attempted at least once: with a 2 s retry and
    deliveries claimed oldest first, the first ones are retried over and over while the
    newest wait, which this shows."""
    print(f"\nqueue: {total} small messages to an agency whose server answers 451 to every RCPT")
    stats_sql = """SELECT count(*), count(*) FILTER (WHERE attempts > 0), coalesce(sum(attempts), 0)
                   FROM deliveries WHERE agency_code = $1"""
    print(f"  {'point':<22}{'queued':>8}{'tried':>8}{'attempts':>10}{'serve MB':>10}"
          f"{'children MB':>12}{'s':>6}")  # fmt: skip
    t0 = time.monotonic()

    def stats() -> tuple[int, int, int]:
        return tuple(asyncio.run(db_row(gw.url, stats_sql, DOWN)))  # type: ignore[return-value]

    def line(point: str) -> None:
        rss = sampler.steady()
        queued, tried, attempts = stats()
        workers = sum(v for k, v in rss.items() if k != "serve")
        print(
            f"  {point:<22}{queued:>8}{tried:>8}{attempts:>10}{rss.get('serve', 0) / MB:10.1f}"
            f"{workers / MB:12.1f}{time.monotonic() - t0:6.0f}",
            flush=True,
        )

    line("before")
    sent = 0
    for checkpoint in (total // 10, total // 2, total):
        msgs = [mail(f"q{i}", DOWN_RCPT) for i in range(sent, checkpoint)]
        asyncio.run(send_all(gw.port, msgs, DOWN_RCPT))
        sent = checkpoint
        wait_for(f"{checkpoint} deliveries", lambda c=checkpoint: stats()[0] >= c)
        line(f"{checkpoint} queued")
    start = stats()[2]
    for r in range(1, rounds + 1):
        wait_for(f"delivery round {r}", lambda r=r: stats()[2] >= start + r * total)
        line(f"round {r} (+{r * total})")
    print(f"  the sink refused {sink.refused} RCPTs (one per attempt)")
    report = gw.trace_report()
    if report:
        print("  tracemalloc (serve process, Python allocations):")
        print("\n".join("    " + ln for ln in report.splitlines()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 queued instead of 10,000")
    ap.add_argument(
        "--size-mb", type=float, default=46.0, help="attachment size in MiB (default 46)"
    )
    ap.add_argument("--queue", type=int, default=0, help="messages to queue (0: by --quick)")
    ap.add_argument("--rounds", type=int, default=3, help="delivery rounds to watch")
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--skip-queue", action="store_true", help="phase 1 only (big attachments)")
    ap.add_argument("--dkim", action="store_true", help="sign everything sent ([dkim] on)")
    ap.add_argument("--deadline", type=float, default=600.0, help="seconds per wait")
    ap.add_argument("--tracemalloc", action="store_true", help="trace the serve process (slow)")
    args = ap.parse_args()
    LIMITS["deadline"] = args.deadline
    total = args.queue or (2000 if args.quick else 10000)
    size = int(args.size_mb * MB)

    from store.embedded import EmbeddedPostgres
    from tests.support.pki import make_pdf, make_pki, sign_pdf

    tmp = Path(tempfile.mkdtemp(prefix="edocgw-mem-"))
    tmp.chmod(0o755)
    pki = make_pki(tmp / "pki")
    pg = EmbeddedPostgres(tmp / "pgdata")
    sink = Sink()
    ctl = start_sink(sink)
    gw: Gateway | None = None
    sampler: Sampler | None = None
    try:
        url = pg.start()
        gw = Gateway(tmp, url, ctl.port, pki, args.tracemalloc, args.dkim)
        gw.start()
        sampler = Sampler(gw.proc.pid)  # type: ignore[union-attr]
        sampler.start()
        print(
            f"edocgw serve pid {gw.proc.pid} (relay 127.0.0.1:{gw.port}); "  # type: ignore[union-attr]
            f"{os.cpu_count()} CPUs; VmHWM reset per phase: {sampler.can_reset_hwm}"
            + ("; tracemalloc ON (slow)" if args.tracemalloc else ""),
            flush=True,
        )
        small = sign_pdf(make_pdf("Công văn số 15/UBND-VP khởi động"), pki.signer("person"))
        warm = [
            mail(f"warm{i}", UP_RCPT, (small, "application", "pdf", f"{i}-UBND-VP.pdf"))
            for i in range(5)
        ]
        asyncio.run(send_all(gw.port, warm, UP_RCPT, sessions=2))
        wait_for("warm-up mail", lambda: all(f"warm{i}" in sink.arrived for i in range(5)), 120)
        time.sleep(2.0)
        gw.trace_report()  # start tracing peaks from here
        if not args.skip_big:
            t = time.monotonic()
            pdf = big_pdf(size, pki)
            zipped = big_zip(size)
            print(f"built a {len(pdf) / MB:.1f} MB signed PDF and a {len(zipped) / MB:.1f} MB "
                  f"zip in {time.monotonic() - t:.1f} s", flush=True)  # fmt: skip
            phase_big(gw, sampler, sink, "big-pdf", (pdf, "application", "pdf", "15-UBND-VP.pdf"), len(pdf))  # fmt: skip
            del pdf
            phase_big(gw, sampler, sink, "big-zip", (zipped, "application", "zip", "ho-so.zip"), len(zipped))  # fmt: skip
            del zipped
        if not args.skip_queue:
            phase_queue(gw, sampler, sink, total, args.rounds)
    except SystemExit:
        if gw is not None:
            print("the gateway's log, last lines:\n" + gw.tail(), file=sys.stderr)
        raise
    else:
        bad = gw.warnings()
        if bad:
            print(f"\n{len(bad)} error lines in the gateway's log, the last ones:")
            print("\n".join(bad[-5:]))
        return 0
    finally:
        if sampler:
            sampler.stop()
        if gw:
            gw.stop()
        ctl.stop()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
