"""Every fact of every generated document, as PDF and as DOCX, against its ground truth."""

from __future__ import annotations

import time

import pytest

from mailparse import ClassifyContext, classify
from mailparse.containers import make_attachment
from mailparse.facts import read
from mailparse.models import FACT_NAMES
from mailparse.text import pdf_rows, pdf_rows_pypdf
from tests.support.corpus import CORPUS, DocSpec, docx_bytes, pdf_bytes

from .conftest import ACCURACY

RENDER = {"pdf": pdf_bytes, "docx": docx_bytes}


def _facts(doc: DocSpec, fmt: str) -> dict:
    att = make_attachment("1", None, None, RENDER[fmt](doc.key))  # no filename: text only
    facts = classify(att, ClassifyContext())
    assert att.detected_type == fmt
    return facts.to_dict() | {"flags": facts.flags}


def test_corpus_is_big_and_varied_enough() -> None:
    assert len(CORPUS) >= 40
    assert len({d.kind for d in CORPUS}) >= 15
    assert len({d.key for d in CORPUS}) == len(CORPUS)
    assert {d.urgency for d in CORPUS} >= {
        None,
        "Khẩn",
        "Thượng khẩn",
        "Hỏa tốc",
        "Hỏa tốc hẹn giờ",
    }
    assert {d.secrecy for d in CORPUS} >= {None, "Mật", "Tối mật", "Tuyệt mật"}


@pytest.mark.parametrize("fmt", ["pdf", "docx"])
@pytest.mark.parametrize("doc", CORPUS, ids=lambda d: d.key)
def test_every_fact(doc: DocSpec, fmt: str) -> None:
    got = _facts(doc, fmt)
    truth = doc.truth()
    wrong = {k: (got[k], truth[k]) for k in truth if got[k] != truth[k]}
    assert not wrong, f"{doc.key}.{fmt}: got/want {wrong}"
    assert all(got["sources"][k] == "text" for k in got["sources"])
    for flag in doc.flags:
        assert flag in got["flags"]


@pytest.mark.parametrize("fmt", ["pdf", "docx"])
def test_accuracy_per_fact(fmt: str) -> None:
    """Accuracy over the whole corpus, printed in the terminal summary; must be perfect here."""
    table = {fact: [0, 0] for fact in FACT_NAMES}
    for doc in CORPUS:
        got, truth = _facts(doc, fmt), doc.truth()
        for fact in FACT_NAMES:
            table[fact][1] += 1
            table[fact][0] += got[fact] == truth[fact]
    ACCURACY[fmt] = table
    assert all(right == total for right, total in table.values()), table


def test_pdfium_is_as_accurate_as_pypdf_layout_on_the_corpus() -> None:
    """Why PDFium is the PDF backend: at least as accurate as pypdf's layout mode (speed is
    printed here and measured by bench/classify.py)."""
    keys = ("number", "notation", "issuer", "place", "date", "subject", "urgency", "secrecy")
    scores, times = {}, {}
    for name, extract in (("pdfium", pdf_rows), ("pypdf", pdf_rows_pypdf)):
        right = 0
        start = time.perf_counter()
        for doc in CORPUS:
            tf = read(extract(pdf_bytes(doc.key)))
            got = tf.__dict__ | {"date": tf.date.isoformat() if tf.date else None}
            right += sum(got[k] == doc.truth()[k] for k in keys)
        times[name] = time.perf_counter() - start
        scores[name] = right
    print(f"pdf backends: accuracy {scores}, seconds {times}")
    assert scores["pdfium"] == len(CORPUS) * len(keys)
    assert scores["pdfium"] >= scores["pypdf"]


def test_pdfs_read_in_several_threads_at_once() -> None:
    """The gateway analyses messages in a thread pool: PDFium is not thread-safe (two threads
    in it crashed the worker process), so threads reading PDFs together must each get what
    one thread alone reads."""
    from concurrent.futures import ThreadPoolExecutor

    docs = [pdf_bytes(doc.key) for doc in CORPUS[:4]]
    alone = [pdf_rows(d) for d in docs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(pdf_rows, docs * 250))
    assert together == alone * 250


def test_decoys_in_body_do_not_mark_a_document() -> None:
    # The bodies say "khẩn trương" and "bảo mật thông tin"; only the printed marks count.
    plain = [d for d in CORPUS if d.urgency is None and d.secrecy is None]
    assert plain
    for doc in plain[:5]:
        got = _facts(doc, "pdf")
        assert got["urgency"] is None and got["secrecy"] is None


def test_misspelt_notation_is_kept_as_printed_and_flagged() -> None:
    doc = next(d for d in CORPUS if d.notation.startswith("QD-"))
    got = _facts(doc, "pdf")
    assert got["notation"] == "QD-UBND"
    assert got["kind"] == "Quyết định" and got["kind_abbr"] == "QĐ"
    assert "notation_spelling:QD" in got["flags"]


def test_filename_and_subject_fallbacks_for_a_scan() -> None:
    # An image-only scan: the name and the mail subject are all there is.
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    att = make_attachment("2", "45_QĐ-UBND.png", "image/png", png)
    ctx = ClassifyContext(
        subject="Fwd: HỎA TỐC - Quyết định về việc thành lập Ban chỉ đạo [000.00.00.H53]"
    )
    facts = classify(att, ctx)
    assert (facts.number, facts.notation, facts.kind) == ("45", "QĐ-UBND", "Quyết định")
    assert facts.sources["number"] == "filename" and facts.sources["kind"] == "filename"
    assert facts.urgency == "Hỏa tốc" and facts.sources["urgency"] == "subject"
    assert facts.agency_codes == ["000.00.00.H53"]
    assert facts.subject == "về việc thành lập Ban chỉ đạo [000.00.00.H53]"
    assert facts.secrecy is None


def test_subject_number_when_nothing_else() -> None:
    att = make_attachment("2", "scan.jpg", "image/jpeg", b"\xff\xd8\xff" + b"\x00" * 32)
    ctx = ClassifyContext(subject="Công văn số 123/UBND-VP ngày 05/3/2024 V/v rà soát biên chế")
    facts = classify(att, ctx)
    assert (facts.kind, facts.number, facts.notation) == ("Công văn", "123", "UBND-VP")
    assert facts.date is not None and facts.date.isoformat() == "2024-03-05"
    assert facts.subject == "V/v rà soát biên chế"
    assert facts.kind_abbr is None
