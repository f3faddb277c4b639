"""Text of a document as rows of positioned cells, so two-column blocks stay apart.

Decree 30 layouts put the issuer and the motto, the number and the date, the "Nơi nhận" list and
the signer side by side; reading them as plain lines interleaves the columns. Every extractor
here returns :class:`Cell` rows with horizontal positions normalised to 0..1 of the page."""

from __future__ import annotations

import contextlib
import io
import re
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lxml import etree

from .limits import DEFAULT_LIMITS, Limits
from .textenc import decode_bytes, nfc

_GAP = re.compile(r" {4,}")
# PDFium is not thread-safe: two threads reading PDFs at once crashed the process (SIGSEGV)
# when analysis ran in the gateway's thread pool. One document at a time per process.
_PDFIUM = threading.Lock()
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


@dataclass(frozen=True)
class Cell:
    """A run of text on one visual line, with its horizontal extent (0 = left edge)."""

    text: str
    x0: float
    x1: float
    # True when this line continues the paragraph of the line above it (a Word manual break):
    # a Word paragraph is otherwise one whole element (a subject, a recipient).
    wrapped: bool = False

    @property
    def col(self) -> str:
        """``L`` left column, ``R`` right column, ``F`` spanning the page."""
        if self.x0 < 0.35 and self.x1 > 0.65:
            return "F"
        return "L" if (self.x0 + self.x1) / 2 < 0.5 else "R"


Rows = list[list[Cell]]
MIN_DOCUMENT_SIDE = 500  # pixels: smaller images are logos and icons, not pages


@dataclass
class PdfProbe:
    """What reading a PDF's text saw on the way, for a later step that would otherwise open
    the file and load the page again (a signed scan's stamp text is short, so the scan
    check asks whether page 1 is a picture)."""

    first_page_picture: bool | None = None  # None: PDFium did not load page 1


class ExtractError(Exception):
    """The document's text could not be read."""


def rows_from_layout_text(text: str) -> Rows:
    """Split fixed-width layout text (as from ``pypdf`` layout mode) into positioned cells."""
    lines = [nfc(line.rstrip()) for line in text.splitlines()]
    width = max((len(line) for line in lines), default=1) or 1
    width = max(width, 60)
    rows: Rows = []
    for line in lines:
        cells: list[Cell] = []
        pos = 0
        for part in _GAP.split(line):
            start = line.find(part, pos) if part else pos
            if part.strip():
                lead = len(part) - len(part.lstrip())
                text_part = " ".join(part.split())
                cells.append(Cell(text_part, (start + lead) / width, (start + len(part)) / width))
            pos = start + len(part)
        rows.append(cells)
    return rows


def rows_from_plain_text(text: str) -> Rows:
    """Plain text: each non-empty line is one page-wide cell (blank lines kept as empty rows)."""
    return [
        [Cell(" ".join(line.split()), 0.0, 1.0)] if line.strip() else []
        for line in nfc(text).splitlines()
    ]


def fact_pages(count: int, limit: int) -> list[int]:
    """The pages that carry Decree 30 facts: the first (header, marks, Kính gửi, meeting lines)
    and the last two (Nơi nhận, signer); all of them for short documents. Reading only these
    keeps a 40-page annex as cheap as a one-page letter."""
    wanted = [0, count - 2, count - 1] if count > 3 else list(range(count))
    return sorted({i for i in wanted if 0 <= i < count})[: max(1, limit)]


