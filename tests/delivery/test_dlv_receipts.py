"""Receipts: who gets one, what is in it (Vietnamese text, JSON, edXML status), its signature."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
import subprocess
from email.message import EmailMessage

import pytest
from sqlalchemy import insert, select, update

from gateway.notices.receipts import queue_notice
from gateway.pipeline.analyse import analyse_content
from gateway.pipeline.outcome import edxml_reference
from mailparse.edxml import EdxmlPackage, Organ, read_status, write_package
from signing import TrustStore, verify_smime_message
from store.models import Delivery, Document, Event, Message
from tests.delivery.support import internal_messages, make_raw, put_message
from tests.support.pki import make_pki

SENDER = "vanthu@tayninh.gov.vn"


async def _notice(db, settings, msg_id: int, kind: str, detail: dict | None = None) -> int | None:
    async with db.transaction() as s:
        original = await s.get(Message, msg_id)
        return await queue_notice(s, settings, original, kind, detail or {})


async def _raw(db, msg_id: int) -> bytes:
    async with db.transaction() as s:
        return (await s.execute(select(Message.raw).where(Message.id == msg_id))).scalar_one()


def _parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def _parts(m: EmailMessage) -> dict[str, EmailMessage]:
    return {p.get_content_type(): p for p in m.walk() if not p.is_multipart()}


@pytest.mark.parametrize(
    ("case", "kwargs", "headers"),
    [
        ("null sender", {"mail_from": ""}, ()),
        ("internal", {"source": "internal"}, ()),
        ("auto-submitted", {}, (("Auto-Submitted", "auto-replied"),)),
        ("precedence bulk", {}, (("Precedence", "bulk"),)),
        ("excluded domain", {"mail_from": "a@noreceipt.gov.vn"}, ()),
        ("excluded subdomain", {"mail_from": "a@x.noreceipt.gov.vn"}, ()),
    ],
)
async def test_suppressed(db, settings, case, kwargs, headers):
    settings.receipts.exclude_domains = ["noreceipt.gov.vn"]
    msg_id, _ = await put_message(db, make_raw(extra_headers=headers), [], **kwargs)
    assert await _notice(db, settings, msg_id, "accepted") is None, case
    assert all(m.id == msg_id for m in await internal_messages(db))


async def test_bounce_report_and_disabled_get_none(db, settings):
    report = (
        b"From: MAILER-DAEMON@other.gov.vn\r\nTo: vanthu@tayninh.gov.vn\r\nSubject: bounce\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;"
        b' boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n'
    )
    msg_id, _ = await put_message(db, report, [], mail_from="postmaster@other.gov.vn")
    assert await _notice(db, settings, msg_id, "accepted") is None
    plain_id, _ = await put_message(db, make_raw(), [])
    settings.receipts.enabled = False
    assert await _notice(db, settings, plain_id, "accepted") is None
    assert await internal_messages(db) == []


async def test_acceptance_receipt_content(db, settings):
    raw = make_raw(message_id="<cv-77@tayninh.gov.vn>")
    msg_id, (d_id,) = await put_message(
        db, raw, [("vanban@stttt.gov.vn", "000.00.00.G22", 0)], subject="Công văn 77/UBND-VP"
    )
    async with db.transaction() as s:
        await s.execute(
            insert(Document).values(
                message_id=msg_id,
                part_path="2",
                filename="77-UBND-VP.pdf",
                detected_type="pdf",
                size=10,
                sha256="0" * 64,
                kind="Công văn",
                number="77",
                notation="UBND-VP",
                verdict="valid",
            )
        )
    notice_id = await _notice(db, settings, msg_id, "accepted", {"note": "thử"})
    assert notice_id is not None

    async with db.transaction() as s:
        notice = await s.get(Message, notice_id)
        (nd,) = (
            await s.execute(select(Delivery).where(Delivery.message_id == notice_id))
        ).scalars()
        ev = (
            await s.execute(
                select(Event).where(Event.message_id == msg_id, Event.kind == "receipt_sent")
            )
        ).scalar_one()
    assert (notice.source, notice.state, notice.mail_from) == ("internal", "processed", "")
    assert (nd.recipient, nd.state) == (SENDER, "queued")
    assert ev.detail["notice"] == "receipt/accepted" and ev.detail["notice_message"] == notice_id

    m = _parse(await _raw(db, notice_id))
    assert (
        m["To"].addresses[0].addr_spec == SENDER
        and m["From"].addresses[0].addr_spec == "postmaster@gw.test.gov.vn"
    )
    assert m["Auto-Submitted"] == "auto-replied" and m["References"] == "<cv-77@tayninh.gov.vn>"
    assert str(m["Subject"]).startswith("Xác nhận tiếp nhận văn bản: Công văn 77/UBND-VP")
    parts = _parts(m)
    text = parts["text/plain"].get_content()
    assert "Hệ thống đã tiếp nhận văn bản điện tử" in text
    assert "Số, ký hiệu 77/UBND-VP" in text and "vanban@stttt.gov.vn (000.00.00.G22)" in text
    data = json.loads(parts["application/json"].get_payload(decode=True))
    assert data["kind"] == "accepted" and data["message_id"] == "<cv-77@tayninh.gov.vn>"
    assert data["documents"][0]["number"] == "77" and data["documents"][0]["notation"] == "UBND-VP"
    assert data["destinations"][0]["recipient"] == "vanban@stttt.gov.vn"
    assert data["detail"] == {"note": "thử"}
    assert "application/xml" not in parts, "no edXML status for a non-edXML sender"
    with pytest.raises(ValueError):
        await _notice(db, settings, msg_id, "bogus")


def _edxml_mail() -> bytes:
    pkg = EdxmlPackage(
        from_organ=Organ(code="000.00.00.H53", name="UBND tỉnh Tây Ninh"),
        to=[Organ(code="000.00.00.G22", name="Văn phòng Chính phủ")],
        document_id="000.00.00.H53,2024/05/22,15/UBND-VP",
        code_number="15",
        code_notation="UBND-VP",
        promulgation_date=dt.date(2024, 5, 22),
        type_name="Công văn",
        subject="V/v kiểm thử biên nhận",
    )
    m = EmailMessage(policy=email.policy.SMTP)
    m["From"], m["To"], m["Subject"] = SENDER, "vanban@localhost", "edXML 15/UBND-VP"
    m["Message-ID"] = "<edxml-15@tayninh.gov.vn>"
    m.set_content("Gửi văn bản điện tử.")
    m.add_attachment(write_package(pkg), "application", "xml", filename="15-UBND-VP.edxml")
    return m.as_bytes()


@pytest.mark.parametrize(("kind", "code"), [("accepted", "01"), ("rejected", "02")])
async def test_edxml_sender_gets_status_package(db, settings, tmp_path, kind, code):
    settings.receipts.organ_code = "000.00.00.G22"
    raw = _edxml_mail()
    msg_id, _ = await put_message(db, raw, [])
    # What the pipeline stores with the message: the reference its plan read from the edXML
    # (the receipt does not read the mail again).
    ref = edxml_reference(analyse_content(raw, tmp_path / "spool"))
    assert ref is not None
    async with db.transaction() as s:
        await s.execute(update(Message).where(Message.id == msg_id).values(edxml_ref=ref))
    notice_id = await _notice(
        db, settings, msg_id, kind, {"reason": "Sai định dạng"} if code == "02" else {}
    )
    parts = _parts(_parse(await _raw(db, notice_id)))
    st = read_status(parts["application/xml"].get_payload(decode=True))
    assert st.status_code == code
    assert st.response_for.organ_id == "000.00.00.H53"
    assert st.response_for.document_id == "000.00.00.H53,2024/05/22,15/UBND-VP"
    assert st.response_for.code == "15/UBND-VP"
    assert st.from_organ is not None and st.from_organ.code == "000.00.00.G22"
    if code == "02":
        assert st.description == "Sai định dạng"


async def test_signed_receipt_verifies(db, settings, tmp_path):
    pki = make_pki(tmp_path / "pki")
    signer = pki.signer("agency")
    cert_file = tmp_path / "receipt-cert.pem"
    cert_file.write_bytes(signer.cert_pem + signer.chain_pem)
    settings.receipts.sign_cert = str(cert_file)
    settings.receipts.sign_key = str(signer.key_path)
    msg_id, _ = await put_message(db, make_raw(), [])
    notice_id = await _notice(db, settings, msg_id, "accepted")
    raw = await _raw(db, notice_id)

    m = _parse(raw)
    assert m.get_content_type() == "multipart/signed"
    assert m["Auto-Submitted"] == "auto-replied"
    (report,) = verify_smime_message(raw, TrustStore.load(pki.anchors, pki.crls))
    assert report.verdict == "valid", report
    assert report.signer_uid == "MST:3900123456"
    # An independent verifier agrees (OpenSSL's S/MIME command line).
    out = await asyncio.to_thread(
        subprocess.run,
        ["openssl", "smime", "-verify", "-CAfile", str(pki.anchors[0]), "-purpose", "any"],
        input=raw,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode()
    assert "Hệ thống đã tiếp nhận".encode() in out.stdout or b"base64" in out.stdout

    tampered = raw.replace("tiếp nhận".encode(), "từ chối".encode(), 1)
    if tampered == raw:  # the text part is base64: change the JSON part's bytes instead
        tampered = raw.replace(
            b"Content-Type: application/json", b"Content-Type: application/jsoN", 1
        )
    (bad,) = verify_smime_message(tampered, TrustStore.load(pki.anchors, pki.crls))
    assert bad.verdict == "invalid"
