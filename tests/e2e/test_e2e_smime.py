"""Issue 5: an S/MIME-signed message keeps its `valid` verdict through an SMTP round trip.

Sent over SMTP to a real `edocgw serve`, stored, verified by the pipeline, read back out of
the store and forwarded to an agency's server: the stored raw bytes are exactly what was sent,
they verify as valid, the pipeline stored a `valid` message-level signature row, and the copy
the agency receives (trace headers in front) still verifies.
"""

from __future__ import annotations

from gateway.delivery.trace import edocgw_id
from signing import TrustStore, verify_smime_message
from store.agencies import AgencyIn
from store.db import Database
from tests.delivery.support import Sink, wait_until
from tests.e2e.harness import (
    HOSTNAME,
    TRACE_HEADERS,
    add_agency,
    deliveries,
    message_signatures,
    messages,
    relay_send,
    split_trace,
)
from tests.support.pki import Pki, make_smime_mail

AGENCY_RCPT = "vanban@lamdong.gov.vn"


async def test_smime_message_keeps_its_valid_verdict_after_the_smtp_round_trip(
    db: Database, gateway, sinks, pki: Pki, trust: TrustStore
):
    agency: Sink = await sinks()
    await add_agency(
        db,
        AgencyIn(
            "000.00.00.H36", "Ủy ban nhân dân tỉnh Lâm Đồng", AGENCY_RCPT,
            domains=["lamdong.gov.vn"], route=agency.route, tls="none",
        ),
    )  # fmt: skip
    gw = await gateway()
    body = "Kính gửi: Ủy ban nhân dân tỉnh Lâm Đồng.\nĐề nghị quý cơ quan phối hợp thực hiện./.\n"
    detached = make_smime_mail(body, pki.signer("person"), subject="Công văn 15/UBND-VP")
    opaque = make_smime_mail(body, pki.signer("agency"), opaque=True, subject="Công văn 16/UBND-VP")
    # The outer headers are not signed; a distinct Message-ID keeps the two apart.
    opaque = opaque.replace(b"<test-smime@", b"<test-smime-opaque@", 1)
    sent = [detached, opaque]
    for raw in sent:
        assert verify_smime_message(raw, trust)[0].verdict == "valid"  # before: a fair start
        await relay_send(gw.relay_port, raw, rcpt=AGENCY_RCPT)

    async def forwarded() -> bool:
        return len(agency.got) >= len(sent)

    await wait_until(forwarded, 60, "both messages at the agency")
    stored = await messages(db)

    async def recorded() -> bool:  # the sink's 250 comes a moment before the row says so
        states = [d.state for m in stored for d in await deliveries(db, m.id)]
        return states == ["delivered"] * len(sent)

    await wait_until(recorded, 30, "both deliveries recorded as delivered")
    assert [m.raw for m in stored] == sent, "stored byte for byte"
    at_agency_by_id = {g.header("X-Edocgw-Id"): g for g in agency.got}
    for msg in stored:
        got = at_agency_by_id[edocgw_id(msg.id, HOSTNAME)]
        (report,) = verify_smime_message(msg.raw, trust)
        assert report.verdict == "valid", report.detail
        rows = [r for r in await message_signatures(db, msg.id) if r.document_id is None]
        assert [(r.verdict, r.reason) for r in rows] == [("valid", None)]
        assert rows[0].cert_sha256 == report.cert_sha256
        assert (msg.verdict, msg.state) == ("valid", "processed")
        assert [d.state for d in await deliveries(db, msg.id)] == ["delivered"]
        # ... and back out: the agency's copy is the same bytes behind the trace headers.
        assert split_trace(got.content, msg.raw) == TRACE_HEADERS
        (at_agency,) = verify_smime_message(got.content, trust)
        assert at_agency.verdict == "valid", at_agency.detail
