"""NUL characters smuggled through header encodings never reach the parse result."""

from __future__ import annotations

import unicodedata

from mailparse import parse

RAW = (
    b"From: a@b.gov.vn\r\n"
    b"To: vanban@localhost\r\n"
    b"Subject: =?utf-8?Q?C=C3=B4ng_v=C4=83n=00_s=E1=BB=91_15?=\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nN\xe1\xbb\x99i dung\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Disposition: attachment; filename*=utf-8''van%00ban.txt\r\n\r\nabc\r\n"
    b"--b--\r\n"
)


def test_nul_in_subject_and_filename_is_replaced():
    msg = parse(RAW)
    assert "\x00" not in msg.subject and msg.subject == "Công văn\ufffd số 15"
    (att,) = msg.attachments
    assert att.filename == "van\ufffdban.txt"


def test_a_body_is_composed_and_cleaned_whether_it_is_ascii_or_not():
    """An ASCII body skips normalisation (it is NFC already) but still loses its NULs; a body
    whose tone marks come as combining characters (cp1258, some PDF producers) is composed."""
    decomposed = unicodedata.normalize("NFD", "Kính gửi: Sở Nội vụ").encode()
    cases = [
        (b"Kinh gui: So Noi vu\x00 tinh Tay Ninh", "Kinh gui: So Noi vu\ufffd tinh Tay Ninh"),
        (decomposed, "Kính gửi: Sở Nội vụ"),
    ]
    for body, want in cases:
        raw = (
            b"From: a@b.gov.vn\r\nTo: vanban@localhost\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + b"\r\n"
        )
        assert parse(raw).body_text.strip() == want
