"""Issue 15 §1: an `edxml` agency receives an edXML package, a `mime` agency the original.

A real `edocgw serve` takes one mail over SMTP addressed to two agencies: Lâm Đồng (format
edxml, its server answers 451 once) and Văn phòng Chính phủ (format mime). The mime agency
gets the original bytes behind the trace headers; the edxml agency gets a mail whose edXML
package mailparse reads back with the sending agency's and its own code, the document's facts,
every original attachment byte for byte, and an XMLDSig signature by the gateway's key that
signing's XML verification finds valid. The retry carries the very same mail.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.policy
import json
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib
import httpx

from gateway.delivery.trace import edocgw_id
from mailparse import parse
from mailparse.edxml import read_package
from signing import TrustStore
from signing.xmldsig import verify_xml
from store.agencies import AgencyIn
from store.db import Database
from tests.delivery.support import Recorder, start_sink, wait_until
from tests.e2e.harness import (
    HOSTNAME,
    SENDER,
    TRACE_HEADERS,
    add_agency,
    deliveries,
    messages,
    split_trace,
)
from tests.support.corpus import by_key, pdf_bytes
from tests.support.pki import Pki, sign_pdf

EDXML_RCPT = "vanban@lamdong.gov.vn"
MIME_RCPT = "vanthu@chinhphu.vn"


def _mail(pdf: bytes, extra: bytes) -> bytes:
    m = EmailMessage(policy=email.policy.SMTP)
    m["From"] = f"Văn thư UBND tỉnh Tây Ninh <{SENDER}>"
    m["To"] = f"{EDXML_RCPT}, {MIME_RCPT}"
    m["Subject"] = "Chỉ thị 15/CT-TTg về tăng cường phòng, chống dịch bệnh"
    m["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    m["Message-ID"] = make_msgid(domain="tayninh.gov.vn")
    m.set_content("Kính gửi quý cơ quan văn bản điện tử đính kèm.")
    m.add_attachment(pdf, maintype="application", subtype="pdf", filename="15-CT-TTg.pdf")
    m.add_attachment(
        extra, maintype="application", subtype="octet-stream", filename="Phụ lục kèm theo.bin"
    )
    return m.as_bytes()


async def test_edxml_agency_gets_a_signed_package_and_mime_agency_the_original(
    db: Database, gateway, sinks, pki: Pki, trust: TrustStore
):
    edxml_sink = await start_sink(Recorder(script=["451 4.3.0 busy, try again"]))
    mime_sink = await sinks()
    sender_agency_sink = await sinks()  # receipts to Tây Ninh go to its own server
    try:
        await add_agency(
            db,
            AgencyIn(
                "000.00.00.H53", "Ủy ban nhân dân tỉnh Tây Ninh", SENDER,
                domains=["tayninh.gov.vn"], route=sender_agency_sink.route, tls="none",
            ),
        )  # fmt: skip
        await add_agency(
            db,
            AgencyIn(
                "000.00.00.H36", "Ủy ban nhân dân tỉnh Lâm Đồng", EDXML_RCPT,
                domains=["lamdong.gov.vn"], route=edxml_sink.route, tls="none", format="edxml",
            ),
        )  # fmt: skip
        await add_agency(
            db,
            AgencyIn(
                "000.00.00.G22", "Văn phòng Chính phủ", MIME_RCPT,
                domains=["chinhphu.vn"], route=mime_sink.route, tls="none",
            ),
        )  # fmt: skip
        gw = await gateway()
        pdf = sign_pdf(pdf_bytes("ct-ttg-khan"), pki.signer("person"))
        extra = bytes(range(256)) * 40 + b"\r\n.\r\n\x00 end"
        raw = _mail(pdf, extra)
        await aiosmtplib.send(
            raw, sender=SENDER, recipients=[EDXML_RCPT, MIME_RCPT], hostname="127.0.0.1",
            port=gw.relay_port, start_tls=False, timeout=30,
        )  # fmt: skip

        async def both() -> bool:
            return len(edxml_sink.recorder.accepted()) >= 1 and len(mime_sink.got) >= 1

        await wait_until(both, 90, "the edXML agency (after one 451) and the mime agency")
        (msg,) = await messages(db)

        async def recorded() -> bool:
            return sorted(d.state for d in await deliveries(db, msg.id)) == ["delivered"] * 2

        await wait_until(recorded, 30, "both deliveries recorded as delivered")
    finally:
        await edxml_sink.close()

    # The mime agency: the original bytes, untouched, behind the trace headers.
    (plain,) = mime_sink.got
    assert plain.rcpt_tos == [MIME_RCPT]
    assert split_trace(plain.content, msg.raw) == TRACE_HEADERS

    # The edxml agency: first offered with a 451, then again: the same mail both times.
    first, second = edxml_sink.got
    assert first.reply.startswith("451") and second.reply.startswith("250")
    assert first.content == second.content
    assert second.rcpt_tos == [EDXML_RCPT]
    assert second.header("X-Edocgw-Id") == edocgw_id(msg.id, HOSTNAME)
    assert msg.raw not in second.content

    got = parse(second.content)
    packages = [a for a in got.all_attachments() if a.detected_type == "edxml"]
    assert len(packages) == 1
    xml = packages[0].data
    assert b"<edXML:edXML" in xml and b"<edXML:MessageHeader>" in xml  # explicit prefix
    pkg = read_package(xml)
    assert pkg.from_code == "000.00.00.H53"  # the agency whose domain sent it
    assert pkg.to_codes == ["000.00.00.H36"]
    doc = by_key("ct-ttg-khan")
    assert (pkg.code_number, pkg.code_notation) == ("15", "CT-TTg")
    assert pkg.type_name == "Chỉ thị"
    assert pkg.place == "Hà Nội" and pkg.promulgation_date == doc.date
    assert pkg.subject == doc.subject
    assert pkg.signer_full_name == doc.signer_name
    assert pkg.signer_position == doc.signer_position
    assert pkg.priority == 1 and pkg.urgency == "Khẩn"
    assert pkg.document_id == "000.00.00.H53,2024/03/05,15/CT-TTg"
    assert [(a.name, a.data) for a in pkg.attachments] == [
        ("15-CT-TTg.pdf", pdf),
        ("Phụ lục kèm theo.bin", extra),
    ]
    assert pkg.has_signature
    (report,) = verify_xml(xml, trust)
    assert report.verdict == "valid", report.detail
    assert report.covers_whole_file
    agency_cert = pki.signer("agency").cert
    assert report.serial == format(agency_cert.serial_number, "x")  # the gateway's key


async def test_edxml_package_without_a_gateway_key_is_unsigned_and_names_the_gateway(
    db: Database, gateway, sinks
):
    """A sender that is no registered agency: From/OrganId is `[gateway] agency_code`; no
    `[receipts]` key: no signature, the package is otherwise complete."""
    edxml_sink = await sinks()
    await add_agency(
        db,
        AgencyIn(
            "000.00.00.H36", "Ủy ban nhân dân tỉnh Lâm Đồng", EDXML_RCPT,
            domains=["lamdong.gov.vn"], route=edxml_sink.route, tls="none", format="edxml",
        ),
    )  # fmt: skip
    gw = await gateway(
        gateway={"agency_code": "000.00.00.A01"}, receipts={"sign_cert": "", "sign_key": ""}
    )
    m = EmailMessage(policy=email.policy.SMTP)
    m["From"] = "someone@example.org"
    m["To"] = EDXML_RCPT
    m["Subject"] = "Thông báo lịch làm việc"
    m["Message-ID"] = make_msgid(domain="example.org")
    m.set_content("Xin gửi lịch làm việc tuần sau.")
    sheet = "Thứ,Nội dung\r\nHai,Họp giao ban\r\n".encode()
    m.add_attachment(sheet, maintype="text", subtype="csv", filename="lich.csv")
    raw = m.as_bytes()
    await aiosmtplib.send(
        raw, sender="someone@example.org", recipients=[EDXML_RCPT], hostname="127.0.0.1",
        port=gw.relay_port, start_tls=False, timeout=30,
    )  # fmt: skip

    async def arrived() -> bool:
        return len(edxml_sink.got) >= 1

    (msg,) = await messages(db)
    await wait_until(arrived, 90, f"the edXML agency's copy (message {msg.state} {msg.error})")
    got = parse(edxml_sink.got[0].content)
    (att,) = [a for a in got.all_attachments() if a.detected_type == "edxml"]
    pkg = read_package(att.data)
    assert pkg.from_code == "000.00.00.A01"
    assert pkg.to_codes == ["000.00.00.H36"]
    assert pkg.subject == "Thông báo lịch làm việc"
    assert not pkg.has_signature
    assert pkg.document_id and pkg.document_id.startswith("000.00.00.A01,")
    assert str(msg.id) in pkg.document_id  # no number: the gateway's reference keeps it unique
    assert [(a.name, a.data) for a in pkg.attachments] == [("lich.csv", sheet)]


def _status_mail(xml: bytes, sender: str, to: str, subject: str) -> bytes:
    m = EmailMessage(policy=email.policy.SMTP)
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    m["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    m.set_content("Thông báo trạng thái xử lý văn bản.")
    m.add_attachment(xml, maintype="application", subtype="xml", filename="trangthai.edxml")
    return m.as_bytes()


def _status_in_message_header(document_id: str, code: str, reason: str) -> bytes:
    """Status fields inside MessageHeader (another vendor's shape), unprefixed namespace."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><edXMLEnvelope><edXMLHeader>'
        "<MessageHeader>"
        "<ResponseFor><OrganId>000.00.00.H53</OrganId><Code>15/CT-TTg</Code>"
        f"<PromulgationDate>2024/03/05</PromulgationDate><DocumentId>{document_id}</DocumentId>"
        "</ResponseFor>"
        "<From><OrganId>000.00.00.H36</OrganId><OrganName>UBND tỉnh Lâm Đồng</OrganName></From>"
        "<StaffInfo><Department>Văn thư</Department><Staff>Phạm Thu Trang</Staff></StaffInfo>"
        f"<StatusCode>{code}</StatusCode><Description>{reason}</Description>"
        "<Timestamp>2024/03/06 08:15:00</Timestamp>"
        "</MessageHeader></edXMLHeader></edXMLEnvelope><edXMLBody/></edXML>"
    ).encode()


