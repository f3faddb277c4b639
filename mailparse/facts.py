"""Decree 30 facts read from a document's positioned text (see :mod:`mailparse.text`).

Each reader looks where the Decree puts the element (issuer top-left, number and date on the
line below, marks under the number, "Nơi nhận" bottom-left, signer bottom-right), so the rules
hold for PDF text layers and Word tables alike."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from . import doctypes
from .agency import find_codes
from .text import Cell, Rows, rows_to_text

NUMBER_RE = re.compile(
    r"^(?:(?:Luật|Bộ luật|Pháp lệnh|Lệnh)\s+)?Số\s*:?\s*(\d{1,6})\s*/\s*(?:(\d{4})\s*/\s*)?"
    r"([A-Za-zĐđ][\wĐđ]*(?:-[\wĐđ]+)*)",
    re.IGNORECASE,
)
DATE_RE = re.compile(
    r"(?:(?P<place>[^,;:\d]{2,60}?)\s*,\s*)?ngày\s*(?P<d>\d{1,2})\s*"
    r"(?:tháng\s*(?P<m>\d{1,2})\s*năm\s*|[/.-]\s*(?P<m2>\d{1,2})\s*[/.-]\s*)(?P<y>\d{4})",
    re.IGNORECASE,
)
COMPETENCE_RE = re.compile(r"^(TM|KT|TL|TUQ|Q)\.\s*\S")
_BODY_START = re.compile(
    r"^(Căn cứ|Kính gửi|Thực hiện|Theo |Trong |Nhằm|Để |Điều \d|Chương |Phần |Xét |I\.|1\.)", re.I
)
_FIRST_BODY_START = re.compile(r"^(Căn cứ|Kính gửi)", re.I)
_MOTTO = (
    doctypes.key("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"),
    doctypes.key("Độc lập - Tự do - Hạnh phúc"),
)
_NAME_WORD = re.compile(r"^[A-ZĐÀ-Ỹ][a-zđà-ỹ]+$")


@dataclass
class TextFacts:
    """What the text says; ``None`` where it says nothing."""

    title_kind: str | None = None
    number: str | None = None
    year: int | None = None
    notation: str | None = None
    issuer: str | None = None
    place: str | None = None
    date: dt.date | None = None
    subject: str | None = None
    competence: str | None = None
    position: str | None = None
    name: str | None = None
    urgency: str | None = None
    secrecy: str | None = None
    kinh_gui: list[str] = field(default_factory=list)
    noi_nhan: list[str] = field(default_factory=list)
    agency_codes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    cong_van_subject: bool = False


def _is_motto(text: str) -> bool:
    k = doctypes.key(text)
    return any(m in k for m in _MOTTO)


def _strip_motto(text: str) -> str:
    out = text
    for motto in ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc"):
        idx = doctypes.key(out).find(doctypes.key(motto))
        if idx >= 0:
            out = (out[:idx] + out[idx + len(motto) :]).strip()
    return out


def _clean_item(text: str) -> str:
    text = text.strip()
    if text.startswith(("-", "–", "+", "•")):
        text = text[1:].strip()
    while text and text[-1] in ";.,":
        text = text[:-1].rstrip()
    return text.removesuffix("./").strip()


def _is_name(text: str) -> bool:
    words = text.split()
    return 2 <= len(words) <= 6 and all(_NAME_WORD.match(w) for w in words)


def _is_upper(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and all(c.isupper() for c in letters)


def parse_date(d: str, m: str, y: str) -> dt.date | None:
    try:
        return dt.date(int(y), int(m), int(d))
    except ValueError:
        return None


def read(rows: Rows) -> TextFacts:
    """Read every fact the layout offers."""
    tf = TextFacts()
    flat = [(i, c) for i, row in enumerate(rows) for c in row]
    if not flat:
        return tf
    layout = any(c.col != "F" for _, c in flat)
    num_row = _number(rows, tf)
    title_row = _title(rows, tf, num_row)
    _header(rows, tf, num_row if num_row is not None else title_row, layout)
    _place_date(rows, tf, num_row)
    if tf.title_kind is None:
        _cong_van_subject(rows, tf, num_row)
    _marks(rows, tf)
    _kinh_gui(flat, tf)
    nn_row = _noi_nhan(rows, tf, layout)
    _signer(rows, tf, nn_row, layout)
    tf.agency_codes, flags = find_codes(rows_to_text(rows))
    tf.flags.extend(flags)
    return tf


def _number(rows: Rows, tf: TextFacts) -> int | None:
    for i, row in enumerate(rows[:60]):
        for cell in row:
            m = NUMBER_RE.match(cell.text)
            if m:
                tf.number, year, tf.notation = m.group(1), m.group(2), m.group(3)
                tf.year = int(year) if year else None
                return i
    return None


def _title(rows: Rows, tf: TextFacts, num_row: int | None) -> int | None:
    start = (num_row + 1) if num_row is not None else 0
    for i in range(start, min(len(rows), start + 25)):
        for cell in rows[i]:
            if not _is_upper(cell.text):
                continue
            kind = doctypes.type_by_title(cell.text)
            if kind and kind != "Công văn":
                tf.title_kind = kind
                tf.subject = _subject_after(rows, i)
                return i
    return None


def _subject_after(rows: Rows, title_row: int) -> str | None:
    parts: list[str] = []
    for row in rows[title_row + 1 : title_row + 6]:
        if not row:
            if parts:
                break
            continue
        text = " ".join(c.text for c in row)
        starter = _BODY_START if parts else _FIRST_BODY_START
        if starter.match(text) or doctypes.mark(text) or set(text) <= set("_-–. "):
            break
        parts.append(text)
        if all(c.x0 == 0.0 and c.x1 == 1.0 for c in row):
            break  # a Word paragraph is the whole subject
    return " ".join(parts) or None


def _header(rows: Rows, tf: TextFacts, end: int | None, layout: bool) -> None:
    end = end if end is not None else min(len(rows), 6)
    lines: list[str] = []
    for row in rows[:end]:
        for cell in row:
            if layout and cell.col == "R":
                continue
            text = _strip_motto(cell.text) if not layout else cell.text
            if not text or _is_motto(text) or set(text) <= set("_-–. "):
                continue
            if _is_upper(text):
                lines.append(text)
    if lines:
        tf.issuer = lines[-1]


def _place_date(rows: Rows, tf: TextFacts, num_row: int | None) -> None:
    lo = 0
    hi = (num_row + 3) if num_row is not None else min(len(rows), 12)
    for row in rows[lo:hi]:
        for cell in row:
            m = DATE_RE.search(cell.text)
            if not m:
                continue
            date = parse_date(m.group("d"), m.group("m") or m.group("m2"), m.group("y"))
            if date is None:
                continue
            tf.date = date
            place = (m.group("place") or "").strip()
            if tf.notation and tf.notation in place:
                place = place.split(tf.notation, 1)[1].strip()
            place = place.lstrip("/-–:. ")
            if place and (place[0].isupper() or place.startswith("TP")):
                tf.place = place
            return


def _cong_van_subject(rows: Rows, tf: TextFacts, num_row: int | None) -> None:
    start = num_row if num_row is not None else 0
    for i in range(start, min(len(rows), start + 8)):
        for cell in rows[i]:
            text = cell.text
            if text.startswith("V/v") or doctypes.key(text).startswith("v/v "):
                parts = [text]
                for row in rows[i + 1 : i + 4]:
                    cont = [c for c in row if c.col == cell.col and abs(c.x0 - cell.x0) < 0.3]
                    if (
                        not cont
                        or doctypes.mark(cont[0].text)
                        or cont[0].text.startswith("Kính gửi")
                    ):
                        break
                    if all(c.x0 == 0.0 and c.x1 == 1.0 for c in row):
                        break
                    parts.append(cont[0].text)
                tf.subject = " ".join(parts)
                tf.cong_van_subject = True
                return


def _marks(rows: Rows, tf: TextFacts) -> None:
    for row in rows:
        for cell in row:
            value = doctypes.mark(cell.text)
            if value is None:
                continue
            if doctypes.is_secrecy(value) and tf.secrecy is None:
                tf.secrecy = value
            elif doctypes.is_urgency(value) and tf.urgency is None:
                tf.urgency = value


def _kinh_gui(flat: list[tuple[int, Cell]], tf: TextFacts) -> None:
    for idx, (row_i, cell) in enumerate(flat):
        k = doctypes.key(cell.text)
        if not k.startswith("kính gửi"):
            continue
        rest = cell.text.split(":", 1)[1].strip() if ":" in cell.text else cell.text[8:].strip()
        if rest and not rest.startswith("-"):
            tf.kinh_gui.append(_clean_item(rest))
            return
        items = [rest] if rest else []
        last_row = row_i
        for next_row, nxt in flat[idx + 1 :]:
            if not nxt.text.startswith(("-", "–", "+")) or next_row > last_row + 1:
                break
            items.append(nxt.text)
            last_row = next_row
        tf.kinh_gui.extend(i for i in (_clean_item(x) for x in items) if i)
        return


def _skip_recipient(item: str) -> bool:
    k = doctypes.key(item)
    return k.startswith(("như trên", "như điều", "lưu")) or not k


def _noi_nhan(rows: Rows, tf: TextFacts, layout: bool) -> int | None:
    for i, row in enumerate(rows):
        for cell in row:
            if not doctypes.key(cell.text).startswith("nơi nhận"):
                continue
            col_x = cell.x0
            items: list[str] = []
            rest = cell.text.split(":", 1)[1].strip() if ":" in cell.text else ""
            if rest:
                items.append(rest)
            for nxt_row in rows[i + 1 : i + 40]:
                left = [c for c in nxt_row if not layout or c.x0 < col_x + 0.25 and c.col != "R"]
                if not left:
                    if items:
                        break
                    continue
                text = left[0].text
                if text.startswith(("-", "–", "+")):
                    items.append(text)
                elif items and not items[-1].rstrip().endswith((";", ".")):
                    items[-1] = f"{items[-1]} {text}"
                else:
                    break
            tf.noi_nhan = [c for c in (_clean_item(x) for x in items) if not _skip_recipient(c)]
            return i
    return None


def _signer(rows: Rows, tf: TextFacts, nn_row: int | None, layout: bool) -> None:
    if nn_row is not None:
        start = nn_row
    else:
        body_rows = [i for i, r in enumerate(rows) if any(c.col == "F" for c in r)]
        start = body_rows[-1] + 1 if body_rows and layout else max(0, len(rows) - 12)
    cells = [c for row in rows[start:] for c in row if (c.col == "R" if layout else True)]
    if not cells:
        return
    name_at = max((i for i, c in enumerate(cells) if _is_name(c.text)), default=None)
    if name_at is None:
        return
    tf.name = cells[name_at].text
    block: list[str] = []
    for cell in reversed(cells[:name_at]):
        if not _is_upper(cell.text) or cell.text.startswith(("-", "–")):
            break
        block.insert(0, cell.text)
        if COMPETENCE_RE.match(cell.text):
            break
    if block and COMPETENCE_RE.match(block[0]):
        tf.competence = block.pop(0)
    tf.position = " ".join(block) or None
