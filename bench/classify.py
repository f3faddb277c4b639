"""Documents per second for ``mailparse.classify`` on generated PDF and DOCX documents,
and on one-page and five-page scans (image-only PDFs read by Tesseract), with CPU seconds
(this process and its tesseract/pdftoppm children) per scanned page.

Sets: the hand-written corpus (fpdf2 PDF, python-docx DOCX), the layouts corpus
(tests/support/layouts.py) as DOCX, as PDF drawn by fpdf2 and as PDF converted by LibreOffice
(skipped with ``--no-libreoffice``: the conversion takes about a minute), and a 40-page PDF
(only the pages that carry facts are read).
Bounded: at most ``--rounds`` passes over each set and ``--seconds`` per set.
Run: ``python bench/classify.py`` (from the repository root)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mailparse import ClassifyContext, classify  # noqa: E402
from mailparse.containers import make_attachment  # noqa: E402
from tests.support.corpus import CORPUS, docx_bytes, pdf_bytes  # noqa: E402
from tests.support.layouts import (  # noqa: E402
    generate,
    make_docx,
    make_fpdf,
    render_pdfs_with_libreoffice,
)


def long_pdf(pages: int) -> bytes:
    """A letter with a long annex: the facts are on the first and last pages."""
    from fpdf import FPDF

    first = make_fpdf(generate(1)[0])
    pdf = FPDF(format="A4")
    pdf.add_font("DejaVu", "", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    pdf.set_font("DejaVu", "", 11)
    for i in range(pages - 1):
        pdf.add_page()
        for _ in range(40):
            pdf.multi_cell(170, 6, f"Phụ lục trang {i + 1}: nội dung chi tiết của kế hoạch. " * 2)
    import pypdf

    out = pypdf.PdfWriter()
    out.append(pypdf.PdfReader(__import__("io").BytesIO(bytes(pdf.output()))))
    out.append(pypdf.PdfReader(__import__("io").BytesIO(first)))
    buf = __import__("io").BytesIO()
    out.write(buf)
    return buf.getvalue()


def bench(name: str, docs: list[bytes], rounds: int, seconds: float) -> tuple[int, float]:
    ctx = ClassifyContext()
    done = 0
    start = time.perf_counter()
    for _ in range(rounds):
        for data in docs:
            classify(make_attachment("1", None, None, data), ctx)
            done += 1
        if time.perf_counter() - start > seconds:
            break
    return done, time.perf_counter() - start


# -- scans ---------------------------------------------------------------------------------


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (tesseract, pdftoppm)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def scan_sets(count: int) -> dict[str, tuple[list[bytes], list[int]]]:
    """*count* one-page and *count* five-page scans (turned, speckled): {name: (docs, pages)}."""
    import dataclasses
    import io

    import pypdf

    from tests.support.corpus import make_pdf
    from tests.support.scans import STYLES, scan_pdf

    one = [
        scan_pdf(pdf_bytes(d.key), STYLES[i % len(STYLES)], i) for i, d in enumerate(CORPUS[:count])
    ]
    five: list[bytes] = []
    five_pages: list[int] = []
    for i, d in enumerate(CORPUS[:count]):
        times = 2
        while True:  # lengthen the body until the document runs to five pages
            pdf = make_pdf(dataclasses.replace(d, body=d.body * times))
            pages = len(pypdf.PdfReader(io.BytesIO(pdf)).pages)
            if pages >= 5 or times > 60:
                break
            times += 2
        five_pages.append(pages)
        five.append(scan_pdf(pdf, STYLES[(i + 1) % len(STYLES)], i))
    return {"scan-1p": (one, [1] * len(one)), "scan-5p": (five, five_pages)}


def bench_scans(count: int) -> None:
    """Scans are classified one after another (Tesseract single-threaded, OMP_THREAD_LIMIT=1):
    documents/s is per core; CPU is per page of the document and per page OCR read."""
    from mailparse.ocr import pages_to_read

    print(f"scans: generating {count} one-page and {count} five-page scans …", file=sys.stderr)
    ctx = ClassifyContext()
    for name, (docs, page_counts) in scan_sets(count).items():
        pages = sum(page_counts) / len(page_counts)
        read = sum(len(pages_to_read(n, 3)) for n in page_counts) / len(page_counts)
        cpu0, start = _cpu(), time.perf_counter()
        for data in docs:
            facts = classify(make_attachment("1", None, None, data), ctx)
            assert facts.unreadable is None, facts.flags
        elapsed, cpu = time.perf_counter() - start, _cpu() - cpu0
        print(
            f"{name:7} {len(docs) / elapsed:6.2f} documents/s  CPU {cpu / len(docs):.2f} s/document"
            f" = {cpu / len(docs) / pages:.2f} s per page of the document,"
            f" {cpu / len(docs) / read:.2f} s per page read ({read:g} of {pages:g})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-libreoffice", action="store_true")
    parser.add_argument("--scans", type=int, default=6, help="scans of each shape (0: none)")
    args = parser.parse_args()
    layouts = generate(48)
    print(f"corpus: {len(CORPUS)} + {len(layouts)} documents; generating …", file=sys.stderr)
    sets = {
        "pdf corpus": [pdf_bytes(d.key) for d in CORPUS],
        "docx corpus": [docx_bytes(d.key) for d in CORPUS],
        "pdf layouts fpdf2": [make_fpdf(d) for d in layouts],
        "docx layouts": [make_docx(d) for d in layouts],
    }
    if not args.no_libreoffice:
        with tempfile.TemporaryDirectory() as tmp:
            docx = {d.key: data for d, data in zip(layouts, sets["docx layouts"], strict=True)}
            sets["pdf layouts LibreOffice"] = list(
                render_pdfs_with_libreoffice(docx, Path(tmp)).values()
            )
    sets["pdf 40 pages"] = [long_pdf(40)]
    for name, docs in sets.items():
        avg = sum(map(len, docs)) / len(docs) / 1024
        classify(make_attachment("1", None, None, docs[0]))  # warm imports
        done, elapsed = bench(name, docs, args.rounds, args.seconds)
        print(
            f"{name:24} {done / elapsed:8.1f} documents/s  ({done} docs in {elapsed:.2f} s, avg {avg:.0f} KB, 1 core)"
        )
    if args.scans:
        bench_scans(args.scans)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
