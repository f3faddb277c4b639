"""Scans read by real Tesseract: image-only PDFs and JPEG/PNG/TIFF attachments of the generated
documents, turned and speckled as flatbed scans are; and documents that cannot be read."""

from __future__ import annotations

import dataclasses
import io
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from mailparse import ClassifyContext, DocumentFacts, Limits, classify
from mailparse.containers import make_attachment
from tests.support.corpus import CORPUS, DocSpec, make_pdf
from tests.support.scans import STYLES, ScanStyle, scan_image, scan_pdf

from .conftest import ACCURACY

CORE = ("kind", "number", "notation", "date", "urgency", "secrecy")


def _classify(data: bytes, limits: Limits | None = None) -> DocumentFacts:
    att = make_attachment("1", None, None, data)  # no filename: what the scan says, only
    return classify(att, ClassifyContext(), **({"limits": limits} if limits else {}))


def _long(doc: DocSpec, times: int) -> DocSpec:
    """The same document over several pages: Nơi nhận and the signer on the last one."""
    return dataclasses.replace(doc, key=f"{doc.key}-long", body=doc.body * times)


def _secret(doc: DocSpec, secrecy: str) -> DocSpec:
    return dataclasses.replace(doc, key=f"{doc.key}-{secrecy}", secrecy=secrecy)


# Every other document of the corpus, every secret one, and three over several pages.
SAMPLE: list[DocSpec] = [d for i, d in enumerate(CORPUS) if i % 2 == 0 or d.secrecy]
SAMPLE += [_long(CORPUS[1], 10), _long(CORPUS[5], 14), _long(CORPUS[12], 8)]


def _read_scan(i: int, doc: DocSpec) -> tuple[DocSpec, DocumentFacts]:
    return doc, _classify(scan_pdf(make_pdf(doc), STYLES[i % len(STYLES)], seed=i))


@pytest.mark.timeout(1200)
def test_scans_read_by_ocr_meet_the_floor() -> None:
    with ThreadPoolExecutor(2) as pool:  # Tesseract runs in its own processes
        results = list(pool.map(lambda a: _read_scan(*a), enumerate(SAMPLE)))
    table: dict[str, list[int]] = {f: [0, 0] for f in CORE}
    wrong: list[str] = []
    for doc, facts in results:
        got, truth = facts.to_dict(), doc.truth()
        assert facts.unreadable is None, (doc.key, facts.flags)
        for f in CORE:
            table[f][1] += 1
            if got[f] == truth[f]:
                table[f][0] += 1
            else:
                wrong.append(f"{doc.key}: {f} {got[f]!r} != {truth[f]!r}")
            if got[f] is not None:
                assert got["sources"][f] == "ocr"
        assert facts.secrecy == doc.secrecy, doc.key  # no secrecy mark is ever missed
    ACCURACY["scan"] = table
    print("\nscan accuracy: " + "  ".join(f"{f} {r}/{t}" for f, (r, t) in table.items()))
    print("\n".join(wrong))
    for f, (right, total) in table.items():
        assert right / total >= 0.9, (f, right, total)


SECRET_SHAPES = [
    (_secret(CORPUS[0], "Mật"), STYLES[1]),  # Chỉ thị with Khẩn above the mark
    (_secret(CORPUS[1], "Tối mật"), STYLES[2]),  # công văn, subject under the number
    (_secret(CORPUS[2], "Tuyệt mật"), STYLES[5]),
    (_secret(CORPUS[5], "Mật"), STYLES[4]),
    (_secret(_long(CORPUS[7], 10), "Mật"), STYLES[3]),  # several pages
    *[(d, STYLES[(i + 1) % len(STYLES)]) for i, d in enumerate(CORPUS) if d.secrecy],
]


@pytest.mark.parametrize(("doc", "style"), SECRET_SHAPES, ids=[d.key for d, _ in SECRET_SHAPES])
def test_a_secrecy_mark_on_a_scan_is_read(doc: DocSpec, style: ScanStyle) -> None:
    facts = _classify(scan_pdf(make_pdf(doc), style, seed=7))
    assert facts.secrecy == doc.secrecy
    assert facts.sources["secrecy"] == "ocr"
    assert 0.3 < facts.confidence["secrecy"] <= 1.0
    assert "secrecy_marked" in facts.flags


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF"])
def test_image_attachments_are_read(fmt: str) -> None:
    for i, doc in enumerate([CORPUS[3], _secret(CORPUS[9], "Mật")]):
        data = scan_image(make_pdf(doc), fmt, STYLES[i + 1], seed=i)
        att = make_attachment("1", None, None, data)
        assert att.detected_type == "image"
        facts = classify(att, ClassifyContext())
        truth = doc.truth()
        assert facts.unreadable is None
        for f in ("kind", "number", "notation", "secrecy"):
            assert facts.to_dict()[f] == truth[f], (fmt, doc.key, f)
        assert facts.sources["number"] == "ocr"
        assert 0.0 < facts.confidence["number"] <= 1.0


def test_ocr_confidence_follows_the_words() -> None:
    clean = _classify(scan_pdf(make_pdf(CORPUS[4]), STYLES[0]))
    assert set(clean.sources.values()) == {"ocr"}
    assert all(0.5 < c <= 1.0 for c in clean.confidence.values()), clean.confidence


def test_ocr_past_its_deadline_makes_the_document_unreadable() -> None:
    data = scan_pdf(make_pdf(_long(CORPUS[6], 10)), STYLES[1])
    facts = _classify(data, Limits(ocr_seconds=0.3))
    assert facts.unreadable == "ocr_timeout"
    assert "unreadable:ocr_timeout" in facts.flags
    assert facts.secrecy is None and facts.number is None


