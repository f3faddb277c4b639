"""Decree 30 facts read from a document's positioned text (see :mod:`mailparse.text`).

Each reader looks where the Decree puts the element (issuer top-left, number and date on the
line below, marks under the number, "Nơi nhận" bottom-left, signer bottom-right) and follows
its own column down the page, so lines of the other column interleaved by position (a PDF) or
by table row (a Word file) do not break a wrapped issuer, date, subject or recipient."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from . import doctypes
from .agency import find_codes
from .meeting import read_meeting
from .text import Cell, Rows, rows_to_text

_NOTATION = r"[A-Za-zĐđ][\wĐđ.&]*(?:\s?[-–]\s?[\wĐđ][\wĐđ.&]*)*"
NUMBER_RE = re.compile(
    r"^(?:(?:Luật|Bộ luật|Pháp lệnh|Lệnh|Nghị quyết)\s+)?S[ốỐ]\s*(?:[:.]\s*)?"
    r"(?:(\d{1,6})|[\s_.…]*)\s*/\s*(?:(\d{4})\s*/\s*)?(" + _NOTATION + ")",
    re.IGNORECASE,
)
_NUMBER_START = re.compile(r"^S[ốỐ]\s*[:.]?\s*(\d{1,6})?\s*/?\s*$|^S[ốỐ]\s*[:.]?.*[-/]$", re.I)
DATE_RE = re.compile(
    r"(?:(?P<place>[^,;:\d]{2,60}?)\s*,\s*)?ngày\s*(?P<d>\d{1,2})\s*"
    r"(?:tháng\s*(?P<m>\d{1,2})\s*năm\s*|[/.-]\s*(?P<m2>\d{1,2})\s*[/.-]\s*)(?P<y>\d{4})",
    re.IGNORECASE,
)
_PLACE_ONLY = re.compile(r"(?P<place>[^,;:\d]{2,60}?)\s*,\s*ngày\s*(?:[.…_ ]|tháng)", re.I)
COMPETENCE_RE = re.compile(r"^(TM|KT|TL|TUQ|Q)\s*\.\s*\S")
_BODY_START = re.compile(
    r"^(Căn cứ|Kính gửi|Thực hiện|Theo |Trong |Nhằm|Để |Điều \d|Chương |Phần |Xét |I\.|1\.|"
    r"Ngày \d|Hôm nay|Vừa qua|Sau khi|Qua |Vào )"
)  # case matters: a wrapped subject may go on with "thực hiện …"
_FIRST_BODY_START = re.compile(r"^(Căn cứ|Kính gửi)", re.I)
_MOTTO = (
    doctypes.key("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"),
    doctypes.key("Độc lập - Tự do - Hạnh phúc"),
)
_MOTTO_WORDS = set(" ".join(_MOTTO).replace("-", " ").split())
_NAME_WORD = re.compile(r"^[A-ZĐÀ-Ỹ][a-zđà-ỹ]*$")
_VV = re.compile(r"^(V/v|V/V|v/v|Về việc|VỀ VIỆC)\b")
_LIST_DASH = ("-", "–", "+", "•", "*")

# The words an organ's name starts with; a header line that starts otherwise continues the
# line above it (a long name wrapped), and a locality ("TỈNH X") completes a bare head above it.
_ORGAN_HEADS = tuple(
    doctypes.key(w)
    for w in (
        "ỦY BAN", "UỶ BAN", "UBND", "HĐND", "HỘI ĐỒNG", "BỘ", "SỞ", "CỤC", "TỔNG CỤC", "VỤ",
        "VIỆN", "BAN", "VĂN PHÒNG", "TRUNG TÂM", "TRƯỜNG", "PHÒNG", "CHI CỤC", "CÔNG TY",
        "TÒA ÁN", "TOÀ ÁN", "KHO BẠC", "BẢO HIỂM", "NGÂN HÀNG", "ĐẢNG", "TỈNH ỦY", "TỈNH UỶ",
        "THÀNH ỦY", "THÀNH UỶ", "HUYỆN ỦY", "HUYỆN UỶ", "QUẬN ỦY", "CHÍNH PHỦ", "THỦ TƯỚNG",
        "QUỐC HỘI", "BỆNH VIỆN", "ĐẠI HỌC", "HỌC VIỆN", "TẬP ĐOÀN", "TỔNG CÔNG TY", "CÔNG AN",
        "BỘ CHỈ HUY", "BỘ TƯ LỆNH", "ĐÀI", "BÁO", "ĐOÀN", "LIÊN ĐOÀN", "TỔNG LIÊN ĐOÀN", "HỘI",
        "MẶT TRẬN", "QUỸ", "THANH TRA", "KIỂM TOÁN", "ĐẠI SỨ QUÁN", "CHỦ TỊCH", "LIÊN MINH",
        "HẠT", "ĐỘI", "TRẠM", "XÍ NGHIỆP", "NHÀ XUẤT BẢN", "TẠP CHÍ", "KIỂM SÁT", "CẢNG VỤ",
        "ĐẠI HỘI", "TỔ", "LIÊN HIỆP", "CHI NHÁNH", "TỔNG THANH TRA", "HỌC VIỆN", "CƠ QUAN",
    )
)  # fmt: skip
_LOCALITY = re.compile(
    r"^(TỈNH|THÀNH PHỐ|TP\.?|HUYỆN|QUẬN|THỊ XÃ|XÃ|PHƯỜNG|THỊ TRẤN|ĐẶC KHU)\s", re.I
)
_BARE_HEADS = {
    doctypes.key(w)
    for w in ("ỦY BAN NHÂN DÂN", "UỶ BAN NHÂN DÂN", "HỘI ĐỒNG NHÂN DÂN", "ỦY BAN MẶT TRẬN TỔ QUỐC")
}
_JOINERS = ("VÀ", "CỦA", "-", "–", ",", "&", "VỀ", "THUỘC")


@dataclass
class TextFacts:
    """What the text says; ``None`` where it says nothing."""

    title_kind: str | None = None
    number: str | None = None
    year: int | None = None
    notation: str | None = None
    issuer: str | None = None
    parent_issuer: str | None = None
    place: str | None = None
    date: dt.date | None = None
    subject: str | None = None
    competence: str | None = None
    position: str | None = None
    name: str | None = None
    urgency: str | None = None
    secrecy: str | None = None
    meeting_start: dt.datetime | None = None
    meeting_place: str | None = None
    kinh_gui: list[str] = field(default_factory=list)
    noi_nhan: list[str] = field(default_factory=list)
    agency_codes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    cong_van_subject: bool = False


def _is_motto(text: str) -> bool:
    k = doctypes.key(text)
    return any(m in k for m in _MOTTO)


def _motto_piece(text: str) -> bool:
    """A fragment of a wrapped motto line ("NGHĨA VIỆT NAM", "phúc")."""
    words = doctypes.key(text).replace("-", " ").split()
    return bool(words) and all(w in _MOTTO_WORDS for w in words)


def _strip_motto(text: str) -> str:
    out = text
    for motto in ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc"):
        idx = doctypes.key(out).find(doctypes.key(motto))
        if idx >= 0:
            out = (out[:idx] + out[idx + len(motto) :]).strip()
    return out


def _is_rule(text: str) -> bool:
    return set(text) <= set("_-–—=.*~ ")


def _clean_item(text: str) -> str:
    text = text.strip()
    while text.startswith(_LIST_DASH):
        text = text[1:].strip()
    text = text.removesuffix("./.").removesuffix("/.").strip()
    while text and text[-1] in ";.,":
        text = text[:-1].rstrip()
    return text


def _is_name(text: str) -> bool:
    words = text.split()
    return 2 <= len(words) <= 6 and all(_NAME_WORD.match(w) for w in words)


def _is_upper(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and all(c.isupper() for c in letters)


def _left(cell: Cell) -> bool:
    return cell.col == "L"


def _right(cell: Cell) -> bool:
    return cell.col == "R"


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
    _place_date(rows, tf, num_row, title_row, layout)
    if tf.title_kind is None:
        _cong_van_subject(rows, tf, num_row)
    _marks(rows, tf)
    _kinh_gui(flat, tf)
    nn_row = _noi_nhan(rows, tf, layout)
    _signer(rows, tf, nn_row, layout)
    text = rows_to_text(rows)
    tf.agency_codes, flags = find_codes(text)
    tf.flags.extend(flags)
    if tf.title_kind == "Giấy mời" or (tf.notation or "").upper().startswith("GM"):
        tf.meeting_start, tf.meeting_place = read_meeting(rows, tf.date.year if tf.date else None)
    return tf


# -- number and notation -------------------------------------------------------------------


def _below(rows: Rows, i: int, cell: Cell, span: int = 3) -> tuple[int, Cell] | None:
    """The next cell under ``cell`` in its column (overlapping horizontally)."""
    for j in range(i + 1, min(len(rows), i + 1 + span)):
        for c in rows[j]:
            if c.x0 < cell.x1 and c.x1 > cell.x0 and c is not cell:
                return j, c
    return None


def _number(rows: Rows, tf: TextFacts) -> int | None:
    for i, row in enumerate(rows[:80]):
        for cell in row:
            text = cell.text
            if _NUMBER_START.match(text):
                nxt = _below(rows, i, cell)
                if nxt and not DATE_RE.search(nxt[1].text):
                    text = f"{text}{'' if text.endswith(('-', '/')) else ' '}{nxt[1].text}"
            m = NUMBER_RE.match(text)
            if m:
                tf.number, year = m.group(1), m.group(2)
                tf.notation = re.sub(r"\s", "", m.group(3)).rstrip(".").replace("–", "-")
                tf.year = int(year) if year else None
                return i
    return None


# -- title and subject ---------------------------------------------------------------------


_SPACED_TITLES = {doctypes.key(name).replace(" ", ""): name for name, _ in doctypes.ALL_TYPES}
_LETTER_SPACED = re.compile(r"(?:\S\s+)+\S")


def _title_kind(text: str) -> str | None:
    """The type a title line names; also when printed letter-spaced ("Q U Y Ế T  Đ Ị N H")."""
    kind = doctypes.type_by_title(text)
    if kind is None and _LETTER_SPACED.fullmatch(text.strip(" :")):
        kind = _SPACED_TITLES.get(doctypes.key(text.strip(" :")).replace(" ", ""))
    return kind


def _title(rows: Rows, tf: TextFacts, num_row: int | None) -> int | None:
    start = (num_row + 1) if num_row is not None else 0
    for i in range(start, min(len(rows), start + 25)):
        for cell in rows[i]:
            if not _is_upper(cell.text):
                continue
            kind = _title_kind(cell.text)
            if kind and kind != "Công văn":
                tf.title_kind = kind
                tf.subject = _subject_after(rows, i)
                return i
    return None


def _subject_after(rows: Rows, title_row: int) -> str | None:
    parts: list[str] = []
    whole_paragraph = False
    for row in rows[title_row + 1 : title_row + 10]:
        cells = [c for c in row if not doctypes.mark(c.text)]
        if not cells:
            if parts:
                break
            continue
        text = " ".join(c.text for c in cells)
        starter = _BODY_START if parts else _FIRST_BODY_START
        if starter.match(text) or _is_rule(text):
            break
        if parts and _is_upper(text) != _is_upper(parts[-1]):
            break  # the authority line ("ỦY BAN NHÂN DÂN TỈNH …") or the body under it
        if whole_paragraph and not cells[0].wrapped and len(text) > 160:
            break  # a Word paragraph this long after the subject is the body
        parts.append(text)
        whole_paragraph = all(c.x0 == 0.0 and c.x1 == 1.0 for c in cells)
    return " ".join(parts) or None


def _cong_van_subject(rows: Rows, tf: TextFacts, num_row: int | None) -> None:
    start = num_row if num_row is not None else 0
    for i in range(start, min(len(rows), start + 10)):
        for cell in rows[i]:
            if not _VV.match(cell.text) or cell.col == "R":
                continue
            parts = [cell.text]
            j, cur = i, cell
            while len(parts) < 8:
                nxt = _below(rows, j, cur, span=2)
                if nxt is None:
                    break
                j2, c = nxt
                if any(not r for r in rows[j + 1 : j2]):
                    break  # a paragraph gap
                if (
                    c.col == "R"
                    or (cell.col == "L" and c.col == "F")
                    or doctypes.mark(c.text)
                    or _FIRST_BODY_START.match(c.text)
                    or _is_rule(c.text)
                    or DATE_RE.search(c.text)
                    or (c.x0 == 0.0 and c.x1 == 1.0)
                ):
                    break
                parts.append(c.text)
                j, cur = j2, c
            tf.subject = " ".join(parts)
            tf.cong_van_subject = True
            return


# -- issuer --------------------------------------------------------------------------------


def _organ_start(line: str) -> bool:
    """Whether the line starts a name: a head word ("SỞ", "TỔNG CỤC") followed by more, or a
    whole name on its own ("CHÍNH PHỦ"); a lone "TRƯỜNG" or "VỤ" is the end of a wrapped name."""
    k = doctypes.key(line)
    if " " not in k:
        return k in ("ubnd", "hđnd") or k.startswith(("ubnd", "hđnd"))
    return any(k == h or k.startswith(h + " ") for h in _ORGAN_HEADS)


def _continues(prev: str, line: str) -> bool:
    """Whether ``line`` is the rest of the name on ``prev`` rather than a name of its own."""
    if doctypes.key(prev) in _BARE_HEADS:
        return True
    if prev.rstrip().endswith(_JOINERS) or prev.upper().split()[-1:] in (["VÀ"], ["CỦA"]):
        return True
    if line.startswith(("(", "-", "–", "VÀ ", "CỦA ")):
        return True
    if _LOCALITY.match(line) and not _organ_start(line):
        return not any(_LOCALITY.match(w) for w in _suffixes(prev))
    return not _organ_start(line)


def _suffixes(text: str) -> list[str]:
    words = text.split()
    return [" ".join(words[i:]) + " " for i in range(1, len(words))]


def _join(prev: str, line: str) -> str:
    if prev.endswith(("-", "–")) or line.startswith(("-", "–")):
        return f"{prev.rstrip(' -–')} - {line.lstrip(' -–')}"
    return f"{prev} {line}"


def _header(rows: Rows, tf: TextFacts, end: int | None, layout: bool) -> None:
    end = end if end is not None else min(len(rows), 8)
    lines: list[str] = []
    for row in rows[:end]:
        for cell in row:
            if layout and cell.col == "R":
                continue
            text = _strip_motto(cell.text) if not layout else cell.text
            cut = doctypes.key(text).find(_MOTTO[0][:15])  # a typed line ran into the motto
            text = text[:cut].strip() if cut > 0 else text
            if not text or _is_motto(text) or _is_rule(text) or doctypes.mark(text):
                continue
            if _motto_piece(text):
                continue
            if _is_upper(text) and not NUMBER_RE.match(text):
                lines.append(" ".join(text.split()))
    names: list[str] = []
    for line in lines:
        if names and _continues(names[-1], line):
            names[-1] = _join(names[-1], line)
        else:
            names.append(line)
    if names:
        tf.issuer = names[-1]
        tf.parent_issuer = names[-2] if len(names) > 1 else None


# -- place and date ------------------------------------------------------------------------


def _place_date(
    rows: Rows, tf: TextFacts, num_row: int | None, title_row: int | None, layout: bool
) -> None:
    """The right-hand block above the title, joined: the line may wrap ("… năm" / "2024")."""
    stop = title_row if title_row is not None else (num_row + 4 if num_row is not None else 14)
    stop = min(len(rows), max(stop, (num_row or 0) + 2))
    texts: list[str] = []
    for row in rows[:stop]:
        for cell in row:
            if layout and cell.col == "L":
                continue
            if _is_motto(cell.text) or _motto_piece(cell.text) or _is_rule(cell.text):
                continue
            if _VV.match(cell.text) or NUMBER_RE.match(cell.text) or doctypes.mark(cell.text):
                continue
            texts.append(cell.text)
    for i in range(len(texts)):  # the line starts a cell; it may run over the next ones
        if _date_in(" ".join(texts[i : i + 3]), tf, anchored=True, first=len(texts[i])):
            return
    for row in rows[: min(len(rows), 30)]:  # no header block: the first "Place, ngày …" line
        for cell in row:
            if _date_in(cell.text, tf, need_place=True):
                return


def _date_in(
    text: str, tf: TextFacts, need_place: bool = False, anchored: bool = False, first: int = 0
) -> bool:
    text = _strip_motto(text)
    found = DATE_RE.match(text) if anchored else None
    for m in [found] if anchored else DATE_RE.finditer(text):
        if m is None:
            break
        date = parse_date(m.group("d"), m.group("m") or m.group("m2"), m.group("y"))
        bad_place = _place(m.group("place") or "", tf) is None
        if anchored and m.group("place") and m.end("place") > first:
            continue  # the place is in the cell that starts the line, not across cells
        if date is None or bad_place and (need_place or anchored and m.group("place")):
            continue
        tf.date = date
        tf.place = _place(m.group("place") or "", tf)
        return True
    m = (_PLACE_ONLY.match if anchored else _PLACE_ONLY.search)(
        text
    )  # a draft: "Hà Nội, ngày     tháng     năm 2024"
    if m and tf.place is None and not (anchored and m.end("place") > first):
        tf.place = _place(m.group("place"), tf)
    return False


def _place(text: str, tf: TextFacts) -> str | None:
    place = text.strip()
    if tf.notation and tf.notation in place:
        place = place.split(tf.notation, 1)[1].strip()
    place = place.lstrip("/-–:. ")
    if place and (place[0].isupper() or place.startswith("TP")) and len(place.split()) <= 8:
        return place
    return None


# -- marks, Kính gửi, Nơi nhận ----------------------------------------------------------------


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


def _split_items(text: str) -> list[str]:
    """ "- A; - B;" or "A; B" on one line are several recipients."""
    parts = [p for p in re.split(r";\s*", text) if p.strip(" -–+.")]
    return parts or [text]


def _kinh_gui(flat: list[tuple[int, Cell]], tf: TextFacts) -> None:
    for idx, (row_i, cell) in enumerate(flat):
        k = doctypes.key(cell.text)
        if not k.startswith("kính gửi"):
            continue
        rest = cell.text.split(":", 1)[1].strip() if ":" in cell.text else cell.text[8:].strip()
        items = [rest] if rest else []
        last_row, x0, prev_x1 = row_i, cell.x0, cell.x1
        for next_row, nxt in flat[idx + 1 :]:
            if next_row > last_row + 1:
                break
            text = nxt.text
            if text.startswith(_LIST_DASH):
                items.append(text)
            elif not items or _BODY_START.match(text) or nxt.x0 < x0 - 0.06:
                break
            elif items[-1].rstrip().endswith(";"):
                items.append(text)  # "Kính gửi: A; B;" wrapped after "B;"
            elif not items[-1].rstrip().endswith((".", ":")) and (
                prev_x1 > 0.75 or nxt.x1 < 0.8 or text.rstrip().endswith((";", "."))
            ):
                items[-1] = f"{items[-1]} {text}"  # a name wrapped by the layout
            else:
                break
            last_row, prev_x1 = next_row, nxt.x1
        for item in items:
            tf.kinh_gui.extend(i for i in (_clean_item(x) for x in _split_items(item)) if i)
        return


def _skip_recipient(item: str) -> bool:
    k = doctypes.key(item)
    return not k or k.startswith(("như ", "lưu", "lưu:")) or k in ("như trên", "lưu")


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
            misses = 0
            for nxt_row in rows[i + 1 : i + 60]:
                left = [
                    c
                    for c in nxt_row
                    if not layout or (col_x - 0.06 < c.x0 < col_x + 0.25 and c.col != "R")
                ]
                if not left:
                    misses += 1 if nxt_row else 0
                    if misses > 3:
                        break
                    continue
                misses = 0
                text = left[0].text
                if doctypes.key(_clean_item(text)).startswith("lưu"):
                    items.append(text)
                    break
                if text.startswith(_LIST_DASH):
                    items.append(text)
                elif items and not items[-1].rstrip().endswith((";", ".")):
                    items[-1] = f"{items[-1]} {text}"  # a name wrapped in the middle
                elif items and len(text) < 90:
                    items.append(text)  # "- A; B;" wrapped after "A;"
                else:
                    break
            found = [_clean_item(x) for item in items for x in _split_items(item)]
            tf.noi_nhan = [c for c in found if not _skip_recipient(c)]
            return i
    return None


# -- signer --------------------------------------------------------------------------------


def _signer(rows: Rows, tf: TextFacts, nn_row: int | None, layout: bool) -> None:
    if nn_row is not None:
        start = max(0, nn_row - 2)
    else:
        body_rows = [i for i, r in enumerate(rows) if any(c.col == "F" for c in r)]
        start = body_rows[-1] + 1 if body_rows and layout else max(0, len(rows) - 14)
    cells = [c for row in rows[start:] for c in row if (c.col != "L" if layout else True)]
    if not cells:
        return
    name_at = max((i for i, c in enumerate(cells) if _is_name(c.text)), default=None)
    if name_at is None:
        return
    tf.name = cells[name_at].text
    block: list[str] = []
    for cell in reversed(cells[:name_at]):
        text = cell.text.strip()
        if text.startswith("(") or not text:  # "(Đã ký)", "(Ký, đóng dấu)"
            continue
        if not _is_upper(text) or text.startswith(_LIST_DASH):
            break
        block.insert(0, text)
        if COMPETENCE_RE.match(text) or len(block) >= 4:
            break
    if block and COMPETENCE_RE.match(block[0]):
        tf.competence = block.pop(0)
        if len(block) >= 2 and " " not in block[0].strip():
            tf.competence += " " + block.pop(0)  # "KT. BỘ TRƯỞNG, CHỦ" / "NHIỆM" wrapped
    tf.position = " ".join(block) or None
