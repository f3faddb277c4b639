"""Facts read from generated documents in several real layouts, rendered by three producers.

The documents (tests/support/layouts.py) vary organs, types, line breaks and layouts; each is
rendered to DOCX (python-docx), to PDF by LibreOffice from that DOCX, and to PDF by fpdf2. The
per-fact accuracy is printed in the terminal summary and must reach the goal of issue 12."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailparse import ClassifyContext, classify
from mailparse.containers import make_attachment
from tests.support.layouts import (
    LayoutDoc,
    generate,
    make_docx,
    make_fpdf,
    render_pdfs_with_libreoffice,
)

from .conftest import ACCURACY

DOCS = generate(48)
CORE = ("kind", "number", "notation", "date", "urgency", "secrecy")  # goal: >= 98 %
OTHER = ("issuer", "place", "subject", "recipients")  # goal: >= 95 %
MORE = (
    "parent_issuer",
    "signer",
    "signer_position",
    "signer_competence",
    "meeting_start",
    "meeting_place",
)


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """Every document in every rendering; LibreOffice converts all of them in one run."""
    docx = {d.key: make_docx(d) for d in DOCS}
    work: Path = tmp_path_factory.mktemp("layouts")
    return {
        "docx": docx,
        "pdf-libreoffice": render_pdfs_with_libreoffice(docx, work),
        "pdf-fpdf2": {d.key: make_fpdf(d) for d in DOCS},
    }


def _got(data: bytes) -> dict:
    att = make_attachment("1", None, None, data)
    return classify(att, ClassifyContext()).to_dict()


def _score(
    docs: list[LayoutDoc], files: dict[str, bytes]
) -> tuple[dict[str, list[int]], list[str]]:
    table = {fact: [0, 0] for fact in CORE + OTHER + MORE}
    misses: list[str] = []
    for doc in docs:
        got, truth = _got(files[doc.key]), doc.truth()
        for fact in table:
            table[fact][1] += 1
            if got[fact] == truth[fact]:
                table[fact][0] += 1
            else:
                misses.append(f"{doc.key} {fact}: got {got[fact]!r} want {truth[fact]!r}")
    return table, misses


def test_the_generator_covers_the_layouts() -> None:
    assert len(DOCS) >= 40
    assert len({d.kind for d in DOCS}) >= 10
    assert {d.layout for d in DOCS} == {"table", "single", "typed"}
    assert any(d.organ.parent for d in DOCS) and any(" - " in d.organ.issuer for d in DOCS)
    assert any(len(d.organ.lines) == 2 and d.organ.parent is None for d in DOCS)
    assert any(d.number is None for d in DOCS) and any(d.number_split for d in DOCS)
    assert any(d.meeting_start for d in DOCS) and any(d.date_break for d in DOCS)
    assert any(len(line) > 1 for d in DOCS for line in d.noi_nhan)
    assert len({d.organ.place for d in DOCS}) >= 8
    assert (
        min(d.date.year for d in DOCS if d.date) < 2010 < max(d.date.year for d in DOCS if d.date)
    )


@pytest.mark.parametrize("rendering", ["docx", "pdf-libreoffice", "pdf-fpdf2"])
def test_accuracy_per_fact(rendering: str, rendered: dict[str, dict[str, bytes]]) -> None:
    table, misses = _score(DOCS, rendered[rendering])
    ACCURACY[f"layouts {rendering}"] = table
    print("\n".join(misses))
    low = {
        fact: f"{right}/{total}"
        for fact, (right, total) in table.items()
        if right / total < (0.98 if fact in CORE else 0.95)
    }
    assert not low, low