def _pdfium_page_rows(page: object) -> Rows:
    """One page as rows of cells: pdfium's text rectangles (one per run of text on a line) are
    grouped into visual lines by vertical overlap, and runs on a line are merged unless a
    column gap separates them; a blank row marks a paragraph gap."""
    textpage = page.get_textpage()  # type: ignore[attr-defined]
    try:
        width, _height = page.get_size()  # type: ignore[attr-defined]
        width = width or 1.0
        runs: list[tuple[float, float, float, float, str]] = []
        for i in range(textpage.count_rects()):
            left, bottom, right, top = textpage.get_rect(i)
            raw = textpage.get_text_bounded(left, bottom, right, top).replace("\x02", "-")
            # A stacked diacritic of the line above or below ("Ộ") can reach into the box and
            # come back after a line break: the run is the longest piece.
            raw = max(raw.split("\r\n"), key=len) if "\r\n" in raw else raw
            text = nfc(" ".join(raw.split()))
            if text:
                runs.append((left, bottom, right, top, text))
    finally:
        textpage.close()
    runs.sort(key=lambda r: (-(r[1] + r[3]) / 2, r[0]))
    lines: list[list[tuple[float, float, float, float, str]]] = []
    for run in runs:
        mid = (run[1] + run[3]) / 2
        if lines:
            first = lines[-1][0]
            if first[1] <= mid <= first[3] or run[1] <= (first[1] + first[3]) / 2 <= run[3]:
                lines[-1].append(run)
                continue
        lines.append([run])
    rows: Rows = []
    prev_bottom: float | None = None
    heights = sorted(r[3] - r[1] for r in runs)
    typical = heights[len(heights) // 2] if heights else 10.0
    # Boxes are tight around the glyphs ("nạn" is shorter than "Dự"), so the gap between two
    # lines of one paragraph varies by a few points; a paragraph gap is the usual gap between
    # lines plus at least half a line.
    gaps = sorted(
        min(r[1] for r in a) - max(r[3] for r in b)
        for a, b in zip(lines, lines[1:], strict=False)
        if min(r[1] for r in a) - max(r[3] for r in b) > 0
    )
    usual = gaps[len(gaps) // 2] if gaps else 0.2 * typical
    for line in lines:
        line.sort(key=lambda r: r[0])
        height = max(max(r[3] - r[1] for r in line), typical)
        top = max(r[3] for r in line)
        if prev_bottom is not None and prev_bottom - top > usual + 0.55 * typical:
            rows.append([])
        prev_bottom = min(r[1] for r in line)
        cells: list[Cell] = []
        x0, x1, text = line[0][0], line[0][2], line[0][4]
        for run in line[1:]:
            if run[0] - x1 < 0.8 * height:  # same line of one column: a font change
                x1, text = max(x1, run[2]), f"{text} {run[4]}"
            else:
                cells.append(Cell(text, x0 / width, x1 / width))
                x0, x1, text = run[0], run[2], run[4]
        cells.append(Cell(text, x0 / width, x1 / width))
        rows.append(cells)
    return rows


def pdf_rows(data: bytes, limits: Limits = DEFAULT_LIMITS, probe: PdfProbe | None = None) -> Rows:
    """PDF text layer with positions, via pypdfium2 (PDFium, Chrome's PDF engine).

    Chosen over pypdf's layout mode and pdfminer.six: it gives each run of text with its box,
    so the two columns of a Decree 30 header come apart by position rather than by character
    counting (pypdf glued the place-date line to a subject sharing its row), it is several
    times faster (native code), and it opens damaged files the others refuse. pypdf stays as
    the fallback for the few files PDFium cannot open."""
    with pdfium_document(data) as doc:
        if doc is not None:
            return _pdfium_rows(doc, limits, probe)
    return pdf_rows_pypdf(data, limits)


def page_draws_picture(page: Any) -> bool:
    """Whether a loaded PDFium page draws an image of page size (a scan)."""
    import pypdfium2.raw as pdfium_c

    try:
        images = page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=3)
        return any(obj.get_px_size()[0] >= MIN_DOCUMENT_SIDE for obj in images)
    except Exception:
        return False


@contextlib.contextmanager
def pdfium_document(data: bytes) -> Iterator[Any | None]:
    """*data* opened by PDFium, with `_PDFIUM` held until it is closed again; None when
    PDFium cannot open it (the caller falls back to pypdf)."""
    with _PDFIUM:
        try:
            import pypdfium2 as pdfium

            doc = pdfium.PdfDocument(data)
        except Exception:
            doc = None
        try:
            yield doc
        finally:
            if doc is not None:
                doc.close()


def _pdfium_rows(doc: Any, limits: Limits, probe: PdfProbe | None = None) -> Rows:
    """The rows of an open PDFium document (from `pdfium_document`)."""
    try:
        rows: Rows = []
        for index in fact_pages(len(doc), limits.max_pdf_pages):  # type: ignore[arg-type]
            page = doc[index]  # type: ignore[index]
            try:
                if index == 0 and probe is not None:
                    probe.first_page_picture = page_draws_picture(page)
                rows.extend(_pdfium_page_rows(page))
            finally:
                page.close()
            rows.append([])
            if sum(len(c.text) for r in rows for c in r) > limits.max_text_chars:
                break
        return rows
    except Exception as exc:
        raise ExtractError(f"pdf_text_unreadable:{type(exc).__name__}") from None


def pdf_rows_pypdf(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Rows:
    """PDF text via pypdf's layout mode (fixed-width text cut at wide gaps): the fallback."""
    import pypdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            reader.decrypt("")
        pages = reader.pages
        rows: Rows = []
        for index in fact_pages(len(pages), limits.max_pdf_pages):
            text = pages[index].extract_text(extraction_mode="layout")
            rows.extend(rows_from_layout_text(text))
            rows.append([])
            if sum(len(c.text) for r in rows for c in r) > limits.max_text_chars:
                break
        return rows
    except Exception as exc:  # pypdf raises many types on damaged files
        raise ExtractError(f"pdf_text_unreadable:{type(exc).__name__}") from None


def pdf_rows_pdfminer(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Rows:
    """The same with pdfminer.six, kept for the accuracy/speed comparison in the tests."""
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTTextBoxHorizontal, LTTextLineHorizontal

    try:
        rows: Rows = []
        for page in extract_pages(
            io.BytesIO(data), laparams=LAParams(), maxpages=limits.max_pdf_pages
        ):
            width = page.width or 1.0
            lines: list[tuple[float, Cell]] = []
            for box in page:
                if not isinstance(box, LTTextBoxHorizontal):
                    continue
                for line in box:
                    if isinstance(line, LTTextLineHorizontal) and line.get_text().strip():
                        text = nfc(" ".join(line.get_text().split()))
                        lines.append((line.y1, Cell(text, line.x0 / width, line.x1 / width)))
            lines.sort(key=lambda item: (-round(item[0] / 3), item[1].x0))
            current: list[Cell] = []
            last_y: float | None = None
            for y, cell in lines:
                if last_y is not None and abs(y - last_y) > 3:
                    rows.append(sorted(current, key=lambda c: c.x0))
                    if last_y - y > 14:
                        rows.append([])
                    current = []
                current.append(cell)
                last_y = y
            if current:
                rows.append(sorted(current, key=lambda c: c.x0))
            rows.append([])
        return rows
    except Exception as exc:
        raise ExtractError(f"pdf_text_unreadable:{type(exc).__name__}") from None


def _para_lines(p: etree._Element, keep_tabs: bool = False) -> list[str]:
    """A paragraph's text, one string per printed line: a manual break (``w:br``, Shift+Enter)
    ends a line, as in "ỦY BAN NHÂN DÂN<br/>TỈNH TIỀN GIANG" typed in one header cell. With
    ``keep_tabs`` a tab stays a tab (typed two-column headers), else it is a space."""
    lines: list[list[str]] = [[]]
    for node in p.iter(_W + "t", _W + "tab", _W + "br", _W + "cr"):
        if node.tag == _W + "t":
            lines[-1].append(node.text or "")
        elif node.tag == _W + "tab":
            parent = node.getparent()
            if parent is None or parent.tag != _W + "tabs":  # not a tab-stop definition
                lines[-1].append("\t" if keep_tabs else " ")
        elif node.get(_W + "type") in (None, "textWrapping"):
            lines.append([])
    out = []
    for parts in lines:
        text = "".join(parts)
        if keep_tabs:
            text = "\t".join(" ".join(seg.split()) for seg in text.split("\t"))
        else:
            text = " ".join(text.split())
        if text.strip():
            out.append(nfc(text))
    return out


_NUMBERING = re.compile(r"^([\dIVXivxa-zđ]{1,4}[.)]|[-–+•*])$")


def _tab_cells(line: str, wrapped: bool) -> list[Cell]:
    """A typed line with tabs as cells: "ỦY BAN NHÂN DÂN<tab><tab>CỘNG HÒA …" is a left and
    a right cell, "<tab><tab>Hà Nội, ngày …" a right one; a numbered item ("1.<tab>Thời gian")
    and a long body line with a tab stay one page-wide cell."""
    segs = [s.strip() for s in line.split("\t")]
    parts = [s for s in segs if s]
    plain = " ".join(parts)
    if not parts:
        return []
    if len(parts) == 1:
        lead = len(segs) - len(line.lstrip("\t").split("\t"))
        if lead and len(plain) <= 70:
            return [Cell(plain, 0.55, 0.98, wrapped)]
        return [Cell(plain, 0.0, 1.0, wrapped)]
    if len(parts) <= 3 and all(len(p) <= 70 for p in parts) and not _NUMBERING.match(parts[0]):
        return [
            Cell(parts[0], 0.02, 0.45, wrapped),
            Cell(" ".join(parts[1:]), 0.55, 0.98, wrapped),
        ]
    return [Cell(plain, 0.0, 1.0, wrapped)]


def _para_text(p: etree._Element) -> str:
    return " ".join(_para_lines(p))


def _cell_lines(tc: etree._Element) -> list[str]:
    """A table cell's lines in order, nested tables flattened (headers are sometimes built as a
    table inside a cell)."""
    out: list[str] = []
    for p in tc.iter(_W + "p"):
        out.extend(_para_lines(p) or [""])
    while out and not out[-1]:
        out.pop()
    return out


def _block_items(parent: etree._Element) -> list[etree._Element]:
    """Paragraphs and tables of the body in order, looking through content controls."""
    out: list[etree._Element] = []
    for el in parent:
        if el.tag in (_W + "p", _W + "tbl"):
            out.append(el)
        elif el.tag in (_W + "sdt", _W + "sdtContent", _W + "customXml"):
            out.extend(_block_items(el))
    return out


def _table_rows(tbl: etree._Element) -> Rows:
    """A table row's cells side by side, each cell's lines going down; cell widths from the
    grid when it is given (header tables are often 40/60, not halves)."""
    grid = [int(g.get(_W + "w") or 0) for g in tbl.iter(_W + "gridCol")]
    total = sum(grid) or 0
    rows: Rows = []
    for tr in (el for el in tbl if el.tag == _W + "tr"):
        tcs = [tc for tc in tr if tc.tag == _W + "tc"]
        if not tcs:
            continue
        spans = []
        for tc in tcs:
            span = tc.find(f"{_W}tcPr/{_W}gridSpan")
            spans.append(int(span.get(_W + "val") or 1) if span is not None else 1)
        bounds: list[tuple[float, float]] = []
        at = 0
        for span in spans:
            if total and at + span <= len(grid):
                x0, x1 = sum(grid[:at]) / total, sum(grid[: at + span]) / total
            else:
                x0, x1 = at / sum(spans), (at + span) / sum(spans)
            bounds.append((x0, x1))
            at += span
        columns = [_cell_lines(tc) for tc in tcs]
        for i in range(max((len(c) for c in columns), default=0)):
            row = []
            for (x0, x1), col in zip(bounds, columns, strict=True):
                if i < len(col) and col[i]:
                    wide = x0 < 0.05 and x1 > 0.95
                    row.append(Cell(col[i], 0.0 if wide else x0 + 0.02, 1.0 if wide else x1 - 0.02))
            rows.append(row)
        rows.append([])
    return rows


def docx_rows(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Rows:
    """DOCX body in order: paragraphs page-wide, table rows with each cell's lines side by side."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            info = zf.getinfo("word/document.xml")
            if info.file_size > 64 * 1024 * 1024:
                raise ExtractError("docx_too_large")
            xml = zf.read(info)
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
        )
        root = etree.fromstring(xml, parser)
    except ExtractError:
        raise
    except Exception as exc:
        raise ExtractError(f"docx_unreadable:{type(exc).__name__}") from None
    body = root.find(_W + "body")
    rows: Rows = []
    if body is None:
        return rows
    for el in _block_items(body):
        if el.tag == _W + "p":
            lines = _para_lines(el, keep_tabs=True)
            rows.extend(_tab_cells(t, k > 0) for k, t in enumerate(lines))
            if not lines:
                rows.append([])
        else:
            rows.extend(_table_rows(el))
        if sum(len(c.text) for r in rows for c in r) > limits.max_text_chars:
            break
    return rows


def extract_rows(
    data: bytes,
    detected_type: str,
    limits: Limits = DEFAULT_LIMITS,
    probe: PdfProbe | None = None,
) -> Rows | None:
    """Rows for the document types that carry text; None for others (images, archives, …)."""
    if detected_type == "pdf":
        return pdf_rows(data, limits, probe)
    if detected_type == "docx":
        return docx_rows(data, limits)
    if detected_type in ("doc", "rtf", "odt"):
        from . import office  # Word 97, RTF and ODT readers (office imports this module)

        return {"doc": office.doc_rows, "rtf": office.rtf_rows, "odt": office.odt_rows}[
            detected_type
        ](data, limits)
    if detected_type == "text":
        text, _ = decode_bytes(data[: limits.max_text_chars * 4])
        if "<" in text[:200] and re.search(r"<(html|body|p|div)\b", text[:2000], re.I):
            text = re.sub(r"<[^>]{0,2000}>", "\n", text)
        return rows_from_plain_text(text)
    return None


def rows_to_text(rows: Rows) -> str:
    """Rows back to text, cells separated by a tab (for display and regex fallbacks)."""
    return "\n".join("\t".join(c.text for c in row) for row in rows)
