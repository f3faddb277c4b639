"""Issue 15 item 3: a Giấy mời with a meeting time reaches the agency with an iCalendar invitation.

A real `edocgw serve` (pipeline reading the PDF/DOCX, delivery, DKIM) forwards to aiosmtpd
sinks; what arrives is read back with the `icalendar` library, as a calendar client would.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import aiosmtplib
import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from icalendar import Calendar
from sqlalchemy import select

from gateway.delivery.trace import edocgw_id
from mailparse import parse as mparse
from mailparse.edxml import read_package
from signing import TrustStore, verify_smime_message
from store.agencies import AgencyIn
from store.db import Database
from store.models import Document, Event, InvitationSend
from tests.delivery.support import Got, Recorder, Sink, start_sink, wait_until
from tests.e2e.harness import (
    HOSTNAME,
    SENDER,
    TRACE_HEADERS,
    add_agency,
    deliveries,
    document_mail,
    message_documents,
    messages,
    parse,
    relay_send,
    split_trace,
)
from tests.support.layouts import LayoutDoc, generate, make_docx, make_fpdf
from tests.support.pki import Pki, make_smime_mail

VN = ZoneInfo("Asia/Ho_Chi_Minh")
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SENDER_AGENCY = AgencyIn(
    "000.00.00.H53", "Ủy ban nhân dân tỉnh Tây Ninh", "vanban@tayninh.gov.vn",
    domains=["tayninh.gov.vn"],
)  # fmt: skip
ORGANIZER = "mailto:vanban@tayninh.gov.vn"  # the directory's inbox, not the clerk who sent it
LAMDONG = "vanban@lamdong.gov.vn"
DAKLAK = "vanban@daklak.gov.vn"
GIALAI = "vanban@gialai.gov.vn"


def _docs() -> tuple[LayoutDoc, LayoutDoc, LayoutDoc]:
    docs = generate(48)
    meetings = [d for d in docs if d.meeting_start and d.meeting_place]
    other = next(d for d in docs if d.kind == "Công văn")
    return meetings[1], meetings[4], other


def _mail(subject: str, data: bytes, filename: str, ctype: str) -> bytes:
    m = EmailMessage(policy=email.policy.SMTP)
    m["From"] = f"Văn thư <{SENDER}>"
    m["To"] = LAMDONG
    m["Subject"] = subject
    m["Message-ID"] = email.utils.make_msgid(domain="tayninh.gov.vn")
    m.set_content("Kính gửi quý cơ quan giấy mời đính kèm.")
    maintype, subtype = ctype.split("/")
    m.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return m.as_bytes()


def calendars(content: bytes) -> list[Calendar]:
    return [
        Calendar.from_ical(part.get_payload(decode=True))
        for part in parse(content).walk()
        if part.get_content_type() == "text/calendar"
    ]


def attachments(content: bytes) -> dict[str, bytes]:
    return {
        part.get_filename(): part.get_payload(decode=True)
        for part in parse(content).walk()
        if part.get_filename()
    }


def check_event(cal: Calendar, doc: LayoutDoc, row: Document, attendee: str) -> str:
    """The invitation as a calendar client reads it; returns its UID."""
    assert cal["METHOD"] == "REQUEST" and cal["VERSION"] == "2.0"
    assert [tz["TZID"] for tz in cal.walk("VTIMEZONE")] == ["Asia/Ho_Chi_Minh"]
    (ev,) = cal.walk("VEVENT")
    start = ev.decoded("DTSTART")
    assert start == doc.meeting_start and start.tzinfo == VN, start
    assert ev["DTSTART"].params["TZID"] == "Asia/Ho_Chi_Minh"
    assert ev.decoded("DTEND") - start == dt.timedelta(hours=2)
    assert str(ev["LOCATION"]) == doc.meeting_place
    assert str(ev["SUMMARY"]) == row.subject  # the trích yếu as the gateway read it
    assert str(ev["ORGANIZER"]) == ORGANIZER
    assert ev["ORGANIZER"].params["CN"] == SENDER_AGENCY.name
    assert str(ev["ATTENDEE"]) == f"mailto:{attendee}"
    assert ev["ATTENDEE"].params["RSVP"] == "TRUE"
    assert ev.decoded("SEQUENCE") == 0
    ref = f"số {row.number}/{row.notation}" if row.number else f"ký hiệu {row.notation}"
    assert ref in str(ev["DESCRIPTION"]) and str(row.issuer) in str(ev["DESCRIPTION"])
    uid = str(ev["UID"])
    assert uid.endswith(f"@{HOSTNAME}")
    return uid


def dkim_key(tmp_path: Path) -> tuple[Path, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


async def delivered_events(db: Database, message_id: int) -> list[dict]:
    async with db.transaction() as s:
        rows = await s.scalars(
            select(Event.detail).where(Event.message_id == message_id, Event.kind == "delivered")
        )
        return [dict(r) for r in rows]


async def test_giay_moi_pdf_and_docx_arrive_with_an_invitation(
    db: Database, gateway, sinks, tmp_path: Path
) -> None:
    lamdong: Sink = await sinks()
    gialai: Sink = await sinks()  # an edXML agency: the package mail, the invitation beside it
    busy = await start_sink(Recorder(script=["451 4.3.0 busy, try again later"]))
    try:
        for code, name, rcpt, sink, fmt in (
            ("000.00.00.H36", "Ủy ban nhân dân tỉnh Lâm Đồng", LAMDONG, lamdong, "mime"),
            ("000.00.00.H33", "Ủy ban nhân dân tỉnh Đắk Lắk", DAKLAK, busy, "mime"),
            ("000.00.00.H21", "Ủy ban nhân dân tỉnh Gia Lai", GIALAI, gialai, "edxml"),
        ):
            await add_agency(
                db,
                AgencyIn(
                    code, name, rcpt, domains=[rcpt.split("@")[1]], route=sink.route, tls="none",
                    format=fmt,
                ),
            )  # fmt: skip
        await add_agency(db, SENDER_AGENCY)
        key_file, record = dkim_key(tmp_path)
        gw = await gateway(dkim={"domain": HOSTNAME, "selector": "s1", "key_file": str(key_file)})
        first, second, other = _docs()
        pdf, docx, cv = make_fpdf(first), make_docx(second), make_fpdf(other)
        sent = {
            "pdf": _mail("Giấy mời họp", pdf, "giay-moi.pdf", "application/pdf"),
            "docx": _mail("Giấy mời dự họp", docx, "giay-moi.docx", DOCX),
            "other": document_mail("Công văn 12/UBND-VP", cv, "cong-van.pdf", to=LAMDONG),
        }
        await aiosmtplib.send(
            sent["pdf"], sender=SENDER, recipients=[LAMDONG, GIALAI], hostname="127.0.0.1",
            port=gw.relay_port, start_tls=False, timeout=30,
        )  # fmt: skip
        await relay_send(gw.relay_port, sent["docx"], rcpt=DAKLAK)
        await relay_send(gw.relay_port, sent["other"], rcpt=LAMDONG)

        async def arrived() -> bool:
            return [len(x.recorder.accepted()) for x in (lamdong, busy, gialai)] == [2, 1, 1]

        await wait_until(arrived, 120, "three messages accepted")
        stored = {m.raw: m for m in await messages(db)}
        got = {g.header("X-Edocgw-Id"): g for g in lamdong.got + busy.recorder.accepted()}
        mids = {k: stored[raw].id for k, raw in sent.items()}

        async def recorded() -> bool:
            states = [d.state for mid in mids.values() for d in await deliveries(db, mid)]
            return states == ["delivered"] * (len(mids) + 1)

        await wait_until(recorded, 30, "deliveries recorded")
        dns = lambda _name, timeout=5: record  # noqa: E731
        uids = {}
        for kind, doc, data, filename, rcpt in (
            ("pdf", first, pdf, "giay-moi.pdf", LAMDONG),
            ("docx", second, docx, "giay-moi.docx", DAKLAK),
        ):
            g = got[edocgw_id(mids[kind], HOSTNAME)]
            (row,) = await message_documents(db, mids[kind])
            assert (row.kind, row.meeting_start) == ("Giấy mời", doc.meeting_start)
            (cal,) = calendars(g.content)
            uids[kind] = check_event(cal, doc, row, rcpt)
            # the meeting papers arrive byte for byte, the headers the receiver dedupes on too
            assert attachments(g.content)[filename] == data
            assert "invite.ics" in attachments(g.content)
            msg = g.message
            assert msg.get_content_type() == "multipart/mixed"
            assert msg["Message-ID"] == parse(sent[kind])["Message-ID"]
            assert msg["Subject"] == parse(sent[kind])["Subject"]
            assert all(msg[h] for h in ("DKIM-Signature", *TRACE_HEADERS))
            assert dkim.verify(g.content, dnsfunc=dns), f"{kind}: the gateway's DKIM signature"
            events = await delivered_events(db, mids[kind])
            (event,) = [e for e in events if e["recipient"] == rcpt]
            assert event["invitation"] == uids[kind]
        assert uids["pdf"] != uids["docx"]

        # the edXML agency: its package carries the papers byte for byte; the invitation,
        # with the same UID as every other destination's, is a part beside it
        (g,) = gialai.got
        assert g.header("X-Edocgw-Id") == edocgw_id(mids["pdf"], HOSTNAME)
        packages = [a for a in mparse(g.content).all_attachments() if a.detected_type == "edxml"]
        pkg = read_package(packages[0].data)
        assert [(a.name, a.data) for a in pkg.attachments] == [("giay-moi.pdf", pdf)]
        (cal,) = calendars(g.content)
        (row,) = await message_documents(db, mids["pdf"])
        assert check_event(cal, first, row, GIALAI) == uids["pdf"]
        assert dkim.verify(g.content, dnsfunc=dns)

        # the deferred attempt carried the same invitation: same UID, same calendar bytes
        deferred, accepted = busy.got
        assert deferred.reply.startswith("451") and accepted.reply.startswith("250")
        assert [c.to_ical() for c in calendars(deferred.content)] == [
            c.to_ical() for c in calendars(accepted.content)
        ]

        # a document that is not a Giấy mời goes exactly as before: no calendar part
        g = got[edocgw_id(mids["other"], HOSTNAME)]
        assert calendars(g.content) == []
        assert split_trace(g.content, sent["other"]) == ["DKIM-Signature", *TRACE_HEADERS]
        assert "invitation" not in (await delivered_events(db, mids["other"]))[0]
    finally:
        await busy.close()


def _signed_giay_moi(pki: Pki, pdf: bytes) -> bytes:
    inner = EmailMessage(policy=email.policy.SMTP)
    inner.set_content("Kính gửi: Ủy ban nhân dân tỉnh Lâm Đồng.\nTrân trọng kính mời./.\n")
    inner.add_attachment(pdf, maintype="application", subtype="pdf", filename="giay-moi.pdf")
    return make_smime_mail("", pki.signer("agency"), subject="Giấy mời họp", inner=inner.as_bytes())


def _is_invitation(g: Got) -> bool:
    return bool(calendars(g.content))


async def test_smime_signed_giay_moi_goes_untouched_and_the_invitation_follows_once(
    db: Database, gateway, pki: Pki, trust: TrustStore
) -> None:
    # the original is accepted, the invitation deferred once: the retry sends only the invitation
    agency = await start_sink(Recorder(script=["250 2.0.0 original queued", "451 4.3.0 busy"]))
    try:
        await add_agency(
            db,
            AgencyIn(
                "000.00.00.H36", "Ủy ban nhân dân tỉnh Lâm Đồng", LAMDONG,
                domains=["lamdong.gov.vn"], route=agency.route, tls="none",
            ),
        )  # fmt: skip
        await add_agency(db, SENDER_AGENCY)
        gw = await gateway()
        doc = _docs()[0]
        pdf = make_fpdf(doc)
        raw = _signed_giay_moi(pki, pdf)
        assert verify_smime_message(raw, trust)[0].verdict == "valid"
        await relay_send(gw.relay_port, raw, rcpt=LAMDONG)

        async def arrived() -> bool:
            return len(agency.recorder.accepted()) == 2

        await wait_until(arrived, 120, "the original and the invitation accepted")
        (msg,) = await messages(db)

        async def recorded() -> bool:
            return [d.state for d in await deliveries(db, msg.id)] == ["delivered"]

        await wait_until(recorded, 30, "the delivery recorded")
        originals = [g for g in agency.got if not _is_invitation(g)]
        invitations = [g for g in agency.got if _is_invitation(g)]
        assert len(originals) == 1, "the original is sent once, also when the invitation is retried"
        assert [g.reply[:3] for g in invitations] == ["451", "250"]
        (original,) = originals
        # the signed original arrives byte for byte behind the trace headers, and verifies
        assert split_trace(original.content, raw) == TRACE_HEADERS
        (report,) = verify_smime_message(original.content, trust)
        assert report.verdict == "valid", report.detail
        xid = edocgw_id(msg.id, HOSTNAME)
        assert original.header("X-Edocgw-Id") == xid
        (row,) = await message_documents(db, msg.id)
        uids = set()
        for g in invitations:
            m = g.message
            assert m["X-Edocgw-Id"] == xid, "the second message carries the same X-Edocgw-Id"
            assert m["Subject"] == "Lịch họp: " + row.subject
            assert m["In-Reply-To"] == "<test-smime@tayninh.gov.vn>"
            assert m["Reply-To"] == "vanban@tayninh.gov.vn"  # the organizer
            assert m["From"].addresses[0].display_name == SENDER_AGENCY.name
            assert m.get_content_type() == "multipart/alternative"
            (cal,) = calendars(g.content)
            uids.add(check_event(cal, doc, row, LAMDONG))
        assert len(uids) == 1, "the retry carries the same UID"
        async with db.transaction() as s:
            assert await s.scalar(select(InvitationSend.delivery_id)) is not None
        (event,) = await delivered_events(db, msg.id)
        assert event["invitation"] == uids.pop()
    finally:
        await agency.close()


async def test_a_refused_invitation_does_not_bounce_the_accepted_document(
    db: Database, gateway, pki: Pki
) -> None:
    agency = await start_sink(Recorder(script=["250 2.0.0 queued", "550 5.7.1 no calendars"]))
    try:
        await add_agency(
            db,
            AgencyIn(
                "000.00.00.H36", "Ủy ban nhân dân tỉnh Lâm Đồng", LAMDONG,
                domains=["lamdong.gov.vn"], route=agency.route, tls="none",
            ),
        )  # fmt: skip
        gw = await gateway()
        raw = _signed_giay_moi(pki, make_fpdf(_docs()[0]))
        await relay_send(gw.relay_port, raw, rcpt=LAMDONG)

        async def recorded() -> bool:
            stored = await messages(db)
            return bool(stored) and [d.state for d in await deliveries(db, stored[0].id)] == [
                "delivered"
            ]

        await wait_until(recorded, 120, "the delivery recorded")
        (msg,) = await messages(db)
        (d,) = await deliveries(db, msg.id)
        assert [g.reply[:3] for g in agency.got] == ["250", "550"], "each sent once"
        assert "invitation was refused: " in (d.last_reply or "")
        (event,) = await delivered_events(db, msg.id)
        assert event["invitation_refused"].startswith("127.0.0.1")
    finally:
        await agency.close()


async def test_an_invitation_still_deferred_at_expiry_does_not_bounce_the_document(
    db: Database, gateway, pki: Pki
) -> None:
    # the original is accepted; the invitation meets 451 until the delivery's lifetime ends
    agency = await start_sink(Recorder(script=["250 2.0.0 queued"], default="451 4.3.0 busy"))
    try:
        await add_agency(
            db,
            AgencyIn(
                "000.00.00.H36", "Ủy ban nhân dân tỉnh Lâm Đồng", LAMDONG,
                domains=["lamdong.gov.vn"], route=agency.route, tls="none",
            ),
        )  # fmt: skip
        gw = await gateway(delivery={"max_age": "4s"})
        raw = _signed_giay_moi(pki, make_fpdf(_docs()[0]))
        await relay_send(gw.relay_port, raw, rcpt=LAMDONG)

        async def recorded() -> bool:
            stored = await messages(db)
            return bool(stored) and [d.state for d in await deliveries(db, stored[0].id)] == [
                "delivered"
            ]

        await wait_until(recorded, 120, "the delivery recorded")
        (msg,) = await messages(db)
        (d,) = await deliveries(db, msg.id)
        originals = [g for g in agency.got if not _is_invitation(g)]
        assert [g.reply[:3] for g in originals] == ["250"], "the original went once"
        assert len(agency.got) >= 2 and all(g.reply[:3] == "451" for g in agency.got[1:])
        assert "invitation was not accepted before it expired" in (d.last_reply or "")
        async with db.transaction() as s:
            kinds = list(await s.scalars(select(Event.kind).where(Event.message_id == msg.id)))
        assert "bounced" not in kinds
    finally:
        await agency.close()


async def test_invitations_switched_off(db: Database, gateway, sinks) -> None:
    lamdong: Sink = await sinks()
    await add_agency(
        db,
        AgencyIn(
            "000.00.00.H36", "Ủy ban nhân dân tỉnh Lâm Đồng", LAMDONG,
            domains=["lamdong.gov.vn"], route=lamdong.route, tls="none",
        ),
    )  # fmt: skip
    gw = await gateway(delivery={"meeting_invitations": False})
    doc = _docs()[0]
    raw = _mail("Giấy mời họp", make_fpdf(doc), "giay-moi.pdf", "application/pdf")
    await relay_send(gw.relay_port, raw, rcpt=LAMDONG)

    async def arrived() -> bool:
        return len(lamdong.recorder.accepted()) == 1

    await wait_until(arrived, 120, "the message accepted")
    (msg,) = await messages(db)
    (row,) = await message_documents(db, msg.id)
    assert (row.kind, row.meeting_start) == ("Giấy mời", doc.meeting_start)
    (g,) = lamdong.got
    assert calendars(g.content) == []
    assert split_trace(g.content, raw) == TRACE_HEADERS, "the original, byte for byte"
