"""Documents per second for ``mailparse.classify`` on generated PDF and DOCX documents.

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-libreoffice", action="store_true")
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
