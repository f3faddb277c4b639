"""Text of scanned documents (image-only PDFs, JPEG/PNG/TIFF) by Tesseract and its Vietnamese model.

The result is the same positioned :data:`~mailparse.text.Rows` a PDF text layer gives, so the
Decree 30 readers of :mod:`mailparse.facts` read scans with the very rules they use on text.

Why pytesseract (a subprocess per page) and not tesserocr (libtesseract in-process): a
``tesseract`` process is stopped at its own ``timeout``, so a slow scan ends as an unread
document within the OCR budget, well before the analysis process itself is killed at
``[gateway] analyse_timeout`` (which fails the whole attempt). Each page gets what is left of the document's budget (``Limits.ocr_seconds``), so a
page that never ends costs the budget and not the worker; no GIL is held while it runs, and
nothing needs building against libtesseract. Loading the model per page costs ~0.1 s, measured
in ``bench/classify.py``. Pages are rendered by poppler's ``pdftoppm`` under the same deadline.

Only the pages that carry the facts are read: the first (header, number, date, marks, title)
and the last two (Nơi nhận, signer). Each page is deskewed (projection profile: the scans are
turned a degree or so) and cleaned of speck noise (3×3 median) before recognition."""

from __future__ import annotations

import io
import os
import subprocess
import time
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from . import doctypes
from .limits import DEFAULT_LIMITS, Limits
from .text import MIN_DOCUMENT_SIDE, Cell, Rows, page_draws_picture, pdfium_document
from .textenc import nfc

DPI = 200
LANG = "vie"
MAX_PIXELS = 80_000_000  # a 600 dpi A3 page; more is a decompression bomb, not a scan
MAX_SIDE = 3600  # longer side after scaling (~300 dpi A4): more costs time, not accuracy
MORE_PAGES = 3  # pages read beyond the first and last ones when Nơi nhận is not found
_EDGE_JUNK = "[]{}|'\"‘’“”`"
# Tesseract's model sometimes gives the Icelandic eth for Đ: Vietnamese never uses it.
_ETH = str.maketrans({"Ð": "Đ", "ð": "đ"})
# A mark standing alone, compared without tone marks: OCR drops or swaps them ("TỔI MẬT"),
# and a missed secrecy mark is the one error that must not happen.
_MARKS_BARE = {
    "TUYET MAT": "TUYỆT MẬT",
    "TOI MAT": "TỐI MẬT",
    "MAT": "MẬT",
    "HOA TOC HEN GIO": "HỎA TỐC HẸN GIỜ",
    "HOA TOC": "HỎA TỐC",
    "THUONG KHAN": "THƯỢNG KHẨN",
    "KHAN": "KHẨN",
}


class OcrError(Exception):
    """A scan could not be read; ``reason`` is stored as the document's unreadable reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ScanText:
    """What OCR read: rows for the fact readers and each cell's word confidence (0..1)."""

    rows: Rows
    cell_confidence: dict[str, float] = field(default_factory=dict)
    mean_confidence: float = 0.0
    pages: int = 0

    @property
    def chars(self) -> int:
        return sum(len(c.text) for row in self.rows for c in row)

    def confidence_of(self, value: Any) -> float:
        """Mean confidence of the cells that printed *value* (the page's mean if none match)."""
        if isinstance(value, list):
            found = [self.confidence_of(v) for v in value]
            return sum(found) / len(found) if found else self.mean_confidence
        if isinstance(value, str):
            k = doctypes.key(value)
            hits = [
                conf
                for text, conf in self.cell_confidence.items()
                if len(text) >= 2 and (k in doctypes.key(text) or doctypes.key(text) in k)
            ]
            if hits:
                return sum(hits) / len(hits)
        elif value is not None and not isinstance(value, bool):
            probe = str(getattr(value, "year", value))
            hits = [c for text, c in self.cell_confidence.items() if probe in text]
            if hits:
                return sum(hits) / len(hits)
        return self.mean_confidence


