"""When and where a Giấy mời's meeting is: ``meeting_start`` (Vietnam time) and ``meeting_place``.

Invitations state the time as "08 giờ 00 phút, thứ Năm, ngày 16/5/2024", "14h30, ngày 20 tháng 5
năm 2024", "8h00 ngày …" or with the date first ("ngày 16/5/2024, lúc 8 giờ"), and the place after
"Địa điểm:" or as "tại …" in the same sentence. The text is read as one stream so a line wrapped
by the layout does not cut a place or separate a time from its date."""

from __future__ import annotations

import datetime as dt
import re

from .text import Rows

VN_TZ = dt.timezone(dt.timedelta(hours=7))

_TIME = re.compile(
    r"(?<![\w/.,])(\d{1,2})\s*(?:giờ|h|g|:)\s*(?:(\d{1,2})\s*(?:phút|p|')?)?(?![\w/])", re.I
)
_DATE = re.compile(
    r"(?<!\d)(\d{1,2})\s*(?:tháng\s*(\d{1,2})(?:\s*năm\s*(\d{4}))?|[/.-]\s*(\d{1,2})(?:\s*[/.-]\s*(\d{4}))?)(?![\d/])",
    re.I,
)
_DATE_LEAD = re.compile(r"(?:ngày|thứ\s+\w+\s*,?|,)\s*$", re.I)
_PLACE_LABEL = re.compile(r"(?:Địa\s*điểm|Nơi\s+họp|Địa\s*chỉ\s+họp)\s*:\s*", re.I)
# Items of a numbered or dashed list ("3. Thành phần: …") end the place with their number.
_STOP_ITEM = re.compile(
    r"(?:\s(?:[\divxIVXa-e]{1,3}[.)/]|[-–+•]))?\s*\b(?:Thành phần|Nội dung|Thời gian|Chủ trì|"
    r"Thành viên|Lưu ý|Liên hệ|Nơi nhận)\b",
    re.I,
)
_STOP = re.compile(r"\b(?:Kính mời|Đề nghị|Trân trọng|Đại biểu|Rất mong)\b", re.I)
_SENTENCE_END = re.compile(r"(?<!\bTP)(?<!\bTp)(?<!\b[A-ZĐ])[.;](?=\s|$)|\s[-–]\s(?=[A-ZĐ])")


def _stream(rows: Rows) -> str:
    """The text in reading order, one space between lines (a numbered item's "1." and its
    text may be cells of one row)."""
    parts: list[str] = []
    for row in rows:
        for cell in row:
            parts.append(cell.text)
    return " ".join(" ".join(parts).split())


def _date_of(m: re.Match[str], default_year: int | None) -> dt.date | None:
    day, month = int(m.group(1)), int(m.group(2) or m.group(4))
    year_s = m.group(3) or m.group(5)
    year = int(year_s) if year_s else default_year
    if year is None:
        return None
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _start(text: str, default_year: int | None) -> tuple[dt.datetime | None, int]:
    for tm in _TIME.finditer(text):
        hour, minute = int(tm.group(1)), int(tm.group(2) or 0)
        if hour > 23 or minute > 59:
            continue
        if tm.group(0).rstrip().endswith(":") or re.search(r"\d\s*:$", tm.group(0)):
            continue
        if ":" in tm.group(0) and not tm.group(2):
            continue
        # the date after the time, within the same clause; else just before it
        after = [
            d
            for d in _DATE.finditer(text, tm.end(), min(len(text), tm.end() + 90))
            if _DATE_LEAD.search(text[max(0, d.start() - 20) : d.start()])
        ]
        before = [
            d
            for d in _DATE.finditer(text, max(0, tm.start() - 60), tm.start())
            if _DATE_LEAD.search(text[max(0, d.start() - 20) : d.start()])
        ]
        for d in after[:1] + before[-1:]:
            day = _date_of(d, default_year)
            if day is not None:
                when = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=VN_TZ)
                return when, max(tm.end(), d.end())
    return None, 0


def _clip(text: str) -> str | None:
    for stop_re in (_STOP_ITEM, _STOP):
        stop = stop_re.search(text)
        if stop:
            text = text[: stop.start()]
    end = _SENTENCE_END.search(text)
    if end:
        text = text[: end.start()]
    text = text[:200].strip(" ,;.:-–")
    return text or None


def read_meeting(
    rows: Rows, default_year: int | None = None
) -> tuple[dt.datetime | None, str | None]:
    """The meeting's start and place, or None for what the text does not state."""
    text = _stream(rows)
    start, end = _start(text, default_year)
    place = None
    label = _PLACE_LABEL.search(text)
    if label:
        place = _clip(text[label.end() :])
    elif start is not None:
        at = re.search(r"\btại\s+", text[end : end + 200])
        if at:
            place = _clip(text[end + at.end() :])
    return start, place
