"""File type from the bytes (never trusting the name or the declared MIME type)."""

from __future__ import annotations

import io
import re
import zipfile

EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"

# MIME types a sender may reasonably declare for each detected type.
_EXPECTED_MIME: dict[str, tuple[str, ...]] = {
    "pdf": ("application/pdf", "application/x-pdf"),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",),
    "pptx": ("application/vnd.openxmlformats-officedocument.presentationml.presentation",),
    "doc": ("application/msword",),
    "xls": ("application/vnd.ms-excel",),
    "odt": ("application/vnd.oasis.opendocument.text",),
    "rtf": ("application/rtf", "text/rtf"),
    "zip": ("application/zip", "application/x-zip-compressed", "application/x-zip"),
    "edxml": ("application/xml", "text/xml", "application/edxml+xml"),
    "xml": ("application/xml", "text/xml"),
    "cms": (
        "application/pkcs7-signature",
        "application/x-pkcs7-signature",
        "application/pkcs7-mime",
        "application/x-pkcs7-mime",
    ),
    "text": ("text/plain", "text/html", "text/csv"),
    "eml": ("message/rfc822",),
    "tnef": ("application/ms-tnef", "application/vnd.ms-tnef"),
}
_GENERIC_MIME = {"application/octet-stream", "application/x-download", "application/download", ""}

_CMS_OIDS = (
    bytes.fromhex("06092a864886f70d010702"),  # signedData
    bytes.fromhex("06092a864886f70d010703"),  # envelopedData
)
_XML_ROOT = re.compile(rb"<(?!\?|!)(?:([\w.-]+):)?([\w.-]+)")
_PDF_BODY = re.compile(rb"(?:^|[\r\n])\d+ \d+ obj\b")
_EML_HEADER = re.compile(
    rb"^(?:Received|Return-Path|From|To|Subject|Date|Message-ID|MIME-Version|X-[\w-]+|Delivered-To)"
    rb":",
    re.IGNORECASE,
)


def detect_type(data: bytes, filename: str | None = None) -> str:
    """Return one of pdf, docx, xlsx, pptx, doc, xls, odt, rtf, image, zip, edxml, xml, cms,
    text, eml, tnef, unknown. The filename only breaks ties the bytes cannot settle."""
    head = data[:1024]
    name = (filename or "").lower()
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(data)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return _ole_kind(data, name)
    if head.startswith(b"{\\rtf"):
        return "rtf"
    if head.startswith(b"\x78\x9f\x3e\x22"):
        return "tnef"
    if _is_image(head):
        return "image"
    if _is_cms(head):
        return "cms"
    if b"%PDF-" in head:  # readers accept junk before the header, so do we
        return "pdf"
    if name.endswith(".pdf") and _PDF_BODY.search(head) and b"%%EOF" in data[-2048:]:
        return "pdf"  # header damaged, body a PDF: verification says `malformed`, not unsigned
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<"):
        kind = _xml_kind(data[:8192])
        if kind:
            return kind
    if _EML_HEADER.match(stripped) and _looks_like_headers(stripped):
        return "eml"
    if _is_text(head):
        return "text"
    return "unknown"


def declared_mismatch(declared: str | None, detected: str) -> bool:
    """True when a specific declared MIME type contradicts what the bytes are."""
    if not declared or declared.lower() in _GENERIC_MIME or detected == "unknown":
        return False
    declared = declared.lower()
    if detected == "image":
        return not declared.startswith("image/")
    if detected == "text":
        return not declared.startswith("text/")
    expected = _EXPECTED_MIME.get(detected, ())
    return declared not in expected


def _zip_kind(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist()[:5000])
            if "word/document.xml" in names:
                return "docx"
            if "xl/workbook.xml" in names:
                return "xlsx"
            if "ppt/presentation.xml" in names:
                return "pptx"
            if "mimetype" in names:
                info = zf.getinfo("mimetype")
                if info.file_size < 200:
                    mt = zf.read("mimetype")
                    if b"opendocument.text" in mt:
                        return "odt"
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError, RuntimeError):
        pass
    return "zip"


def _ole_kind(data: bytes, name: str) -> str:
    window = data[: 4 * 1024 * 1024]
    if "WordDocument".encode("utf-16-le") in window:
        return "doc"
    if "Workbook".encode("utf-16-le") in window or "Book".encode("utf-16-le") in window:
        return "xls"
    if name.endswith((".xls", ".xlt")):
        return "xls"
    return "doc"


def _is_image(head: bytes) -> bool:
    return head.startswith(
        (
            b"\x89PNG\r\n\x1a\n",
            b"\xff\xd8\xff",
            b"GIF87a",
            b"GIF89a",
            b"II*\x00",
            b"MM\x00*",
            b"BM",
        )
    ) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _is_cms(head: bytes) -> bool:
    if head.startswith((b"-----BEGIN PKCS7", b"-----BEGIN CMS")):
        return True
    return head[:1] == b"\x30" and any(oid in head[:32] for oid in _CMS_OIDS)


def _xml_kind(head: bytes) -> str | None:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    # Skip the prolog, comments and doctype to find the root element.
    pos = 0
    while True:
        m = _XML_ROOT.search(text, pos)
        if not m:
            return "xml" if text.startswith(b"<?xml") else None
        if text[m.start() : m.start() + 4] == b"<!--":
            end = text.find(b"-->", m.start())
            if end < 0:
                return "xml"
            pos = end + 3
            continue
        local = m.group(2)
        if local == b"edXML" and EDXML_NS.encode() in text:
            return "edxml"
        if local.lower() in (b"html",):
            return "text"
        return "xml"


def _looks_like_headers(text: bytes) -> bool:
    lines = text.split(b"\n", 30)[:30]
    header_lines = 0
    for line in lines:
        line = line.rstrip(b"\r")
        if not line:
            break
        if line[:1] in (b" ", b"\t") or re.match(rb"^[!-9;-~]+:", line):
            header_lines += 1
        else:
            return False
    return header_lines >= 2


def _is_text(head: bytes) -> bool:
    if not head:
        return False
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:  # a multibyte char cut by the window
            return True
    printable = sum(1 for b in head if b >= 0x20 or b in (9, 10, 13))
    return printable / len(head) > 0.95
