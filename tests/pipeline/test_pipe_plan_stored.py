"""What the pipeline stores of a message's plan, and who reuses it: a release routes again from
the stored routing input (against the agency registry of the day), and an edXML sender's
receipt quotes the package the pipeline read (the mail is not parsed again)."""

from __future__ import annotations

import email
import email.policy
from typing import Any

from sqlalchemy import select

from config import Settings
from gateway.admin.actions import release_message
from mailparse.edxml import read_status
from store.agencies import AgencyIn, upsert_agency
from store.db import Database
from store.models import Message
from tests.pipeline.pipe_support import deliveries_of, make_mail, submit, wait_for
from tests.support.corpus import by_key, make_edxml

H53 = AgencyIn("000.00.00.H53", "Ủy ban nhân dân tỉnh Tây Ninh", "vanthu@tayninh.gov.vn")
X77 = AgencyIn("000.00.00.X77", "Sở Thử nghiệm", "vanthu@thunghiem.gov.vn")


async def test_release_routes_from_what_the_pipeline_decided(
    pipeline_factory: Any, pipe_settings: Settings, db: Database, agencies: None
) -> None:
    by_subject = make_mail("[000.00.00.H53] Công văn gửi UBND tỉnh", [])
    pkg = make_edxml(by_key("cv-bnv"), to_codes=("000.00.00.X77",))
    by_edxml = make_mail("Văn bản điện tử", [("vb.edxml", pkg, "application/xml")])
    async with pipeline_factory():
        ids = [await submit(db, raw) for raw in (by_subject, by_edxml)]
        held = await wait_for(db, ids, {"processed", "held", "quarantined", "failed"})
    assert [held[i].state for i in ids] == ["held", "held"]  # neither agency is registered
    assert held[ids[0]].route_input["subject"] == "[000.00.00.H53] Công văn gửi UBND tỉnh"
    assert held[ids[1]].route_input["edxml_to_codes"] == ["000.00.00.X77"]
    assert held[ids[1]].edxml_ref["from_code"] == "000.00.00.G22"

    async with db.transaction() as s:
        for agency in (H53, X77):
            await upsert_agency(s, agency)
    for mid, agency in zip(ids, (H53, X77), strict=True):
        async with db.transaction() as s:
            result = await release_message(s, pipe_settings, mid, by="test")
        assert result.how == "routing" and len(result.queued) == 1
        (d,) = await deliveries_of(db, mid)
        assert (d.recipient, d.agency_code, d.state) == (agency.address, agency.code, "queued")


async def test_edxml_sender_receipt_quotes_the_package_the_pipeline_read(
    pipeline_factory: Any, db: Database, agencies: None
) -> None:
    pkg = make_edxml(by_key("cv-bnv"), to_codes=("000.00.00.G09",))
    raw = make_mail("Văn bản điện tử", [("vb.edxml", pkg, "application/xml")])
    async with pipeline_factory():
        mid = await submit(db, raw)
        msg = (await wait_for(db, [mid], {"processed", "held", "quarantined", "failed"}))[mid]
    assert msg.state == "processed"
    async with db.sessions() as s:
        raws = (await s.scalars(select(Message.raw).where(Message.source == "internal"))).all()
    (receipt,) = [email.message_from_bytes(r, policy=email.policy.default) for r in raws]
    (xml,) = [p for p in receipt.walk() if p.get_filename() == "trang-thai.edxml"]
    st = read_status(xml.get_payload(decode=True))
    assert st.status_code == "01"
    assert st.response_for.organ_id == "000.00.00.G22" == msg.edxml_ref["from_code"]
    assert st.response_for.document_id == msg.edxml_ref["document_id"]
    assert st.response_for.code == "05/BNV-VP"
