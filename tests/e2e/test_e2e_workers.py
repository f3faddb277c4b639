"""`[gateway] worker_processes`: serve's pipeline and delivery in niced child processes.

The child must do the processing (at the configured lower priority), report through the
parent's /metrics and /healthz, be replaced when it dies, and never outlive its parent.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path

import httpx
import pytest

from store.agencies import AgencyIn
from store.db import Database
from tests.delivery.support import wait_until
from tests.e2e.harness import (
    TRACE_HEADERS,
    GatewayProcess,
    add_agency,
    base_config,
    deliveries,
    document_mail,
    message_documents,
    messages,
    parse,
    relay_send,
    split_trace,
)
from tests.pipeline.pipe_support import make_mail
from tests.support.corpus import pdf_bytes
from tests.support.pki import Pki, sign_pdf

AGENCY = "000.00.00.H53"
AGENCY_RCPT = "vanthu@tayninh.gov.vn"


def _records(gw: GatewayProcess) -> list[dict]:
    out = []
    for line in gw.log_path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"msg": "NOT JSON: " + line})
    return out


def _worker_pids(gw: GatewayProcess) -> list[int]:
    return [
        int(r["pid"])
        for r in _records(gw)
        if r.get("msg", "").startswith("worker process 1 running")
    ]


def _admin_url(gw: GatewayProcess) -> str:
    for r in _records(gw):
        m = re.search(r"web admin on (http://127\.0\.0\.1:\d+)", r.get("msg", ""))
        if m:
            return m.group(1)
    raise AssertionError("no admin address in the log")


def _nice(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[16])


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


async def _agency(db: Database, sinks) -> object:
    agency = await sinks()
    await add_agency(
        db,
        AgencyIn(
            AGENCY, "Ủy ban nhân dân tỉnh Tây Ninh", AGENCY_RCPT,
            domains=["tayninh.gov.vn"], route=agency.route, tls="none",
        ),
    )  # fmt: skip
    return agency


def _config(tmp_path: Path, db: Database, sender_sink, **gateway: object) -> dict:
    cfg = base_config(tmp_path, db.url, sender_sink.hostport)
    cfg["gateway"].update(gateway)
    cfg["receipts"]["enabled"] = False
    cfg["admin"] = {"listen": "127.0.0.1:0", "enabled": True}
    return cfg


async def _send_and_deliver(gw: GatewayProcess, agency, n: int, pdf: bytes | None = None) -> None:
    pdf = pdf or pdf_bytes("gm-vpcp")
    raw = document_mail(f"[{AGENCY}] Giấy mời họp số {n}", pdf, "GM.pdf")
    await relay_send(gw.relay_port, raw)

    async def delivered() -> bool:
        return len(agency.got) == n

    await wait_until(delivered, 30, f"the agency got message {n}")


async def test_the_worker_process_processes_and_delivers_at_lower_priority(
    db: Database, tmp_path, sinks, sender_sink, pki: Pki
):
    agency = await _agency(db, sinks)
    cfg = _config(tmp_path, db, sender_sink, worker_nice=7)
    cfg["trust"] = {"anchors": [str(p) for p in pki.anchors], "crls": [str(p) for p in pki.crls]}
    gw = GatewayProcess(tmp_path, cfg)
    try:
        await gw.start()
        (child,) = _worker_pids(gw)
        assert _nice(child) == _nice(gw.proc.pid) + 7
        await _send_and_deliver(gw, agency, 1, sign_pdf(pdf_bytes("gm-vpcp"), pki.signer("agency")))
        async with httpx.AsyncClient(base_url=_admin_url(gw), timeout=10) as web:
            health = (await web.get("/healthz")).json()
            metrics = (await web.get("/metrics")).text
    finally:
        code = await gw.stop()
    assert code == 0 and not gw.errors(), gw.log_tail()
    assert not _running(child), "the worker process outlived serve"
    assert health["components"]["workers"] is True
    assert "pipeline" not in health["components"]  # not in the listener's process
    # counted by the listener, and by the worker process: all exported by the parent
    assert 'edocgw_messages_received_total{source="smtp"} 1.0' in metrics
    assert 'edocgw_messages_processed_total{outcome="processed"} 1.0' in metrics
    assert 'edocgw_verify_seconds_count{format="pdf"} 1.0' in metrics
    assert 'edocgw_connections{listener="relay"} 0.0' in metrics  # opened, then closed
    # the work was done (and logged) by the worker process
    done = [r for r in _records(gw) if r.get("msg", "").startswith("delivery ")]
    assert done and all(r.get("proc") == "worker-1" for r in done), done
    (msg,) = await messages(db)
    assert msg.state == "processed"
    assert [d.state for d in await deliveries(db, msg.id)] == ["delivered"]


@pytest.mark.parametrize("workers", [1, 0])
async def test_the_intake_hands_the_pipeline_the_bytes_it_stores(
    db: Database, tmp_path, sinks, sender_sink, workers: int
):
    """A letter of 8 KB or more reaches the pipeline from the intake, not from the database
    (gateway/handoff.py), in a worker process or in serve's own: stored, analysed and
    forwarded byte for byte all the same. A smaller one is read with the claim as before."""
    agency = await _agency(db, sinks)
    gw = GatewayProcess(tmp_path, _config(tmp_path, db, sender_sink, worker_processes=workers))
    big = document_mail(f"[{AGENCY}] Giấy mời họp số 1", pdf_bytes("gm-vpcp"), "GM.pdf")
    small = make_mail(f"[{AGENCY}] Thông báo số 2/TB-UBND", body="Kính gửi: Sở Nội vụ.\n")
    small = small.replace(b"\n", b"\r\n")  # as it arrives over SMTP
    assert len(big) > 8 * 1024 > len(small)
    try:
        await gw.start()
        for n, raw in enumerate((big, small), start=1):
            await relay_send(gw.relay_port, raw)

            async def delivered(n: int = n) -> bool:
                return len(agency.got) == n

            await wait_until(delivered, 30, f"the agency got message {n}")
        async with httpx.AsyncClient(base_url=_admin_url(gw), timeout=10) as web:
            metrics = (await web.get("/metrics")).text
    finally:
        code = await gw.stop()
    assert code == 0 and not gw.errors(), gw.log_tail()
    assert "edocgw_pipeline_raw_handed_total 1.0" in metrics, "the big one, not the small one"
    stored = {m.subject: m for m in await messages(db)}
    assert [m.state for m in stored.values()] == ["processed", "processed"]
    for got, raw in zip(agency.got, (big, small), strict=True):
        assert split_trace(got.content, raw) == TRACE_HEADERS
    big_row = next(m for m in stored.values() if m.size == len(big))
    assert big_row.raw == big and len(await message_documents(db, big_row.id)) == 1


async def test_a_killed_worker_process_is_replaced(db: Database, tmp_path, sinks, sender_sink):
    agency = await _agency(db, sinks)
    gw = GatewayProcess(tmp_path, _config(tmp_path, db, sender_sink))
    try:
        await gw.start()
        await _send_and_deliver(gw, agency, 1)

        async def recorded() -> bool:  # killed before that, the new worker sends it again
            (msg,) = await messages(db)
            return [d.state for d in await deliveries(db, msg.id)] == ["delivered"]

        await wait_until(recorded, 10, "the delivery of message 1 recorded")
        (first,) = _worker_pids(gw)
        os.kill(first, signal.SIGKILL)
        # Accepted while the worker is gone: its copy for the worker (gateway/handoff.py) goes
        # into a dead pipe or nowhere, and the new worker reads it from the database.
        gone = document_mail(f"[{AGENCY}] Giấy mời họp số 2", pdf_bytes("gm-vpcp"), "GM.pdf")
        await relay_send(gw.relay_port, gone)
        async with httpx.AsyncClient(base_url=_admin_url(gw), timeout=10) as web:

            async def unhealthy() -> bool:
                return (await web.get("/healthz")).status_code == 503

            async def replaced() -> bool:
                return len(_worker_pids(gw)) == 2 and (await web.get("/healthz")).status_code == 200

            await wait_until(unhealthy, 5, "/healthz to report the dead worker")
            await wait_until(replaced, 30, "a new worker process")

        async def both() -> bool:
            return len(agency.got) == 2

        await wait_until(both, 30, "the mail accepted while no worker ran")
        assert agency.got[1].content.endswith(gone), [
            parse(g.content)["Subject"] for g in agency.got
        ]
        await _send_and_deliver(gw, agency, 3)
    finally:
        code = await gw.stop()
    assert code == 0
    second = _worker_pids(gw)[1]
    assert second != first and not _running(second)
    warnings = [r["msg"] for r in _records(gw) if r.get("level") in ("warning", "error")]
    assert warnings == ["worker process 1 exited with code -9; starting another in 1 s"]
    assert [m.state for m in await messages(db)] == ["processed"] * 3


async def test_the_worker_process_ends_with_a_killed_serve(
    db: Database, tmp_path, sinks, sender_sink
):
    gw = GatewayProcess(tmp_path, _config(tmp_path, db, sender_sink))
    await gw.start()
    (child,) = _worker_pids(gw)
    gw.proc.kill()
    await gw.proc.wait()
    for _ in range(100):  # it notices its closed stdin and stops its workers
        if not _running(child):
            break
        await asyncio.sleep(0.1)
    assert not _running(child), "the worker process outlived a SIGKILLed serve"


async def test_no_worker_processes_runs_everything_in_one(
    db: Database, tmp_path, sinks, sender_sink
):
    agency = await _agency(db, sinks)
    gw = GatewayProcess(tmp_path, _config(tmp_path, db, sender_sink, worker_processes=0))
    try:
        await gw.start()
        await _send_and_deliver(gw, agency, 1)
    finally:
        code = await gw.stop()
    assert code == 0 and not gw.errors()
    started = {r["msg"] for r in _records(gw) if r.get("msg", "").startswith("started ")}
    assert {"started pipeline", "started delivery"} <= started
    assert "started workers" not in started and not _worker_pids(gw)
