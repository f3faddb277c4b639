"""[gateway] roles: an intake process and a worker process on one database share the work."""

from __future__ import annotations

import json

from store.agencies import AgencyIn
from store.db import Database
from tests.delivery.support import wait_until
from tests.e2e.harness import (
    GatewayProcess,
    add_agency,
    base_config,
    deliveries,
    document_mail,
    messages,
    relay_send,
)
from tests.support.corpus import pdf_bytes

AGENCY_RCPT = "vanthu@tayninh.gov.vn"


def _started(gw: GatewayProcess) -> set[str]:
    out = set()
    for line in gw.log_path.read_text().splitlines():
        msg = json.loads(line).get("msg", "")
        if msg.startswith("started "):
            out.add(msg.removeprefix("started "))
    return out


async def test_intake_and_worker_processes_split_the_work(
    db: Database, tmp_path, sinks, sender_sink
):
    agency = await sinks()
    await add_agency(
        db,
        AgencyIn(
            "000.00.00.H53", "Ủy ban nhân dân tỉnh Tây Ninh", AGENCY_RCPT,
            domains=["tayninh.gov.vn"], route=agency.route, tls="none",
        ),
    )  # fmt: skip
    procs = []
    for name, roles in (("intake", ["intake"]), ("worker", ["pipeline", "delivery"])):
        (tmp_path / name).mkdir()
        cfg = base_config(tmp_path / name, db.url, sender_sink.hostport)
        cfg["gateway"]["roles"] = roles
        cfg["receipts"]["enabled"] = False
        procs.append(GatewayProcess(tmp_path / name, cfg, listens="intake" in roles))
    intake, worker = procs
    try:
        await worker.start()
        await intake.start()
        raw = document_mail("[000.00.00.H53] Giấy mời họp", pdf_bytes("gm-vpcp"), "GM.pdf")
        await relay_send(intake.relay_port, raw)

        async def delivered() -> bool:
            return len(agency.got) == 1

        await wait_until(delivered, 30, "the agency got the message")
    finally:
        codes = [await p.stop() for p in procs]
    assert codes == [0, 0]
    assert _started(intake) == {"event-sealer", "retention", "smtp"}
    assert _started(worker) == {"event-sealer", "retention", "pipeline", "delivery"}
    (msg,) = await messages(db)
    assert msg.state == "processed"
    assert [d.state for d in await deliveries(db, msg.id)] == ["delivered"]
    assert not intake.errors() and not worker.errors()