async def test_status_packages_are_matched_logged_and_not_forwarded(
    db: Database, gateway, sinks, settings, tmp_path
):
    from sqlalchemy import select

    from gateway.admin.server import AdminServer
    from mailparse.edxml import Organ, ResponseFor, StaffInfo, StatusPackage, write_status
    from store import users
    from store.models import Event
    from tests.admin.test_adm_api import login
    from tests.support.cli import edocgw

    edxml_sink = await sinks()
    sender_agency_sink = await sinks()
    await add_agency(
        db,
        AgencyIn(
            "000.00.00.H53", "Ủy ban nhân dân tỉnh Tây Ninh", SENDER,
            domains=["tayninh.gov.vn"], route=sender_agency_sink.route, tls="none",
        ),
    )  # fmt: skip
    await add_agency(
        db,
        AgencyIn(
            "000.00.00.H36", "Ủy ban nhân dân tỉnh Lâm Đồng", EDXML_RCPT,
            domains=["lamdong.gov.vn"], route=edxml_sink.route, tls="none", format="edxml",
        ),
    )  # fmt: skip
    gw = await gateway()
    pdf = pdf_bytes("ct-ttg-khan")
    original = _mail(pdf, b"phu luc")
    await aiosmtplib.send(
        original, sender=SENDER, recipients=[EDXML_RCPT], hostname="127.0.0.1",
        port=gw.relay_port, start_tls=False, timeout=30,
    )  # fmt: skip

    async def packaged() -> bool:
        return len(edxml_sink.got) >= 1

    await wait_until(packaged, 90, "the edXML package at Lâm Đồng")
    (orig,) = await messages(db)
    (att,) = [
        a for a in parse(edxml_sink.got[0].content).all_attachments() if a.detected_type == "edxml"
    ]
    document_id = read_package(att.data).document_id
    assert document_id == "000.00.00.H53,2024/03/05,15/CT-TTg"
    (delivery,) = await deliveries(db, orig.id)

    # Lâm Đồng's system answers: 03 accepted (fields under Status, as write_status puts
    # them), then 02 refused with a reason (fields inside MessageHeader); and a stray 05 for a
    # document the gateway never sent.
    accepted = write_status(
        StatusPackage(
            response_for=ResponseFor("000.00.00.H53", "15/CT-TTg", None, document_id),
            from_organ=Organ(code="000.00.00.H36", name="UBND tỉnh Lâm Đồng"),
            staff_info=StaffInfo(department="Văn thư", staff="Phạm Thu Trang"),
            status_code="03",
            description="Đã vào sổ văn bản đến",
            timestamp=dt.datetime(2024, 3, 6, 8, 0),
        )
    )
    refused = _status_in_message_header(document_id, "02", "Sai thẩm quyền giải quyết")
    stray = _status_in_message_header("000.00.00.H53,2024/01/01,99/UBND-VP", "5", "Đang xử lý")
    sent = [
        (_status_mail(accepted, EDXML_RCPT, SENDER, "Trạng thái: đã tiếp nhận"), SENDER),
        (_status_mail(refused, EDXML_RCPT, "vanban@gw.test.gov.vn", "Trạng thái: từ chối"),
         "vanban@gw.test.gov.vn"),
        (_status_mail(stray, EDXML_RCPT, SENDER, "Trạng thái: đang xử lý"), SENDER),
    ]  # fmt: skip
    # One after another, as statuses come over days: each is logged before the next arrives
    # (sent together, two pipeline workers could log them in either order).
    for n, (raw, rcpt) in enumerate(sent, start=2):
        await aiosmtplib.send(
            raw, sender=EDXML_RCPT, recipients=[rcpt], hostname="127.0.0.1",
            port=gw.relay_port, start_tls=False, timeout=30,
        )  # fmt: skip

        async def processed(n: int = n) -> bool:
            ms = await messages(db)
            return len(ms) == n and all(m.state != "received" for m in ms)

        await wait_until(processed, 90, f"status mail {n - 1} processed")
    ms = await messages(db)
    status_msgs = ms[1:]
    for m in status_msgs:
        assert m.state == "processed", (m.id, m.state, m.error)
        assert await deliveries(db, m.id) == []  # not forwarded

    async def events_of(mid: int) -> list[Event]:
        async with db.transaction() as s:
            q = select(Event).where(Event.message_id == mid, Event.kind == "status_received")
            return list((await s.execute(q.order_by(Event.id))).scalars())

    on_original = await events_of(orig.id)
    assert [(e.detail["code"], e.detail["meaning"]) for e in on_original] == [
        ("03", "accepted"),
        ("02", "refused"),
    ]
    assert all(e.delivery_id == delivery.id for e in on_original)
    assert on_original[0].detail["text"] == "Đã tiếp nhận"
    assert on_original[1].detail["description"] == "Sai thẩm quyền giải quyết"
    assert on_original[1].detail["from_code"] == "000.00.00.H36"
    assert [e.detail["status_message_id"] for e in on_original] == [m.id for m in status_msgs[:2]]
    for m in status_msgs[:2]:
        (own,) = await events_of(m.id)
        assert own.detail["matched"] is True and own.detail["original_message_id"] == orig.id
    (stray_event,) = await events_of(status_msgs[2].id)
    assert stray_event.detail["matched"] is False and stray_event.detail["code"] == "05"

    # Nothing was forwarded to Tây Ninh, and no receipt went back for a status mail.
    await asyncio.sleep(2)
    assert all(b"StatusCode" not in g.content for g in sender_agency_sink.got)
    assert len(edxml_sink.got) == 1  # the package only: no receipts to the status sender

    cfg = str(gw.tmp / "edocgw.toml")
    r = edocgw("show", str(orig.id), "--json", "--config", cfg)
    assert r.code == 0, r.err
    shown = [e for e in json.loads(r.out)["events"] if e["kind"] == "status_received"]
    assert [e["detail"]["code"] for e in shown] == ["03", "02"]
    r = edocgw("show", str(orig.id), "--config", cfg)
    assert "status_received" in r.out and "refused" in r.out
    r = edocgw("log", "--config", cfg)
    assert r.code == 0 and "000.00.00.H36:delivered[02]" in r.out

    # The API and the web page of the original.
    async with db.transaction() as s:
        await users.add_user(s, "quantri", "mat-khau-quan-tri", ["admin"])
        token = await users.new_token(s, "quantri")
    srv = AdminServer(settings, db)
    await srv.start()
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=10) as c:
            got = (
                await c.get(
                    f"/api/messages/{orig.id}", headers={"Authorization": f"Bearer {token}"}
                )
            ).json()
            api_statuses = [e for e in got["events"] if e["kind"] == "status_received"]
            assert [(e["detail"]["code"], e["delivery_id"]) for e in api_statuses] == [
                ("03", delivery.id),
                ("02", delivery.id),
            ]
            await login(c, "quantri", "mat-khau-quan-tri")
            page = (await c.get(f"/messages/{orig.id}")).text
            assert "Status from recipients" in page and "Sai thẩm quyền giải quyết" in page
            assert 'data-code="02"' in page and 'data-code="03"' in page
    finally:
        await srv.stop()
