"""File type from the bytes, not the name."""

from __future__ import annotations

import io
import zipfile

import pytest

from mailparse.filetype import declared_mismatch, detect_type
from tests.support.corpus import by_key, docx_bytes, make_edxml, pdf_bytes
from tests.support.mails import make_mail, make_winmail


def _zip(names: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in names.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (pdf_bytes("cv-bnv"), "a.doc", "pdf"),
        (docx_bytes("cv-bnv"), "a.pdf", "docx"),
        (_zip({"xl/workbook.xml": b"<x/>"}), None, "xlsx"),
        (_zip({"ppt/presentation.xml": b"<x/>"}), None, "pptx"),
        (_zip({"mimetype": b"application/vnd.oasis.opendocument.text"}), None, "odt"),
        (_zip({"a.txt": b"x"}), "a.docx", "zip"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + "WordDocument".encode("utf-16-le"), None, "doc"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + "Workbook".encode("utf-16-le"), None, "xls"),
        (b"{\\rtf1\\ansi hello}", None, "rtf"),
        (b"\x89PNG\r\n\x1a\n\x00", None, "image"),
        (b"\xff\xd8\xff\xe0", "a.pdf", "image"),
        (make_edxml(by_key("cv-bnv")), "a.xml", "edxml"),
        (b'<?xml version="1.0"?><root/>', None, "xml"),
        (bytes.fromhex("3082010006092a864886f70d010702a0"), "a.p7s", "cms"),
        (make_mail("x", []), "a.eml", "eml"),
        (make_winmail([("a.txt", b"x")]), "winmail.dat", "tnef"),
        ("Công văn số 5".encode(), None, "text"),
        (bytes(range(256)) * 4, None, "unknown"),
    ],
)
def test_detect(data: bytes, name: str | None, expected: str) -> None:
    assert detect_type(data, name) == expected


def test_declared_mismatch() -> None:
    assert declared_mismatch("application/msword", "pdf")
    assert not declared_mismatch("application/octet-stream", "pdf")
    assert not declared_mismatch("application/pdf", "pdf")
    assert not declared_mismatch("image/jpeg", "image")


def test_pdf_with_a_damaged_header_is_still_a_pdf() -> None:
    """Its signatures must be reported malformed, not skipped as an unknown file."""
    body = pdf_bytes("qd-ubnd")
    damaged = b"#G\xf3\xbf\xbf\xb3\x0b5\n" + body[body.index(b"\n") + 1 :]
    assert detect_type(damaged, "qd.pdf") == "pdf"
    assert detect_type(damaged, "qd.bin") != "pdf"  # the name is what breaks the tie
    assert detect_type(b"1 0 obj is what I wrote\n", "notes.pdf") == "text"  # no %%EOF
