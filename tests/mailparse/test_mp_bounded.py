"""Hostile shapes cost what the limits allow, not what the input asks (issue 16 items 1, 11):
the parser stops making MIME parts past `max_parts`, email's header parser and the fact
patterns see a bounded prefix of a huge header, and a header whose bytes are not UTF-8 is
named among the defects. Outcomes, not times: `bench/hostile.py` prints the times."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from mailparse import ClassifyContext, Limits, message_facts, parse
from mailparse.models import MAX_SUBJECT_CHARS
from tests.support.cli import edocgw

HEAD = b"From: a@example.test\r\nTo: vanban@example.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"


def flat(n: int) -> bytes:
    """n empty parts in one multipart."""
    return (
        HEAD
        + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        + b"--b\r\n\r\n" * n
        + b"--b--\r\n"
    )


def with_files(n: int) -> bytes:
    """n small attachments with headers and bodies (what a real flood would carry)."""
    part = (
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="x.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n"
    )
    return HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + part * n + b"--b--\r\n"


def nested(n: int) -> bytes:
    """Parts spread over many small multiparts inside one."""
    inner = (
        b"Content-Type: multipart/mixed; boundary=i\r\n\r\n"
        + b"--i\r\n\r\nx\r\n" * 10
        + b"--i--\r\n"
    )
    return (
        HEAD
        + b"Content-Type: multipart/mixed; boundary=o\r\n\r\n"
        + (b"--o\r\n" + inner) * (n // 11)
        + b"--o--\r\n"
    )


def in_attached_message(n: int) -> bytes:
    """The flood inside a forwarded message (message/rfc822)."""
    return (
        HEAD
        + b"Content-Type: multipart/mixed; boundary=out\r\n\r\n"
        + b"--out\r\nContent-Type: text/plain\r\n\r\nxem thu dinh kem\r\n"
        + b"--out\r\nContent-Type: message/rfc822\r\n\r\n"
        + flat(n)
        + b"\r\n--out--\r\n"
    )


def in_eml_file(n: int) -> bytes:
    """The flood in an .eml attachment (parsed again when the container is opened)."""
    eml = base64.encodebytes(flat(n))
    return (
        HEAD
        + b"Content-Type: multipart/mixed; boundary=out\r\n\r\n"
        + b"--out\r\nContent-Type: application/octet-stream\r\n"
        + b'Content-Disposition: attachment; filename="fw.eml"\r\n'
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + eml
        + b"\r\n--out--\r\n"
    )


@pytest.mark.parametrize("shape", [flat, with_files, nested, in_attached_message, in_eml_file])
@pytest.mark.parametrize("n", [2_000, 100_000])
def test_parser_stops_at_the_part_limit(shape, n: int) -> None:
    r = parse(shape(n))
    assert r.malformed
    assert "too_many_parts:>500" in r.defects
    assert r.parts_parsed <= 500  # the parser made no more parts than the limit
    assert r.subject == "parts"  # the headers are still read


def test_400k_empty_parts_is_bounded_by_the_limit() -> None:
    r = parse(flat(400_000))
    assert r.malformed and r.parts_parsed == 500
    assert len(r.attachments) <= 500


@pytest.mark.parametrize("limit", [5, 50, 1000])
def test_the_configured_limit_is_the_bound(limit: int) -> None:
    r = parse(flat(5_000), Limits(max_parts=limit))
    assert r.parts_parsed == limit
    assert f"too_many_parts:>{limit}" in r.defects and r.malformed


@pytest.mark.parametrize("n", [1, 10, 499])
def test_messages_within_the_limit_are_whole(n: int) -> None:
    r = parse(with_files(n))
    assert not r.malformed, r.defects
    assert r.parts_parsed == n + 1  # the multipart and its n parts
    assert len(r.attachments) == n
    assert all(a.data == b"\x00\x01\x02\x03" for a in r.attachments)


def test_the_limit_counts_the_same_as_before() -> None:
    """A multipart of 499 parts is 500 parts (allowed); of 500 it is 501 (refused)."""
    assert not parse(flat(499)).malformed
    r = parse(flat(500))
    assert r.malformed and "too_many_parts:>500" in r.defects


def _mail(subject: str | bytes, extra: bytes = b"") -> bytes:
    s = subject.encode() if isinstance(subject, str) else subject
    return (
        b"From: a@example.test\r\nTo: vanban@example.test\r\nSubject: "
        + s
        + b"\r\n"
        + extra
        + (b"Content-Type: text/plain; charset=utf-8\r\n\r\nN\xe1\xbb\x99i dung.\r\n")
    )


@pytest.mark.parametrize("size", [64 * 1024, 1 << 20])
def test_a_huge_subject_is_read_only_in_part(size: int) -> None:
    unit = "Công văn số 15/UBND-VP ngày 04/12/2026 KHẨN [000.00.00.H53] V/v "
    text = (unit * (size // len(unit) + 1))[:size]
    r = parse(_mail(text))
    assert "header_too_long:Subject" in r.defects
    assert 0 < len(r.subject) <= Limits().max_header_chars
    assert r.subject.startswith("Công văn số 15/UBND-VP")
    # The patterns see a few KB of it, and still find what the subject starts with.
    ctx = ClassifyContext(subject=r.subject, body_text=r.body_text)
    assert len(ctx.subject) == MAX_SUBJECT_CHARS
    facts = message_facts(ctx)
    assert facts.number == "15" and facts.agency_codes == ["000.00.00.H53"]


def test_huge_address_headers_are_read_only_in_part() -> None:
    many = ", ".join(f"nguoi{i}@example.test" for i in range(60_000))
    r = parse(_mail("ok", f"Cc: {many}\r\n".encode()))
    assert "header_too_long:Cc" in r.defects
    assert "vanban@example.test" in r.to_addrs
    assert 0 < len(r.to_addrs) < 2000


def test_context_keeps_an_ordinary_subject_whole() -> None:
    s = "Công văn số 15/UBND-VP về việc triển khai kế hoạch năm 2027 " * 20
    assert ClassifyContext(subject=s).subject == s  # about 1,200 characters: untouched
    r = parse(_mail(s))
    assert not [d for d in r.defects if d.startswith("header_too_long")]


@pytest.mark.parametrize(
    ("raw_subject", "expected"),
    [
        (b"C\xf4ng v\xe3n s\xf4 15", True),  # windows-1258/latin-1 bytes, undeclared
        (b"\xff\xfe\xfd", True),
        ("Công văn số 15".encode(), False),  # UTF-8 (RFC 6532): fine
        (b"=?utf-8?b?" + base64.b64encode(b"C\xf4ng v\xe3n") + b"?=", True),  # a lying encoded word
        (b"=?utf-8?q?C=C3=B4ng_v=C4=83n?=", False),
        (b"=?windows-1258?q?C=F4ng?=", False),  # declared charset: decodes fine
        ("Công văn \ufffd đã thay".encode(), False),  # a replacement character written on purpose
    ],
)
def test_a_subject_that_is_not_utf8_is_a_defect(raw_subject: bytes, expected: bool) -> None:
    r = parse(_mail(raw_subject))
    assert ("header_invalid_utf8:Subject" in r.defects) is expected, r.defects
    assert r.subject  # still shown, as well as it can be


def test_any_header_that_is_not_utf8_is_named_once() -> None:
    extra = (
        b"X-Mailer: Outlook \xe9\xe8\r\nFrom: \xc0nh <anh@example.test>\r\nX-Mailer: again \xe9\r\n"
    )
    r = parse(b"X-Note: ok\r\n" + extra + b"Subject: ok\r\n\r\nbody\r\n")
    assert [d for d in r.defects if d.startswith("header_invalid_utf8")] == [
        "header_invalid_utf8:X-Mailer",
        "header_invalid_utf8:From",
    ]
    assert r.from_addr == "anh@example.test"
    assert not r.malformed  # a defect to show, not a reason to refuse


def test_edocgw_check_lists_the_header_defect(tmp_path: Path) -> None:
    f = tmp_path / "latin1.eml"
    f.write_bytes(_mail(b"C\xf4ng v\xe3n s\xf4 15"))
    r = edocgw("check", "--json", str(f))
    assert r.code == 0, r.err
    (report,) = json.loads(r.out)["files"]
    assert "header_invalid_utf8:Subject" in report["defects"]


def test_marks_are_read_beside_a_long_body_line_which_is_none() -> None:
    """Each body line is asked whether it is a mark; a line longer than any mark is not one,
    even when it starts with the words of one (and is not normalised whole to find out)."""
    long_line = "Nội dung công văn " + "x" * 50_000
    body = f"MẬT\nHỎA TỐC HẸN GIỜ: 15 giờ 00 ngày 10/12/2026\n{long_line}\n"
    facts = message_facts(ClassifyContext(subject="Công văn", body_text=body))
    assert (facts.secrecy, facts.urgency) == ("Mật", "Hỏa tốc hẹn giờ")
    paragraph = "Hỏa tốc hẹn giờ " + "là độ khẩn của văn bản cần chuyển ngay " * 10
    facts = message_facts(ClassifyContext(subject="Công văn", body_text=paragraph + "\n"))
    assert (facts.secrecy, facts.urgency) == (None, None)
