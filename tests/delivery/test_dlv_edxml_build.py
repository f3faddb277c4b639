"""Issue 15 §1: the edXML package built from stored rows, on several shapes of documents.

Pure: `build_mail` over a hand-made `PackageSource` (what `store.edxml_packages` reads), read
back with mailparse (its package reader and its classifier, as a receiving gateway would)."""

from __future__ import annotations

import datetime as dt
import email.policy
from email.message import EmailMessage

from config import Settings
from gateway.delivery.edxml_out import build_mail
from mailparse import classify, parse
from mailparse.edxml import read_package
from store.edxml_packages import AgencyName, PackageSource
from store.models import Document
from tests.support.corpus import by_key, make_edxml

H36 = AgencyName("000.00.00.H36", "UBND tỉnh Lâm Đồng", "vanban@lamdong.gov.vn")
H53 = AgencyName("000.00.00.H53", "UBND tỉnh Tây Ninh", "vanthu@tayninh.gov.vn")


def _raw(*attachments: tuple[str, str, bytes]) -> bytes:
    m = EmailMessage(policy=email.policy.SMTP)
    m["From"] = "vanthu@tayninh.gov.vn"
    m["To"] = "vanban@lamdong.gov.vn"
    m["Subject"] = "Văn bản gửi Lâm Đồng"
    m.set_content("Kính gửi.")
    for name, ctype, data in attachments:
        main, sub = ctype.split("/")
        m.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return m.as_bytes()


def _doc(i: int, part: str, **facts) -> Document:
    return Document(id=i, part_path=part, filename=f"f{i}", detected_type="pdf", size=1,
                    sha256="x", **facts)  # fmt: skip


def _source(raw: bytes, docs: list[Document], *, sender=H53, urgency=None) -> PackageSource:
    return PackageSource(
        message_id=42,
        received_at_iso="2026-03-02T09:30:00+07:00",
        mail_from="vanthu@tayninh.gov.vn",
        header_from="Văn thư <vanthu@tayninh.gov.vn>",
        subject="Văn bản gửi Lâm Đồng",
        urgency=urgency,
        raw=raw,
        documents=tuple(docs),
        sender=sender,
        destination=H36,
    )


def _package(mail: bytes):
    (att,) = [a for a in parse(mail).attachments if a.detected_type == "edxml"]
    return att, read_package(att.data)


def test_normative_document_with_year_and_full_signer(settings: Settings) -> None:
    pdf, annex = b"%PDF-1.4 nghi dinh", b"phu luc \x00\xff"
    raw = _raw(
        ("30-2020-ND-CP.pdf", "application/pdf", pdf),
        ("phuluc.bin", "application/octet-stream", annex),
    )
    parts = [a.part_path for a in parse(raw).attachments]
    docs = [
        _doc(1, parts[0], kind="Nghị định", kind_abbr="NĐ", number="30", year=2020,
             notation="NĐ-CP", place="Hà Nội", doc_date=dt.date(2020, 3, 5),
             subject="Về công tác văn thư", signer="TM. CHÍNH PHỦ, THỦ TƯỚNG, Nguyễn Văn A",
             urgency="Hỏa tốc"),
        _doc(2, parts[1]),
    ]  # fmt: skip
    document_id, mail = build_mail(_source(raw, docs), settings, "vanban@lamdong.gov.vn")
    att, pkg = _package(mail)
    assert document_id == pkg.document_id == "000.00.00.H53,2020/03/05,30/2020/NĐ-CP"
    assert (pkg.code_number, pkg.code_notation) == ("30", "2020/NĐ-CP")
    assert (pkg.signer_competence, pkg.signer_position, pkg.signer_full_name) == (
        "TM. CHÍNH PHỦ",
        "THỦ TƯỚNG",
        "Nguyễn Văn A",
    )
    assert pkg.priority == 3 and pkg.type_name == "Nghị định"
    assert [a.data for a in pkg.attachments] == [pdf, annex]
    assert not pkg.has_signature  # no [receipts] key in these settings
    # A receiving gateway's classifier reads the same facts back.
    facts = classify(att)
    assert (facts.kind, facts.number, facts.year, facts.notation) == (
        "Nghị định",
        "30",
        2020,
        "NĐ-CP",
    )
    assert facts.urgency == "Hỏa tốc" and facts.date == dt.date(2020, 3, 5)


def test_main_document_is_the_one_with_most_facts_and_a_bare_signer(settings: Settings) -> None:
    raw = _raw(("a.pdf", "application/pdf", b"a"), ("b.pdf", "application/pdf", b"b"))
    parts = [a.part_path for a in parse(raw).attachments]
    docs = [
        _doc(1, parts[0], subject="Bìa"),
        _doc(2, parts[1], kind="Công văn", number="123", notation="UBND-VP",
             subject="V/v triển khai", signer="Trần Thị B"),
    ]  # fmt: skip
    _, mail = build_mail(_source(raw, docs, urgency="Khẩn"), settings, "vanban@lamdong.gov.vn")
    _, pkg = _package(mail)
    assert (pkg.code_number, pkg.code_notation, pkg.subject) == ("123", "UBND-VP", "V/v triển khai")
    assert (pkg.signer_competence, pkg.signer_position, pkg.signer_full_name) == (
        None,
        None,
        "Trần Thị B",
    )
    assert pkg.priority == 1  # the message's urgency when the document has none
    assert pkg.promulgation_date is None
    assert pkg.document_id == "000.00.00.H53,2026/03/02,123/UBND-VP"  # received day stands in


def test_an_original_edxml_package_keeps_its_document_id(settings: Settings) -> None:
    inner = make_edxml(by_key("ct-ttg-khan"), from_code="000.00.00.G22")
    raw = _raw(("vanban.edxml", "application/xml", inner))
    _, mail = build_mail(_source(raw, [], sender=None), settings, "vanban@lamdong.gov.vn")
    _, pkg = _package(mail)
    original = read_package(inner)
    assert pkg.document_id == original.document_id
    assert pkg.from_code == "000.00.00.G22"  # no registered sender, no [gateway] agency_code
    assert [a.data for a in pkg.attachments] == [inner]


def test_the_same_source_gives_the_same_document_id(settings: Settings) -> None:
    """(The mail itself is stored on the first attempt and resent as is: see the e2e test.)"""
    raw = _raw(("a.pdf", "application/pdf", b"a"))
    src = _source(raw, [])
    assert (
        build_mail(src, settings, "x@lamdong.gov.vn")[0]
        == build_mail(src, settings, "x@lamdong.gov.vn")[0]
    )
