"""The invitation builder (gateway/delivery/ical.py, invitations.py) on several shapes of input:
the iCalendar read back with `icalendar`, the wrapped message with the email package, the
original's bytes and attachments unchanged. The end-to-end path is in tests/e2e."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from email.message import EmailMessage

import pytest
from icalendar import Calendar

from config import Settings
from gateway.delivery.ical import (
    Meeting,
    Party,
    _boundary,
    build_calendar,
    calendar_part,
    describe,
    invitation_uid,
    is_signed_whole,
    second_message,
    wrap,
)
from gateway.delivery.invitations import build, meetings, organizer
from store.edxml_packages import AgencyName
from store.invitations import MeetingDoc, MeetingSource

VN7 = dt.timezone(dt.timedelta(hours=7))
START = dt.datetime(2024, 5, 16, 8, 30, tzinfo=VN7)
LONG_PLACE = "Phòng họp số 2, tầng 3; Trụ sở Ủy ban nhân dân tỉnh, số 36 Trần Phú, TP Đà Lạt"
LONG_SUBJECT = (
    "Dự Hội nghị trực tuyến toàn quốc về đẩy mạnh chuyển đổi số, phát triển Chính phủ số "
    "và bảo đảm an toàn thông tin mạng năm 2024"
)
MEETING = Meeting(
    START, LONG_PLACE, LONG_SUBJECT, "2", "Giấy mời", "12", "GM-UBND", dt.date(2024, 5, 10),
    "Ủy ban nhân dân tỉnh Lâm Đồng",
)  # fmt: skip
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


def _calendar(m: Meeting = MEETING, attendee: str = "vanban@tayninh.gov.vn") -> bytes:
    return build_calendar(
        m,
        uid=invitation_uid("abc@gw.test", m.part_path, "gw.test"),
        organizer=Party("vanban@lamdong.gov.vn", "Ủy ban nhân dân tỉnh Lâm Đồng"),
        attendee=Party(attendee, "Ủy ban nhân dân tỉnh Tây Ninh"),
        stamp=dt.datetime(2024, 5, 11, 1, 2, 3, tzinfo=dt.UTC),
        duration=dt.timedelta(hours=2),
        description=describe(m, "abc@gw.test"),
    )


def test_calendar_reads_back_with_vietnamese_text_and_the_meeting_time() -> None:
    for start in (START, START.astimezone(dt.UTC)):  # stored timestamptz comes back in UTC
        ics = _calendar(Meeting(**{**MEETING.__dict__, "start": start}))
        assert all(len(line) <= 75 for line in ics.split(b"\r\n")), "folded (RFC 5545 §3.1)"
        cal = Calendar.from_ical(ics)
        assert cal["METHOD"] == "REQUEST"
        (ev,) = cal.walk("VEVENT")
        assert ev.decoded("DTSTART") == START
        assert str(ev.decoded("DTSTART").tzinfo) == "Asia/Ho_Chi_Minh"
        assert ev.decoded("DTEND") == START + dt.timedelta(hours=2)
        assert str(ev["LOCATION"]) == LONG_PLACE  # commas and semicolons escaped and back
        assert str(ev["SUMMARY"]) == LONG_SUBJECT
        assert "Giấy mời số 12/GM-UBND ngày 10/05/2024" in str(ev["DESCRIPTION"])
        assert ev["ATTENDEE"].params["CN"] == "Ủy ban nhân dân tỉnh Tây Ninh"
        assert cal.walk("VTIMEZONE")[0]["TZID"] == "Asia/Ho_Chi_Minh"
    assert _calendar() == _calendar(), "the same facts, the same bytes (retries)"


def _pdf_mail(eol: str = "\r\n") -> bytes:
    m = EmailMessage(policy=email.policy.SMTP.clone(linesep=eol))
    m["From"] = "Văn thư <vanthu@lamdong.gov.vn>"
    m["Subject"] = "Giấy mời họp"
    m["Message-ID"] = "<gm-1@lamdong.gov.vn>"
    m.set_content("Kính gửi quý cơ quan.\n")
    m.add_attachment(PDF, maintype="application", subtype="pdf", filename="giấy mời.pdf")
    return m.as_bytes()


SHAPES = {
    "multipart-crlf": _pdf_mail(),
    "multipart-lf": _pdf_mail("\n"),
    "no-content-type": b"From: a@lamdong.gov.vn\nSubject: GM\n\nMoi hop 8h00.\n",
    "8bit-alternative": (
        "From: a@lamdong.gov.vn\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n"
        ' boundary="b1"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n--b1\r\n'
        "Content-Type: text/plain; charset=utf-8\r\n\r\nKính mời dự họp.\r\n--b1\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n<p>Kính mời</p>\r\n--b1--\r\n"
    ).encode(),
    "headers-only": b"From: a@lamdong.gov.vn\r\nSubject: GM\r\n",
}


def _leaves(m: email.message.Message) -> list[tuple[str, bytes | None]]:
    return [
        (p.get_content_type(), p.get_payload(decode=True)) for p in m.walk() if not p.is_multipart()
    ]


@pytest.mark.parametrize("shape", SHAPES)
def test_wrap_keeps_the_original_entity_and_adds_the_invitation(shape: str) -> None:
    raw = SHAPES[shape]
    eol = b"\n" if b"\r\n" not in raw else b"\r\n"
    ics = _calendar()
    out = wrap(raw, [calendar_part(ics, eol)], eol, seed="abc@gw.test\0a@b")
    assert out == wrap(raw, [calendar_part(ics, eol)], eol, seed="abc@gw.test\0a@b")
    assert (b"\r\n" in out) == (eol == b"\r\n"), "one line ending throughout"
    orig = email.message_from_bytes(raw, policy=email.policy.default)
    got = email.message_from_bytes(out, policy=email.policy.default)
    assert not got.defects and got.get_content_type() == "multipart/mixed"
    for h in ("From", "Subject", "Message-ID"):
        assert got[h] == orig[h]
    first, cal = got.get_payload()  # type: ignore[misc]
    assert first.get_content_type() == orig.get_content_type()
    assert _leaves(first) == _leaves(orig), "every part of the original, decoded the same"
    body = raw.split(eol + eol, 1)[1] if eol + eol in raw else b""
    assert body in out, "the original body, byte for byte"
    if shape.startswith("multipart-"):
        (att,) = [p for p in got.walk() if p.get_filename() == "giấy mời.pdf"]
        assert att.get_payload(decode=True) == PDF
    assert cal.get_content_type() == "text/calendar" and cal.get_param("method") == "REQUEST"
    assert cal.get_filename() == "invite.ics"
    assert Calendar.from_ical(cal.get_payload(decode=True)).to_ical() == ics


def test_wrap_picks_another_boundary_when_the_original_holds_it() -> None:
    taken = _boundary("seed", b"").decode()
    raw = f"From: a@b.vn\r\n\r\n--{taken}\r\nnot a boundary of ours\r\n".encode()
    out = wrap(raw, [calendar_part(_calendar(), b"\r\n")], b"\r\n", seed="seed")
    got = email.message_from_bytes(out, policy=email.policy.default)
    assert got.get_boundary() != taken and len(got.get_payload()) == 2  # type: ignore[arg-type]
    assert got.get_payload()[0].get_payload() == raw.split(b"\r\n\r\n", 1)[1].decode()  # type: ignore[index]


@pytest.mark.parametrize(
    ("head", "signed"),
    [
        (b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"\r\n', True),
        (b"Content-Type:\r\n application/pkcs7-mime; smime-type=signed-data\r\n", True),
        (b"content-type: Application/X-PKCS7-MIME; smime-type=enveloped-data\n", True),
        (b"Content-Type: multipart/mixed; boundary=x\r\n", False),
        (b"Subject: multipart/signed\r\n", False),
        (b"", False),
    ],
)
def test_signed_as_a_whole(head: bytes, signed: bool) -> None:
    raw = b"From: a@b.vn\r\n" + head + b"\r\nbody\r\n"
    assert is_signed_whole(raw) is signed


@pytest.mark.parametrize("count", [1, 2])
def test_second_message_is_an_invitation_mail(count: int) -> None:
    cals = [_calendar(), _calendar(Meeting(**{**MEETING.__dict__, "part_path": "3"}))][:count]
    kwargs = dict(
        sender="postmaster@gw.test",
        sender_name="Văn thư UBND tỉnh Lâm Đồng",
        reply_to="vanthu@lamdong.gov.vn",
        recipient="vanban@tayninh.gov.vn",
        subject=LONG_SUBJECT,
        date=dt.datetime(2024, 5, 11, tzinfo=dt.UTC),
        message_id="<invite.1.abc@gw.test>",
        in_reply_to="<gm-1@lamdong.gov.vn>",
        text="Lịch họp.\n",
        calendars=cals,
    )
    out = second_message(**kwargs)  # type: ignore[arg-type]
    assert out == second_message(**kwargs), "stable across retries"  # type: ignore[arg-type]
    got = email.message_from_bytes(out, policy=email.policy.default)
    assert not got.defects
    assert got["Subject"] == f"Lịch họp: {LONG_SUBJECT}"
    (sender,) = got["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (
        "Văn thư UBND tỉnh Lâm Đồng",
        "postmaster@gw.test",
    )
    assert got["Reply-To"] == "vanthu@lamdong.gov.vn"
    assert got["In-Reply-To"] == "<gm-1@lamdong.gov.vn>"
    parts = [p for p in got.walk() if p.get_content_type() == "text/calendar"]
    assert [Calendar.from_ical(p.get_payload(decode=True)).to_ical() for p in parts] == cals
    assert all(p.get_param("method") == "REQUEST" for p in parts)
    if count == 1:
        assert got.get_content_type() == "multipart/alternative"
    else:
        assert got.get_content_type() == "multipart/mixed"
        assert [p.get_filename() for p in parts] == ["invite.ics", "invite-2.ics"]


def _doc(path: str, start: dt.datetime, **kw: object) -> MeetingDoc:
    fields: dict = dict(
        part_path=path, meeting_start=start, meeting_place=None, subject=LONG_SUBJECT,
        kind="Giấy mời", number=None, notation=None, doc_date=None, issuer=None,
    )  # fmt: skip
    fields.update(kw)
    return MeetingDoc(**fields)


def _source(docs: list[MeetingDoc], **kw: object) -> MeetingSource:
    fields: dict = dict(
        message_id=7, received_at=dt.datetime(2024, 5, 11, tzinfo=dt.UTC),
        mail_from="vanthu@lamdong.gov.vn", header_from="Văn thư <vanthu@lamdong.gov.vn>",
        header_message_id="<gm-1@lamdong.gov.vn>", subject="Giấy mời họp",
        documents=tuple(docs), sender=None, destination=None,
    )  # fmt: skip
    fields.update(kw)
    return MeetingSource(**fields)


def test_one_invitation_per_meeting_and_the_organizer() -> None:
    pdf_docx = _source([_doc("2", START), _doc("3", START, meeting_place=LONG_PLACE, number="12")])
    (m,) = meetings(pdf_docx)  # the same Giấy mời as PDF and DOCX: one meeting
    assert (m.part_path, m.place) == ("3", LONG_PLACE)  # the copy with the most facts
    two = _source([_doc("2", START), _doc("3", START + dt.timedelta(days=1))])
    assert len(meetings(two)) == 2
    untitled = _source([_doc("2", START, subject=None)], subject="  Giấy mời\n họp  ")
    assert meetings(untitled)[0].subject == "Giấy mời họp"

    agency = AgencyName("000.00.00.H36", "UBND tỉnh Lâm Đồng", "vanban@lamdong.gov.vn")
    fb = "postmaster@gw.test"
    assert organizer(_source([], sender=agency), fb) == Party(agency.address, agency.name)
    assert organizer(_source([]), fb) == Party("vanthu@lamdong.gov.vn", "Văn thư")
    assert organizer(_source([], header_from=None), fb) == Party("vanthu@lamdong.gov.vn")
    assert organizer(_source([], header_from="", mail_from=""), fb) == Party(fb)


def test_build_chooses_the_shape(settings: Settings) -> None:
    src = _source([_doc("2", START, meeting_place=LONG_PLACE)])
    plain = build(src, settings, "vanban@tayninh.gov.vn", SHAPES["multipart-crlf"])
    assert plain.second is None and plain.first != SHAPES["multipart-crlf"]
    signed = (
        b"From: a@lamdong.gov.vn\r\nContent-Type: multipart/signed; boundary=s\r\n\r\n"
        b"--s\r\n\r\nx\r\n--s--\r\n"
    )
    apart = build(src, settings, "vanban@tayninh.gov.vn", signed)
    assert apart.first == signed and apart.second is not None  # the original untouched
    assert apart.uids == plain.uids and len(plain.uids) == 1
    other = build(src, settings, "vanthu@chinhphu.vn", signed)
    assert other.uids == apart.uids, "one meeting, one UID for every destination"
