"""Image-only "scans" of generated documents, as a flatbed scanner makes them from paper.

Any PDF (from :mod:`tests.support.corpus`) is rasterised by poppler's ``pdftoppm`` at about
200 dpi, turned by a fraction of a degree, speckled with dust and toner specks, JPEG-compressed
and wrapped again as a PDF with no text layer (Pillow's PDF writer: one JPEG per page). The same
pages can be had as single JPEG, PNG or TIFF attachments. Everything is seeded: a test run sees
the same scans every time."""

from __future__ import annotations

import io
import random
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

DPI = 200


@dataclass(frozen=True)
class ScanStyle:
    """How one scan is degraded."""

    angle: float = 0.0  # degrees, counter-clockwise
    speckle: float = 0.0004  # share of the page's pixels hit by a dark speck
    quality: int = 70  # JPEG quality
    dpi: int = DPI


STYLES: tuple[ScanStyle, ...] = (
    ScanStyle(angle=0.0, speckle=0.0),
    ScanStyle(angle=0.9, speckle=0.0004),
    ScanStyle(angle=-1.3, speckle=0.0006, quality=60),
    ScanStyle(angle=0.5, speckle=0.0002, quality=80),
    ScanStyle(angle=-0.7, speckle=0.0005),
    ScanStyle(angle=1.5, speckle=0.0003, quality=65),
)


def rasterise(pdf: bytes, dpi: int = DPI) -> list[Image.Image]:
    """Every page of *pdf* as a greyscale image (poppler, as a scanner driver's PDF viewer)."""
    with tempfile.TemporaryDirectory(prefix="edocgw-scan-") as tmp:
        src = Path(tmp) / "in.pdf"
        src.write_bytes(pdf)
        subprocess.run(
            ["pdftoppm", "-r", str(dpi), "-gray", "-png", str(src), str(Path(tmp) / "p")],
            check=True,
            timeout=120,
        )
        pages = sorted(Path(tmp).glob("p*.png"))
        out = []
        for page in pages:
            with Image.open(page) as im:
                out.append(im.convert("L").copy())
        return out


def degrade(page: Image.Image, style: ScanStyle, seed: int = 0) -> Image.Image:
    """Turn the page and speckle it: grey paper, dark specks, a few white drop-outs."""
    rng = random.Random(seed)
    im = page.convert("L")
    if style.angle:
        im = im.rotate(style.angle, resample=Image.Resampling.BICUBIC, fillcolor=255)
    # Paper is not white: lift the background a little, as scanners do.
    im = im.point(lambda v: min(v, 246))
    if style.speckle:
        px = im.load()
        w, h = im.size
        for _ in range(int(w * h * style.speckle)):
            x, y = rng.randrange(1, w - 2), rng.randrange(1, h - 2)
            dark = rng.randrange(0, 90)
            for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1))[: rng.choice((1, 2, 4))]:
                px[x + dx, y + dy] = dark
        for _ in range(int(w * h * style.speckle / 2)):
            x, y = rng.randrange(w), rng.randrange(h)
            px[x, y] = 240
    return im


def _jpeg(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf)


def scan_pages(pdf: bytes, style: ScanStyle = ScanStyle(), seed: int = 0) -> list[Image.Image]:
    """The degraded, JPEG-compressed pages of *pdf*."""
    return [
        _jpeg(degrade(p, style, seed + i), style.quality)
        for i, p in enumerate(rasterise(pdf, style.dpi))
    ]


def scan_pdf(pdf: bytes, style: ScanStyle = ScanStyle(), seed: int = 0) -> bytes:
    """An image-only PDF of *pdf*: what a scanner's "scan to PDF" sends."""
    pages = scan_pages(pdf, style, seed)
    buf = io.BytesIO()
    pages[0].save(buf, "PDF", save_all=True, append_images=pages[1:], resolution=float(style.dpi))
    return buf.getvalue()


def scan_image(
    pdf: bytes, fmt: str = "JPEG", style: ScanStyle = ScanStyle(), seed: int = 0, page: int = 0
) -> bytes:
    """One page of *pdf* as an image file (``JPEG``, ``PNG`` or ``TIFF``), as a phone or a
    scanner's "scan to image" attaches it."""
    im = scan_pages(pdf, style, seed)[page]
    buf = io.BytesIO()
    if fmt == "JPEG":
        im.save(buf, "JPEG", quality=style.quality, dpi=(style.dpi, style.dpi))
    elif fmt == "TIFF":
        im.save(buf, "TIFF", compression="tiff_lzw", dpi=(style.dpi, style.dpi))
    else:
        im.save(buf, fmt, dpi=(style.dpi, style.dpi))
    return buf.getvalue()