class _Clock:
    """The document's OCR budget: every subprocess gets what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise OcrError("ocr_timeout")
        return remaining


# -- pages ---------------------------------------------------------------------------------


def _pdf_stream(data: bytes) -> io.BufferedReader:
    """*data* as a file for pypdf without a copy: pypdf measures a stream that has
    `getbuffer()` through it, which makes a BytesIO copy the bytes it was sharing."""
    return io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]


def pdf_page_count(data: bytes) -> int:
    """Pages of a PDF; :class:`OcrError` ``encrypted`` when it needs a password."""
    import pypdf

    try:
        reader = pypdf.PdfReader(_pdf_stream(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise OcrError("encrypted")
        return len(reader.pages)
    except OcrError:
        raise
    except Exception as exc:
        raise OcrError(f"pdf_unreadable:{type(exc).__name__}") from None


def first_page_is_picture(data: bytes) -> bool:
    """Whether the first page draws an image: a scan, perhaps under a signing stamp's text.

    Asked of PDFium, which the text was just read with (half the time pypdf took to
    parse the file again); pypdf answers for a file PDFium cannot open."""
    with pdfium_document(data) as doc:
        if doc is not None:
            return _draws_page_picture(doc)
    return _first_page_is_picture_pypdf(data)


def _draws_page_picture(doc: Any) -> bool:
    """Whether the first page of an open PDFium document draws an image of page size."""
    try:
        if len(doc) == 0:
            return False
        page = doc[0]
    except Exception:
        return False
    try:
        return page_draws_picture(page)
    finally:
        page.close()


def _first_page_is_picture_pypdf(data: bytes) -> bool:
    import pypdf

    try:
        reader = pypdf.PdfReader(_pdf_stream(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            return False
        resources = reader.pages[0].get("/Resources")
        xobjects = resources.get_object().get("/XObject") if resources is not None else None
        if xobjects is None:
            return False  # no images on the page
        for ref in xobjects.get_object().values():
            obj = ref.get_object()
            if obj.get("/Subtype") == "/Image" and int(obj.get("/Width", 0)) >= MIN_DOCUMENT_SIDE:
                return True
        return False
    except Exception:
        return False


def pages_to_read(count: int, limit: int) -> list[int]:
    """The first page, then the last ones (where Nơi nhận and the signer are), up to *limit*."""
    wanted = [0, count - 1, count - 2]
    out: list[int] = []
    for p in wanted:
        if 0 <= p < count and p not in out and len(out) < max(1, limit):
            out.append(p)
    return sorted(out)


def render_pdf_page(data: bytes, page: int, clock: _Clock, dpi: int = DPI) -> Any:
    """One page (0-based) as a greyscale image, by ``pdftoppm`` (killed at the deadline)."""
    from PIL import Image

    try:
        proc = subprocess.run(
            [
                "pdftoppm",
                "-r",
                str(dpi),
                "-gray",
                "-f",
                str(page + 1),
                "-l",
                str(page + 1),
                "-singlefile",
                "-",
            ],
            input=data,
            capture_output=True,
            timeout=clock.left(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise OcrError("ocr_timeout") from None
    except OSError:
        raise OcrError("ocr_failed:pdftoppm_missing") from None
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode("utf-8", "replace").lower()
        raise OcrError("encrypted" if "password" in err else "ocr_failed:render")
    return Image.open(io.BytesIO(proc.stdout)).convert("L")


def open_image_pages(data: bytes, limit: int) -> list[Any]:
    """The pages of an image file (a TIFF may hold several): first and last ones, greyscale."""
    from PIL import Image, ImageOps

    try:
        im = Image.open(io.BytesIO(data))
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise OcrError("image_too_large")
        frames = getattr(im, "n_frames", 1)
        out = []
        for index in pages_to_read(frames, limit):
            im.seek(index)
            if max(im.size) > 2 * MAX_SIDE and im.format == "JPEG":
                im.draft("L", (im.size[0] // 2, im.size[1] // 2))
            frame = ImageOps.exif_transpose(im.convert("L"))
            if max(frame.size) > MAX_SIDE:
                frame.thumbnail((MAX_SIDE, MAX_SIDE))
            out.append(frame)
        return out
    except OcrError:
        raise
    except Exception as exc:  # Pillow raises many types on damaged files
        raise OcrError(f"image_unreadable:{type(exc).__name__}") from None


def is_document_image(data: bytes) -> bool:
    """Whether an image is big enough to be a page (logos and signature icons are not)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return min(im.size) >= MIN_DOCUMENT_SIDE
    except Exception:
        return True  # let reading it say why it cannot be read


