"""Mails as real clients build them: names, charsets, TNEF, forwards, S/MIME, broken encodings."""

from __future__ import annotations

import io
import zipfile

from mailparse import parse
from tests.support.corpus import by_key, pdf_bytes
from tests.support.mails import make_forward, make_mail, make_signed_shape, make_winmail

LONG_NAME = "Công văn số 05 BNV-VP hướng dẫn triển khai lưu trữ hồ sơ điện tử.pdf"


def test_outlook_rfc2231_continuations_and_windows_1258_body() -> None:
    raw = make_mail(
        "Hỏa tốc: Công văn 05/BNV-VP",
        [(LONG_NAME, pdf_bytes("cv-bnv"), "application/pdf")],
        style="outlook",
        body_charset="windows-1258",
        body="Kính gửi: Ủy ban nhân dân tỉnh Tây Ninh.",
    )
    assert b"filename*1*=" in raw  # really continued
    msg = parse(raw)
    assert not msg.malformed
    assert msg.subject == "Hỏa tốc: Công văn 05/BNV-VP"
    assert msg.body_text.strip() == "Kính gửi: Ủy ban nhân dân tỉnh Tây Ninh."  # NFC after cp1258
    (att,) = msg.attachments
    assert att.filename == LONG_NAME
    assert (att.detected_type, att.declared_type, att.part_path) == ("pdf", "application/pdf", "2")
    assert att.data == pdf_bytes("cv-bnv") and att.size == len(att.data) and len(att.sha256) == 64


def test_thunderbird_encoded_word_names_and_envelope_fields() -> None:
    msg = parse(make_mail("Quyết định 45/QĐ-UBND", [(LONG_NAME, b"%PDF-1.7\n", "application/pdf")]))
    assert msg.attachments[0].filename == LONG_NAME
    assert msg.message_id == "<test-1@snv.tayninh.gov.vn>"
    assert msg.from_addr == "vanthu@snv.tayninh.gov.vn" and msg.to_addrs == ["vanban@localhost"]
    assert msg.date is not None and msg.date.isoformat() == "2024-03-05T09:15:00+07:00"


def test_declared_type_that_lies_is_recorded() -> None:
    msg = parse(make_mail("x", [("van-ban.doc", pdf_bytes("cv-bnv"), "application/msword")]))
    att = msg.attachments[0]
    assert att.detected_type == "pdf"
    assert "declared_type_mismatch:application/msword" in att.defects


def test_winmail_dat_contents_become_children() -> None:
    tnef = make_winmail(
        [("45_QĐ-UBND.pdf", pdf_bytes("qd-ubnd")), ("ghi-chu.txt", "Ghi chú".encode())]
    )
    msg = parse(
        make_mail("Outlook", [("winmail.dat", tnef, "application/ms-tnef")], style="outlook")
    )
    (att,) = msg.attachments
    assert att.detected_type == "tnef"
    assert [(c.filename, c.detected_type, c.part_path) for c in att.children] == [
        ("45_QĐ-UBND.pdf", "pdf", "2.1"),
        ("ghi-chu.txt", "text", "2.2"),
    ]
    assert att.children[0].data == pdf_bytes("qd-ubnd")


def test_forwarded_mail_reports_the_document_inside() -> None:
    inner = make_mail("Quyết định 45", [("qd.pdf", pdf_bytes("qd-ubnd"), "application/pdf")])
    msg = parse(make_forward(inner))
    assert msg.body_text.startswith("Chuyển tiếp văn bản")
    (fwd,) = msg.attachments
    assert fwd.detected_type == "eml" and fwd.part_path == "2"
    assert [(c.filename, c.detected_type, c.part_path) for c in fwd.children] == [
        ("qd.pdf", "pdf", "2.2")
    ]
    assert [a.filename for a in msg.all_attachments()] == [fwd.filename, "qd.pdf"]


def test_zip_members_listed_and_typed() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("hồ sơ/15_CT-TTg.pdf", pdf_bytes("ct-ttg-khan"))
        zf.writestr("đọc tôi.txt", "Danh mục hồ sơ")
    msg = parse(make_mail("Hồ sơ", [("ho-so.zip", buf.getvalue(), "application/zip")]))
    (att,) = msg.attachments
    assert att.detected_type == "zip" and not att.malformed
    assert [(c.filename, c.detected_type) for c in att.children] == [
        ("15_CT-TTg.pdf", "pdf"),
        ("đọc tôi.txt", "text"),
    ]


def test_smime_signed_bytes_are_the_raw_wire_bytes() -> None:
    # Odd but legal spacing that a re-serialiser would normalise away.
    part = (
        b'Content-Type: multipart/mixed;  boundary="in"\r\n\r\n--in\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
        + "Nội dung   ký\r\n".encode()
        + b"--in\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjcK\r\n--in--\r\n"
    )
    msg = parse(make_signed_shape(part, b"\x30\x82\x01\x00fake-der"))
    assert msg.smime is not None and msg.smime.kind == "multipart/signed"
    assert msg.smime.signed_bytes == part
    assert msg.smime.signature == b"\x30\x82\x01\x00fake-der"
    assert [a.detected_type for a in msg.attachments] == ["pdf"]  # the .p7s is not a document
    assert msg.body_text.strip() == "Nội dung   ký"


