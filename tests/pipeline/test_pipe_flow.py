"""The pipeline end to end on a real PostgreSQL with real verifier processes and real PDFs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import select

from config import Settings
from store.db import CHANNEL_DELIVERIES, Database, asyncpg_dsn
from store.models import Document, Signature
from tests.pipeline.pipe_support import (
    PROCESSED_EVENTS,
    deliveries_of,
    events_of,
    make_mail,
    running,
    submit,
    wait_for,
)
from tests.support.corpus import pdf_bytes
from tests.support.pki import Pki, make_pdf, replace_page_content, sign_pdf

PDF = "application/pdf"


async def _documents(db: Database, message_id: int) -> list[Document]:
    async with db.sessions() as s:
        q = select(Document).where(Document.message_id == message_id).order_by(Document.id)
        return list((await s.scalars(q)).all())


async def _signatures(db: Database, message_id: int) -> list[Signature]:
    async with db.sessions() as s:
        q = select(Signature).where(Signature.message_id == message_id).order_by(Signature.id)
        return list((await s.scalars(q)).all())


async def test_pdf_is_classified_stored_and_routed_to_two_agencies(
    pipeline_factory: Any, db: Database, agencies: None
) -> None:
    """The Giấy mời names Bộ Nội vụ, Bộ Tư pháp and Tây Ninh (not registered here)."""
    listener = await asyncpg.connect(asyncpg_dsn(db.url))
    woken: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(CHANNEL_DELIVERIES, lambda *a: woken.put_nowait(a[3]))
    try:
        raw = make_mail("Giấy mời họp", [("101_GM-VPCP.pdf", pdf_bytes("gm-vpcp"), PDF)])
        async with pipeline_factory():
            mid = await submit(db, raw)
            msg = (await wait_for(db, [mid], {"processed", "held", "failed"}))[mid]
            assert msg.state == "processed", msg.error
            payload = await asyncio.wait_for(woken.get(), 5)
    finally:
        await listener.close()

    assert payload == str(mid)
    assert msg.urgency == "Thượng khẩn"
    assert msg.verdict == "unsigned"
    (doc,) = await _documents(db, mid)
    assert (doc.filename, doc.detected_type, doc.kind, doc.number, doc.notation) == (
        "101_GM-VPCP.pdf",
        "pdf",
        "Giấy mời",
        "101",
        "GM-VPCP",
    )
    assert doc.urgency == "Thượng khẩn" and doc.secrecy is None
    assert doc.doc_date.isoformat() == "2024-06-17"
    assert "Bộ Tư pháp" in doc.recipients
    assert doc.sources["kind"] == "text" and doc.verdict == "unsigned"

    rows = await deliveries_of(db, mid)
    assert [(d.recipient, d.agency_code, d.state, d.priority) for d in rows] == [
        ("vanthu@moha.gov.vn", "000.00.00.G12", "queued", 2),
        ("vbden@moj.gov.vn", "000.00.00.G09", "queued", 2),
    ]
    kinds = [e.kind for e in await events_of(db, mid)]
    assert kinds[:5] == PROCESSED_EVENTS
    assert "receipt_sent" in kinds  # the sender's acceptance receipt is queued
    routed = next(e for e in await events_of(db, mid) if e.kind == "routed")
    assert "Ủy ban nhân dân tỉnh Tây Ninh" in routed.detail["unresolved"]


async def test_urgency_sets_priority_hoa_toc_hen_gio(
    pipeline_factory: Any, db: Database, agencies: None
) -> None:
    raw = make_mail(
        "[000.00.00.G12] Kế hoạch sơ tán",
        [
            ("77_KH-BCD.pdf", pdf_bytes("kh-hoatoc-hengio"), PDF),
            ("bc.pdf", pdf_bytes("bc-khan"), PDF),
        ],
    )
    async with pipeline_factory():
        mid = await submit(db, raw)
        msg = (await wait_for(db, [mid], {"processed", "held", "failed"}))[mid]
    assert msg.state == "processed" and msg.urgency == "Hỏa tốc hẹn giờ"
    (d,) = await deliveries_of(db, mid)
    assert (d.agency_code, d.priority) == ("000.00.00.G12", 4)


async def test_secrecy_marked_document_is_quarantined_without_deliveries(
    pipeline_factory: Any, db: Database, agencies: None
) -> None:
    raw = make_mail(
        "[000.00.00.G12] Quy chế bảo vệ bí mật", [("03_QC-BQP.pdf", pdf_bytes("qc-bqp-mat"), PDF)]
    )
    async with pipeline_factory():
        mid = await submit(db, raw)
        msg = (await wait_for(db, [mid], {"processed", "held", "quarantined", "failed"}))[mid]
    assert msg.state == "quarantined"
    assert await deliveries_of(db, mid) == []
    (doc,) = await _documents(db, mid)
    assert doc.secrecy == "Mật"
    events = await events_of(db, mid)
    q = next(e for e in events if e.kind == "quarantined")
    assert q.detail["reasons"] == ["secrecy:Mật:03_QC-BQP.pdf"]
    assert "mật" in q.detail["reason"]
    assert "routed" not in [e.kind for e in events]
    receipts = [e.detail["notice"] for e in events if e.kind == "receipt_sent"]
    assert receipts == ["receipt/quarantined"]


async def test_signed_pdf_verified_and_tampered_one_held(
    pipe_settings: Settings, db: Database, agencies: None, pki: Pki
) -> None:
    """invalid_signature = "hold": the tampered copy waits, its deliveries held, not queued."""
    signed = sign_pdf(make_pdf("Công văn số 15/UBND-VP"), pki.signer("person"))
    tampered = replace_page_content(signed)
    pipe_settings.policy.invalid_signature = "hold"
    good = make_mail("[000.00.00.G09] Công văn 15/UBND-VP", [("15_UBND-VP.pdf", signed, PDF)])
    bad = make_mail("[000.00.00.G09] Công văn 15/UBND-VP", [("15_UBND-VP.pdf", tampered, PDF)])
    async with running(pipe_settings, db):
        ok_id = await submit(db, good)
        bad_id = await submit(db, bad)
        msgs = await wait_for(db, [ok_id, bad_id], {"processed", "held", "failed"}, within=30)

    assert (msgs[ok_id].state, msgs[ok_id].verdict) == ("processed", "valid")
    (sig,) = await _signatures(db, ok_id)
    assert (sig.format, sig.verdict, sig.signer_cn) == ("pdf", "valid", "Nguyễn Văn An")
    (doc,) = await _documents(db, ok_id)
    assert sig.document_id == doc.id and doc.verdict == "valid"
    assert [d.state for d in await deliveries_of(db, ok_id)] == ["queued"]

    assert (msgs[bad_id].state, msgs[bad_id].verdict) == ("held", "invalid")
    sigs = await _signatures(db, bad_id)
    assert sigs and all(s.verdict == "invalid" for s in sigs)
    assert [(d.agency_code, d.state) for d in await deliveries_of(db, bad_id)] == [
        ("000.00.00.G09", "held")
    ]
    held = next(e for e in await events_of(db, bad_id) if e.kind == "held")
    assert held.detail["reasons"] == ["signature:invalid:15_UBND-VP.pdf"]


def _big_pdf(text: str, side: int = 420) -> bytes:
    """A typed PDF that also carries a noise picture (incompressible, smaller than a page
    scan), so it is over 256 KiB."""
    import io
    import random

    from fpdf import FPDF
    from PIL import Image

    rnd = random.Random(15)
    img = Image.frombytes("RGB", (side, side), rnd.randbytes(side * side * 3))
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(w=0, text=text)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    pdf.image(io.BytesIO(buf.getvalue()), x=10, y=120, w=100)
    return bytes(pdf.output())


async def test_small_and_big_signed_pdfs_both_verified_and_the_spool_left_empty(
    pipe_settings: Settings, db: Database, agencies: None, pki: Pki
) -> None:
    """A small signed part reaches the verifier as bytes, one over 256 KiB as a spool file;
    either way its signature is checked, and nothing is left in the spool."""
    small = sign_pdf(make_pdf("Công văn số 16/UBND-VP"), pki.signer("person"))
    body = "UY BAN NHAN DAN TINH. So: 17/UBND-VP. CONG VAN ve viec thu nghiem. " * 8
    big = sign_pdf(_big_pdf(body), pki.signer("person"))
    assert len(small) < 256 * 1024 < len(big)
    one = make_mail("[000.00.00.G09] Công văn 16/UBND-VP", [("16_UBND-VP.pdf", small, PDF)])
    two = make_mail(
        "[000.00.00.G09] Công văn 17/UBND-VP",
        [("17_UBND-VP.pdf", big, PDF), ("16_UBND-VP.pdf", small, PDF)],
    )
    async with running(pipe_settings, db):
        ids = [await submit(db, one), await submit(db, two)]
        msgs = await wait_for(db, ids, {"processed", "held", "failed"}, within=60)
    for mid in ids:
        held = [e.detail for e in await events_of(db, mid) if e.kind == "held"]
        assert (msgs[mid].state, msgs[mid].verdict, held) == ("processed", "valid", [])
    sigs = await _signatures(db, ids[1])
    assert sorted(s.verdict for s in sigs) == ["valid", "valid"]
    docs = {d.filename: d.verdict for d in await _documents(db, ids[1])}
    assert docs == {"17_UBND-VP.pdf": "valid", "16_UBND-VP.pdf": "valid"}
    assert list((Path(pipe_settings.gateway.data_dir) / "spool").iterdir()) == []


async def test_detached_p7s_signs_its_pdf(
    pipeline_factory: Any, db: Database, agencies: None, pki: Pki
) -> None:
    from tests.support.pki import sign_cms

    pdf = pdf_bytes("cv-bnv")
    p7s = sign_cms(pdf, pki.signer("agency"))
    raw = make_mail(
        "[000.00.00.G12] Công văn",
        [("05_BNV-VP.pdf", pdf, PDF), ("05_BNV-VP.pdf.p7s", p7s, "application/pkcs7-signature")],
    )
    async with pipeline_factory():
        mid = await submit(db, raw)
        msg = (await wait_for(db, [mid], {"processed", "held", "failed"}))[mid]
    assert (msg.state, msg.verdict) == ("processed", "valid")
    docs = {d.filename: d for d in await _documents(db, mid)}
    assert docs["05_BNV-VP.pdf"].verdict == "valid"  # covered by the detached signature
    assert docs["05_BNV-VP.pdf.p7s"].verdict == "valid"
    (sig,) = await _signatures(db, mid)
    assert sig.format == "cms" and sig.document_id == docs["05_BNV-VP.pdf.p7s"].id


async def test_nothing_routable_is_held_and_sender_told(
    pipeline_factory: Any, db: Database, agencies: None
) -> None:
    raw = make_mail("Gửi văn bản", [("12_TB-SNV.pdf", pdf_bytes("tb-snv"), PDF)])
    async with pipeline_factory():
        mid = await submit(db, raw)
        msg = (await wait_for(db, [mid], {"processed", "held", "failed"}))[mid]
    assert msg.state == "held"
    assert await deliveries_of(db, mid) == []
    events = await events_of(db, mid)
    held = next(e for e in events if e.kind == "held")
    assert held.detail["reasons"] == ["no_route"]
    assert held.detail["unresolved"] == ["Các phòng, đơn vị thuộc Sở"]
    assert [e.detail["notice"] for e in events if e.kind == "receipt_sent"] == ["receipt/held"]


async def test_relay_mail_without_documents_goes_to_envelope_recipients(
    pipeline_factory: Any, db: Database, agencies: None
) -> None:
    raw = make_mail("Chào", body="Thư thường.", to="vbden@moj.gov.vn")
    async with pipeline_factory():
        mid = await submit(db, raw, ["vbden@moj.gov.vn", "ai.do@example.org"])
        msg = (await wait_for(db, [mid], {"processed", "held", "failed"}))[mid]
    assert (msg.state, msg.verdict) == ("processed", "unsigned")
    assert [(d.recipient, d.agency_code) for d in await deliveries_of(db, mid)] == [
        ("ai.do@example.org", None),
        ("vbden@moj.gov.vn", "000.00.00.G09"),
    ]


async def test_malformed_input_is_a_stored_verdict_not_a_crash(
    pipeline_factory: Any, db: Database, agencies: None
) -> None:
    raw = (
        b"From: a@tayninh.gov.vn\r\nTo: vanban@gw.test.gov.vn\r\nSubject: hong\r\n"
        b'Content-Type: multipart/mixed; boundary="XYZ"\r\n\r\n'
        b"no boundary ever appears\r\n\xff\xfe\x00garbage"
    )
    async with pipeline_factory():
        mid = await submit(db, raw)
        msg = (await wait_for(db, [mid], {"processed", "held", "quarantined", "failed"}))[mid]
    assert (msg.state, msg.verdict) == ("held", "malformed")
    assert msg.error is None


async def test_smime_signature_is_stored_on_the_message(
    pipeline_factory: Any, db: Database, agencies: None, pki: Pki
) -> None:
    from tests.support.pki import make_smime_mail

    raw = make_smime_mail("Kính gửi Bộ Tư pháp.\nNội dung kiểm thử.", pki.signer("person"))
    async with pipeline_factory():
        mid = await submit(db, raw, ["vbden@moj.gov.vn"])
        msg = (await wait_for(db, [mid], {"processed", "held", "failed"}))[mid]
    assert (msg.state, msg.verdict) == ("processed", "valid")
    (sig,) = await _signatures(db, mid)
    assert (sig.format, sig.verdict, sig.document_id) == ("smime", "valid", None)
    assert sig.signer_uid == "CCCD:072099001234"


async def test_p7m_content_is_unpacked_classified_and_covered(
    pipeline_factory: Any, db: Database, agencies: None, pki: Pki
) -> None:
    from tests.support.pki import sign_cms

    p7m = sign_cms(pdf_bytes("cv-bnv"), pki.signer("agency"), detached=False)
    raw = make_mail(
        "[000.00.00.G12] Công văn", [("05_BNV-VP.pdf.p7m", p7m, "application/octet-stream")]
    )
    async with pipeline_factory():
        mid = await submit(db, raw)
        msg = (await wait_for(db, [mid], {"processed", "held", "failed"}))[mid]
    assert (msg.state, msg.verdict) == ("processed", "valid")
    outer, inner = await _documents(db, mid)
    assert (outer.filename, outer.detected_type, outer.verdict) == (
        "05_BNV-VP.pdf.p7m",
        "cms",
        "valid",
    )
    assert (inner.filename, inner.detected_type, inner.verdict) == ("05_BNV-VP.pdf", "pdf", "valid")
    assert (inner.kind, inner.number, inner.notation) == ("Công văn", "05", "BNV-VP")


async def test_edxml_to_codes_route_over_document_text(
    pipeline_factory: Any, db: Database, agencies: None
) -> None:
    from tests.support.corpus import by_key, make_edxml

    # The document's own Kính gửi says Văn phòng Chính phủ; the edXML header says Bộ Tư pháp.
    pkg = make_edxml(by_key("cv-bnv"), to_codes=("000.00.00.G09", "000.00.00.X99"))
    raw = make_mail("Văn bản điện tử", [("vanban.edxml", pkg, "application/xml")])
    async with pipeline_factory():
        mid = await submit(db, raw)
        msg = (await wait_for(db, [mid], {"processed", "held", "failed"}))[mid]
    assert msg.state == "processed"
    assert [(d.agency_code, d.recipient) for d in await deliveries_of(db, mid)] == [
        ("000.00.00.G09", "vbden@moj.gov.vn")
    ]
    routed = next(e for e in await events_of(db, mid) if e.kind == "routed")
    assert routed.detail["destinations"][0]["rule"] == "edxml"
    assert routed.detail["unresolved"] == ["000.00.00.X99"]


async def test_secrecy_mark_on_the_mail_itself_quarantines(
    pipeline_factory: Any, db: Database, agencies: None
) -> None:
    """No attachment at all: a mark in the subject, or alone on a body line, still stops it."""
    in_subject = make_mail(
        "[000.00.00.G12] MẬT - Báo cáo tình hình", [], body="Kính gửi: Bộ Tư pháp"
    )
    on_a_line = make_mail(
        "[000.00.00.G12] Báo cáo tình hình",
        [],
        body="TỐI MẬT\nKính gửi: Bộ Tư pháp\nĐề nghị khẩn trương bảo mật thông tin.",
    )
    plain = make_mail(
        "[000.00.00.G12] Báo cáo tình hình",
        [],
        body="Kính gửi: Bộ Tư pháp\nĐề nghị khẩn trương bảo mật thông tin.",
    )
    async with pipeline_factory():
        ids = [await submit(db, raw) for raw in (in_subject, on_a_line, plain)]
        done = await wait_for(db, ids, {"processed", "held", "quarantined", "failed"})
    assert [done[i].state for i in ids] == ["quarantined", "quarantined", "processed"]
    for mid, mark in zip(ids[:2], ("Mật", "Tối mật"), strict=True):
        assert await deliveries_of(db, mid) == []
        q = next(e for e in await events_of(db, mid) if e.kind == "quarantined")
        assert q.detail["reasons"] == [f"secrecy:{mark}:thư (tiêu đề/nội dung)"]
    assert len(await deliveries_of(db, ids[2])) == 1  # "bảo mật" in a sentence is no mark


def test_only_a_part_over_256_kib_is_spooled_to_a_file(pki: Pki, tmp_path: Path) -> None:
    """What the verifier is handed: a small signed part's own bytes (no file made), a big
    one's spool file (megabytes never cross a pipe)."""
    from gateway.pipeline.analyse import analyse_content, spooled

    small = sign_pdf(make_pdf("Công văn số 16/UBND-VP"), pki.signer("person"))
    body = "UY BAN NHAN DAN TINH. So: 17/UBND-VP. CONG VAN ve viec thu nghiem. " * 8
    big = sign_pdf(_big_pdf(body), pki.signer("person"))
    a = analyse_content(make_mail("Công văn", [("16.pdf", small, PDF)]), tmp_path / "one")
    assert a.docs[0].verify_path == small and not spooled(a)
    assert not (tmp_path / "one").exists()
    b = analyse_content(make_mail("Công văn", [("17.pdf", big, PDF)]), tmp_path / "two")
    assert isinstance(b.docs[0].verify_path, str) and spooled(b)
    assert Path(b.docs[0].verify_path).read_bytes() == big