# -- cleaning ------------------------------------------------------------------------------


def skew_angle(im: Any, span: float = 3.0) -> float:
    """The rotation (degrees) that makes text lines horizontal: the angle whose row profile of
    dark pixels is sharpest (projection profile). Computed on a ~800 px wide copy."""
    from PIL import Image

    factor = max(1, im.size[0] // 800)
    small = im.reduce(factor) if factor > 1 else im
    ink = small.point(lambda v: 255 if v < 150 else 0)

    def sharpness(angle: float) -> float:
        turned = ink.rotate(angle, resample=Image.Resampling.NEAREST, fillcolor=0)
        profile = list(turned.resize((1, turned.size[1]), Image.Resampling.BOX).tobytes())
        return float(sum((b - a) ** 2 for a, b in zip(profile, profile[1:], strict=False)))

    def best(candidates: list[float]) -> float:
        return max(candidates, key=sharpness)

    coarse = best([i * 0.25 for i in range(int(-span * 4), int(span * 4) + 1)])
    return best([coarse + i * 0.05 for i in range(-5, 6)])


def clean_page(im: Any) -> Any:
    """Deskewed and despeckled greyscale page."""
    from PIL import Image, ImageFilter

    angle = skew_angle(im)
    if abs(angle) >= 0.1:
        im = im.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=255)
    return im.filter(ImageFilter.MedianFilter(3))


# -- recognition ---------------------------------------------------------------------------


@dataclass
class _Line:
    text: str
    x0: int
    x1: int
    top: int
    bottom: int
    conf: float


def recognise(im: Any, clock: _Clock, dpi: int = DPI) -> tuple[list[_Line], int]:
    """Tesseract's words grouped into line pieces (split at wide gaps: two columns stay two)."""
    data = _tesseract_words(im, clock, 3, dpi)
    words: dict[tuple[int, int, int], list[tuple[str, int, int, int, int, float]]] = {}
    for i, text in enumerate(data["text"]):
        text = (text or "").strip()
        if data["level"][i] != 5 or not text:
            continue
        conf = float(data["conf"][i])
        left, top = int(data["left"][i]), int(data["top"][i])
        w, h = int(data["width"][i]), int(data["height"][i])
        key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
        words.setdefault(key, []).append((nfc(text), left, left + w, top, top + h, conf))
    lines: list[_Line] = []
    for ws in words.values():
        ws.sort(key=lambda word: word[1])
        height = median(word[4] - word[3] for word in ws) or 1
        piece = [ws[0]]
        for word in ws[1:]:
            if word[1] - piece[-1][2] > 2.2 * height:
                lines.append(_line(piece))
                piece = []
            piece.append(word)
        lines.append(_line(piece))
    return [ln for ln in lines if ln.text], im.size[0]


def _bare(text: str) -> str:
    import unicodedata

    decomposed = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


def canon_mark(text: str) -> str:
    """An upper-case cell that is an urgency or secrecy mark but for its tone marks, spelt right."""
    if not text.isupper() or len(text) > 24:
        return text
    return _MARKS_BARE.get(_bare(text).strip(" .:*()_|[]{}'\""), text)


