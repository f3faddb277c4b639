"""Hostile input: parse and classify never raise, never hang, and stay within memory.

These assert bounded outcomes (the limit that stopped the work, the memory it took), never
wall-clock time: a busy machine makes any time limit fail now and then. How fast hostile input
is refused is for bench/."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailparse import Limits, classify, parse
from mailparse.containers import make_attachment
from tests.support.corpus import pdf_bytes
from tests.support.mails import make_mail

SEED_MAIL = make_mail(
    "Công văn 05/BNV-VP",
    [("a.pdf", pdf_bytes("cv-bnv")[:2000], "application/pdf")],
    style="outlook",
)
SEED_PDF = pdf_bytes("ct-ttg-khan")
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _mutate(seed: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(seed)
    for pos, cut, insert in edits:
        pos %= max(1, len(out))
        out[pos : pos + cut] = insert
    return bytes(out)


EDITS = st.lists(
    st.tuples(st.integers(0, 1 << 20), st.integers(0, 64), st.binary(max_size=32)), max_size=8
)


@FAST
@given(EDITS)
def test_mutated_messages_parse_and_classify_quickly(edits: list[tuple[int, int, bytes]]) -> None:
    raw = _mutate(SEED_MAIL, edits)
    msg = parse(raw)
    for att in msg.all_attachments():
        classify(att)
    assert isinstance(msg.defects, list)


@FAST
@given(EDITS)
def test_mutated_pdfs_classify_quickly(edits: list[tuple[int, int, bytes]]) -> None:
    data = _mutate(SEED_PDF, edits)
    # A PDF whose text layer a mutation emptied is read as a scan: its OCR budget bounds it.
    facts = classify(
        make_attachment("1", "x.pdf", "application/pdf", data), limits=Limits(ocr_seconds=0.5)
    )
    assert isinstance(facts.flags, list)


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_never_raise(data: bytes) -> None:
    msg = parse(data)
    assert isinstance(msg.malformed, bool)
    classify(make_attachment("1", None, None, data))


def _bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bom.txt", b"\x00" * (40 * 1024 * 1024))  # 40 MB of zeros -> ~40 KB
    return buf.getvalue()


def test_zip_bomb_is_malformed_quickly_in_bounded_memory() -> None:
    bomb = _bomb()
    assert len(bomb) < 1024 * 1024
    tracemalloc.start()
    msg = parse(make_mail("bom", [("bom.zip", bomb, "application/zip")]))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    att = msg.attachments[0]
    assert att.malformed and any(d.startswith("zip_ratio") for d in att.defects)
    assert peak < 32 * 1024 * 1024, "the bomb was not inflated"


def test_zip_member_that_lies_about_its_size_is_cut_off() -> None:
    # A member whose header claims little but inflates past the limit is stopped while reading.
    limits = Limits(max_zip_member_bytes=1024 * 1024, max_zip_ratio=1e9)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.bin", b"\x00" * (4 * 1024 * 1024))
    data = bytearray(buf.getvalue())
    # Patch the central directory's uncompressed size down to 10 bytes.
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    msg = parse(make_mail("z", [("z.zip", bytes(data), "application/zip")]), limits)
    att = msg.attachments[0]
    assert att.malformed and att.children == []


def test_part_claiming_two_gigabytes_is_malformed_fast() -> None:
    raw = (
        b"From: a@b.vn\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: application/pdf\r\nContent-Length: 2147483648\r\n"
        b"Content-Disposition: attachment; filename=big.pdf; size=2147483648\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjcK\r\n--b--\r\n"
    )
    msg = parse(raw)
    assert msg.malformed and msg.attachments[0].malformed
    assert "size_claim:2147483648" in msg.attachments[0].defects


def test_too_many_parts_and_too_deep_nesting() -> None:
    limits = Limits()
    many = (
        b"From: a@b.vn\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        + b"".join(
            b"--b\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n" for _ in range(2000)
        )
        + b"--b--\r\n"
    )
    msg = parse(many, limits)
    assert msg.malformed and any(d.startswith("too_many_parts") for d in msg.defects)
    assert len(msg.all_attachments()) <= limits.max_parts, "work stopped at the limit"
    deep = (
        b"From: a@b.vn\r\n"
        + b"".join(
            f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n".encode()
            for i in range(60)
        )
        + b"Content-Type: text/plain\r\n\r\nx\r\n"
    )
    msg = parse(deep, limits)
    assert msg.malformed and any("nesting_too_deep" in d for d in msg.defects)
    assert msg.attachments == []


def test_oversized_message_keeps_headers_only() -> None:
    raw = make_mail("Lớn", [("a.bin", b"x" * 2048, "application/octet-stream")])
    msg = parse(raw, Limits(max_message_bytes=1024))
    assert msg.malformed and msg.subject == "Lớn" and msg.attachments == []