def test_broken_base64_is_a_defect_not_a_crash() -> None:
    raw = make_mail("x", [("a.pdf", pdf_bytes("cv-bnv")[:300], "application/pdf")])
    raw = raw.replace(b"JVBERi0", b"JVB!!*i0", 1)
    msg = parse(raw)
    assert msg.attachments and msg.attachments[0].malformed
    assert any("Base64" in d for d in msg.attachments[0].defects)


def test_missing_closing_boundary_and_undeclared_8bit_subject() -> None:
    raw = (
        "From: a@b.vn\r\nSubject: Thông báo khẩn\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\n'
        "Nội dung\r\n--zz\r\nContent-Type: application/pdf; name=a.pdf\r\n\r\n%PDF-1.4 truncated"
    ).encode()
    msg = parse(raw)
    assert msg.subject == "Thông báo khẩn"
    assert msg.malformed and any("CloseBoundaryNotFound" in d for d in msg.defects)
    assert msg.attachments[0].detected_type == "pdf"


def test_quoted_printable_cp1258_subject_fallback() -> None:
    from tests.support.mails import encode_cp1258

    body = encode_cp1258("Kính gửi: Sở Nội vụ")
    q = "".join(
        f"={b:02X}" if b > 127 or b in b"=?_" else ("_" if b == 32 else chr(b))
        for b in encode_cp1258("Sở Nội vụ")
    )
    raw = (
        f"From: a@b.vn\r\nSubject: =?windows-1258?Q?{q}?=\r\nContent-Type: text/plain\r\n\r\n".encode()
        + body
    )
    msg = parse(raw)
    assert msg.body_text == "Kính gửi: Sở Nội vụ"
    assert "undeclared_8bit" in " ".join(msg.defects)
    assert msg.subject == "Sở Nội vụ"


def test_by_key_docs_round_trip_through_mail() -> None:
    doc = by_key("cd-ttg-hoatoc")
    msg = parse(make_mail(doc.kind, [(doc.filename("pdf"), pdf_bytes(doc.key), "application/pdf")]))
    assert msg.attachments[0].filename == "85_CĐ-TTg.pdf"


def test_opaque_pkcs7_mime_keeps_blob_and_reads_the_content() -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs7
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Văn thư")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    inner = (
        b'Content-Type: multipart/mixed; boundary="i"\r\n\r\n--i\r\nContent-Type: application/pdf; name=a.pdf\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjcK\r\n--i--\r\n"
    )
    der = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(inner)
        .add_signer(cert, key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [])
    )
    import base64

    raw = (
        b"From: a@b.vn\r\nSubject: p7m\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(der)
    )
    msg = parse(raw)
    assert msg.smime is not None and msg.smime.kind == "pkcs7-mime"
    assert msg.smime.signature == der and msg.smime.signed_bytes is None
    assert [(a.filename, a.detected_type) for a in msg.attachments] == [("a.pdf", "pdf")]


def test_a_header_read_again_gives_what_the_first_read_gave() -> None:
    """Parsed header values are shared between parts and messages (mailparse.mime caches
    them): a second parse of each shape, and a message sharing its headers with another, must
    come out exactly as the first, defects included."""
    from mailparse.mime import _parsed_header

    shapes = [
        make_mail(
            "Hỏa tốc: Công văn 05/BNV-VP",
            [(LONG_NAME, pdf_bytes("cv-bnv"), "application/pdf")],
            style="outlook",
            body_charset="windows-1258",
            body="Kính gửi: Ủy ban.",
        ),
        make_mail("Quyết định 45/QĐ-UBND", [(LONG_NAME, b"%PDF-1.7\n", "application/pdf")]),
        make_mail(
            "Outlook",
            [
                (
                    "winmail.dat",
                    make_winmail([("a.pdf", pdf_bytes("qd-ubnd"))]),
                    "application/ms-tnef",
                )
            ],
            style="outlook",
        ),
        make_forward(
            make_mail("Công văn gốc", [("cv.pdf", pdf_bytes("cv-bnv"), "application/pdf")])
        ),
        b'From: a@b.vn\r\nSubject: =?utf-8?q?C=C3=B4ng_v=C4=83n?=\r\nContent-Type: text/plain; charset="utf-8\r\n\r\nx\r\n',
        b"From: <>\r\nTo: ,,;\r\nSubject: \xc4\x90i\xe1\xbb\x81u 5\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n",
    ]
    _parsed_header.cache_clear()
    first = [parse(raw) for raw in shapes]
    assert _parsed_header.cache_info().hits > 0  # the walk reads the same headers again
    again = [parse(raw) for raw in shapes]
    assert again == first
    assert [m.defects for m in again] == [m.defects for m in first]
    assert any(m.defects for m in first)  # the shapes do carry defects