def _line(words: list[tuple[str, int, int, int, int, float]]) -> _Line:
    text = " ".join(w[0] for w in words).translate(_ETH).strip(_EDGE_JUNK + " ")
    text = canon_mark(" ".join(text.split()))
    confs = [w[5] for w in words if w[5] >= 0]
    return _Line(
        text=" ".join(text.split()),
        x0=words[0][1],
        x1=words[-1][2],
        top=min(w[3] for w in words),
        bottom=max(w[4] for w in words),
        conf=(sum(confs) / len(confs) / 100.0) if confs else 0.0,
    )


def lines_to_rows(lines: list[_Line], width: int) -> Rows:
    """Visual rows (pieces whose middles share a line), left to right; a blank row where the
    gap is wider than a paragraph break, as a text layer's layout mode gives."""
    if not lines:
        return []
    heights = sorted(ln.bottom - ln.top for ln in lines)
    h = heights[len(heights) // 2] or 1
    ordered = sorted(lines, key=lambda ln: (ln.top + ln.bottom) / 2)
    groups: list[list[_Line]] = []
    for ln in ordered:
        mid = (ln.top + ln.bottom) / 2
        if groups:
            g = groups[-1]
            g_mid = sum((x.top + x.bottom) / 2 for x in g) / len(g)
            if abs(mid - g_mid) < 0.6 * h:
                g.append(ln)
                continue
        groups.append([ln])
    rows: Rows = []
    last_bottom: float | None = None
    for g in groups:
        top = min(x.top for x in g)
        if last_bottom is not None and top - last_bottom > 1.3 * h:
            rows.append([])
        g.sort(key=lambda x: x.x0)
        rows.append([Cell(x.text, x.x0 / width, x.x1 / width) for x in g])
        last_bottom = max(x.bottom for x in g)
    return rows


def _tesseract_words(im: Any, clock: _Clock, psm: int, dpi: int) -> dict[str, list[Any]]:
    """One ``tesseract`` process (killed when the budget runs out): its words with boxes."""
    import pytesseract

    # OpenMP threads only contend with the other workers on a small machine, and documents
    # already run in parallel; the child inherits this (pytesseract passes no env of its own).
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    try:
        return pytesseract.image_to_data(
            im,
            lang=LANG,
            config=f"--oem 1 --psm {psm} --dpi {dpi}",
            timeout=clock.left(),
            output_type=pytesseract.Output.DICT,
        )
    except RuntimeError as exc:
        if "timeout" in str(exc).lower():
            raise OcrError("ocr_timeout") from None
        raise OcrError("ocr_failed:tesseract") from None
    except pytesseract.TesseractNotFoundError:
        raise OcrError("ocr_failed:tesseract_missing") from None
    except pytesseract.TesseractError:
        raise OcrError("ocr_failed:tesseract") from None


def header_marks(page: Any, clock: _Clock, dpi: int = DPI) -> list[tuple[str, float]]:
    """Urgency and secrecy marks looked for once more in the header's left half.

    A mark is one short word in a printed box, under the number: the page's layout analysis
    can take the box for a picture and drop the word. Sparse-text recognition of that area,
    as scanned and with thin lines (the box) thinned away, finds it; a missed secrecy mark is
    the one error the gateway must not make, so this extra pass is paid on every first page."""
    from PIL import ImageFilter

    w, h = page.size
    crop = page.crop((0, int(h * 0.04), w // 2, int(h * 0.4)))
    found: dict[str, float] = {}
    for variant in (crop, crop.filter(ImageFilter.MaxFilter(3))):
        data = _tesseract_words(variant, clock, 11, dpi)
        lines: dict[tuple[int, int, int], list[tuple[str, float]]] = {}
        for i, text in enumerate(data["text"]):
            if data["level"][i] == 5 and (text or "").strip():
                key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
                lines.setdefault(key, []).append((nfc(text.strip()), float(data["conf"][i])))
        for words in lines.values():
            text = canon_mark(" ".join(" ".join(t for t, _ in words).translate(_ETH).split()))
            if doctypes.mark(text):
                conf = sum(max(c, 0.0) for _, c in words) / len(words) / 100.0
                found[text] = max(found.get(text, 0.0), conf)
    return sorted(found.items())


def _with_marks(rows: Rows, marks: list[tuple[str, float]]) -> Rows:
    """Marks found by :func:`header_marks` and not in *rows*, put under the number line."""
    have = {doctypes.mark(c.text) for row in rows for c in row}
    missing = [m for m, _ in marks if doctypes.mark(m) not in have]
    if not missing:
        return rows
    at = next(
        (
            i + 1
            for i, row in enumerate(rows[:40])
            for c in row
            if doctypes.key(c.text).startswith("số")
        ),
        0,
    )
    return rows[:at] + [[Cell(m, 0.2, 0.3)] for m in missing] + rows[at:]


@dataclass
class _Page:
    rows: Rows
    lines: list[_Line]
    marks: list[tuple[str, float]]


def _read_page(im: Any, clock: _Clock, dpi: int, first: bool) -> _Page:
    page = clean_page(im)
    lines, width = recognise(page, clock, dpi)
    rows = lines_to_rows(lines, width)
    marks: list[tuple[str, float]] = []
    if first:
        marks = header_marks(page, clock, dpi)
        rows = _with_marks(rows, marks)
    return _Page(rows, lines, marks)


def _join(pages: list[_Page]) -> ScanText:
    rows: Rows = []
    confidence: dict[str, float] = {}
    weights: list[tuple[float, int]] = []
    for page in pages:
        if rows:
            rows.append([])
        rows.extend(page.rows)
        confidence.update(page.marks)
        for ln in page.lines:
            confidence[ln.text] = min(confidence.get(ln.text, 1.0), ln.conf)
            weights.append((ln.conf, len(ln.text)))
    total = sum(n for _, n in weights)
    mean = sum(c * n for c, n in weights) / total if total else 0.0
    return ScanText(rows, confidence, round(mean, 3), len(pages))


def _read_pages(images: list[Any], clock: _Clock, dpi: int) -> ScanText:
    return _join([_read_page(im, clock, dpi, n == 0) for n, im in enumerate(images)])


def _has_noi_nhan(pages: list[_Page]) -> bool:
    return any(
        doctypes.key(c.text).startswith("nơi nhận") for p in pages for r in p.rows for c in r
    )


def read_pdf(data: bytes, limits: Limits = DEFAULT_LIMITS) -> ScanText:
    """OCR of an image-only PDF's first and last pages; :class:`OcrError` when it cannot be read.

    When those pages hold no "Nơi nhận" block (an annex after the signature), the pages
    before them are read, backwards, until one does (at most MORE_PAGES): more only when
    needed."""
    clock = _Clock(limits.ocr_seconds)
    count = pdf_page_count(data)
    if count == 0:
        raise OcrError("pdf_unreadable:no_pages")
    numbers = pages_to_read(count, limits.ocr_pages)
    pages = {p: _read_page(render_pdf_page(data, p, clock), clock, DPI, p == 0) for p in numbers}
    extra = [p for p in range(count - 1, 0, -1) if p not in pages][:MORE_PAGES]
    for p in extra:
        if _has_noi_nhan(list(pages.values())):
            break
        pages[p] = _read_page(render_pdf_page(data, p, clock), clock, DPI, False)
    return _join([pages[p] for p in sorted(pages)])


def read_image(data: bytes, limits: Limits = DEFAULT_LIMITS) -> ScanText:
    """OCR of an image attachment (each TIFF page read is one page of the document)."""
    clock = _Clock(limits.ocr_seconds)
    images = open_image_pages(data, limits.ocr_pages)
    clock.left()
    dpi = max(150, min(400, round(max(images[0].size) / 11.7))) if images else DPI  # A4 long side
    return _read_pages(images, clock, dpi)