def test_a_blank_scan_is_unreadable_not_unmarked() -> None:
    page = Image.new("L", (1654, 2339), 250)
    buf = io.BytesIO()
    page.save(buf, "PDF", resolution=200.0)
    assert _classify(buf.getvalue()).unreadable == "no_text"


def test_an_encrypted_pdf_is_unreadable() -> None:
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(make_pdf(CORPUS[0])))
    writer = pypdf.PdfWriter()
    for page in reader.pages:
        writer.add_page(page)
    writer.encrypt(user_password="mật-khẩu", owner_password="chủ", algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    facts = _classify(buf.getvalue())
    assert facts.unreadable == "encrypted"
    assert facts.number is None


def test_damaged_and_unreadable_formats() -> None:
    # A Word file whose body cannot be parsed, and a spreadsheet (no reader for it).
    bad_docx = io.BytesIO()
    with zipfile.ZipFile(bad_docx, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w:document><w:body>")
    assert _classify(bad_docx.getvalue()).unreadable == "docx_unreadable"
    xlsx = io.BytesIO()
    with zipfile.ZipFile(xlsx, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
    assert _classify(xlsx.getvalue()).unreadable == "no_reader:xlsx"
    # A damaged JPEG that claims to be a page.
    jpeg = scan_image(make_pdf(CORPUS[0]), "JPEG")
    assert _classify(jpeg[:4000]).unreadable is not None


def test_small_pictures_are_not_documents() -> None:
    for size, fmt in (((120, 60), "PNG"), ((300, 300), "JPEG"), ((480, 200), "PNG")):
        buf = io.BytesIO()
        Image.new("RGB", size, (200, 30, 30)).save(buf, fmt)
        facts = _classify(buf.getvalue())
        assert facts.unreadable is None
        assert facts.secrecy is None and facts.sources == {}


def test_a_page_sized_photo_without_text_is_not_a_document() -> None:
    buf = io.BytesIO()
    im = Image.linear_gradient("L").resize((1200, 900))
    im.save(buf, "JPEG")
    facts = _classify(buf.getvalue())
    assert facts.unreadable is None
    assert "image_without_text" in facts.flags


def _with_stamp(scan: bytes) -> bytes:
    """The scan with a signing tool's text stamp on page 1, as signed scans arrive."""
    import pypdf
    from fpdf import FPDF

    from tests.support.corpus import FONT_DIR

    stamp = FPDF(format="A4")
    stamp.add_font("DejaVu", "", f"{FONT_DIR}/DejaVuSans.ttf")
    stamp.add_page()
    stamp.set_font("DejaVu", "", 8)
    stamp.set_xy(120, 250)
    stamp.multi_cell(
        80, 4, "Ký bởi: Sở Nội vụ tỉnh Tây Ninh\nEmail: snv@tayninh.gov.vn\n"
        "Thời gian ký: 14.08.2024 09:15:22 +07:00"
    )  # fmt: skip
    over = pypdf.PdfReader(io.BytesIO(bytes(stamp.output()))).pages[0]
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(scan)))
    writer.pages[0].merge_page(over)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_a_signed_scan_with_a_stamp_text_layer_is_still_read() -> None:
    doc = _secret(CORPUS[5], "Mật")
    data = _with_stamp(scan_pdf(make_pdf(doc), STYLES[3], seed=2))
    facts = _classify(data)
    truth = doc.truth()
    for f in ("kind", "number", "notation", "date", "secrecy"):
        assert facts.to_dict()[f] == truth[f], f
        assert facts.sources[f] == "ocr"


def test_the_text_pass_sees_a_scanned_page_one_as_the_file_check_does() -> None:
    """The text step notes whether page 1 is a picture while it has the page loaded; the
    scan step takes that instead of opening the file again. Both say the same."""
    from mailparse.ocr import first_page_is_picture
    from mailparse.text import PdfProbe, pdf_rows

    scan = scan_pdf(make_pdf(CORPUS[5]), STYLES[3], seed=2)
    for data, picture in ((scan, True), (_with_stamp(scan), True), (make_pdf(CORPUS[5]), False)):
        probe = PdfProbe()
        pdf_rows(data, probe=probe)
        assert probe.first_page_picture is picture
        assert first_page_is_picture(data) is picture


def _with_annex(pdf: bytes, pages: int) -> bytes:
    """*pdf* followed by annex pages (tables of figures), so Nơi nhận is not on the last pages."""
    import pypdf
    from fpdf import FPDF

    from tests.support.corpus import FONT_DIR

    annex = FPDF(format="A4")
    annex.add_font("DejaVu", "", f"{FONT_DIR}/DejaVuSans.ttf")
    for i in range(pages):
        annex.add_page()
        annex.set_font("DejaVu", "", 12)
        annex.multi_cell(170, 8, f"PHỤ LỤC {i + 1}\n" + "Số liệu tổng hợp của các đơn vị.\n" * 12)
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf)))
    writer.append(pypdf.PdfReader(io.BytesIO(bytes(annex.output()))))
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_a_page_before_the_last_ones_is_read_when_noi_nhan_is_missing() -> None:
    import pypdf

    doc = _long(CORPUS[1], 10)
    pdf = _with_annex(make_pdf(doc), 3)
    count = len(pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert count >= 5  # the signature page is neither the first nor one of the last two
    facts = _classify(scan_pdf(pdf, STYLES[1], seed=4))
    assert facts.number == doc.number and facts.notation == doc.notation
    found = set(facts.recipients)
    assert [r for r in doc.noi_nhan if not r.startswith("Như ")] and all(
        r in found for r in doc.noi_nhan if not r.startswith("Như ")
    ), facts.recipients
    assert facts.sources["recipients"] == "ocr"
