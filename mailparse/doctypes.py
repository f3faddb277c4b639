"""The document types of Decree 30/2020/NĐ-CP (and common normative ones) and text matching rules."""

from __future__ import annotations

import re
import unicodedata

# (name, official abbreviation or None)
ADMIN_TYPES: tuple[tuple[str, str | None], ...] = (
    ("Nghị quyết", "NQ"),
    ("Quyết định", "QĐ"),
    ("Chỉ thị", "CT"),
    ("Quy chế", "QC"),
    ("Quy định", "QyĐ"),
    ("Thông cáo", "TC"),
    ("Thông báo", "TB"),
    ("Hướng dẫn", "HD"),
    ("Chương trình", "CTr"),
    ("Kế hoạch", "KH"),
    ("Phương án", "PA"),
    ("Đề án", "ĐA"),
    ("Dự án", "DA"),
    ("Báo cáo", "BC"),
    ("Biên bản", "BB"),
    ("Tờ trình", "TTr"),
    ("Hợp đồng", "HĐ"),
    ("Công điện", "CĐ"),
    ("Bản ghi nhớ", "BGN"),
    ("Bản thỏa thuận", "BTT"),
    ("Giấy ủy quyền", "GUQ"),
    ("Giấy mời", "GM"),
    ("Giấy giới thiệu", "GGT"),
    ("Giấy nghỉ phép", "GNP"),
    ("Phiếu gửi", "PG"),
    ("Phiếu chuyển", "PC"),
    ("Phiếu báo", "PB"),
    ("Công văn", None),
    ("Thư công", None),
)
NORMATIVE_TYPES: tuple[tuple[str, str | None], ...] = (
    ("Hiến pháp", None),
    ("Bộ luật", None),
    ("Luật", None),
    ("Pháp lệnh", "PL"),
    ("Lệnh", None),
    ("Nghị định", "NĐ"),
    ("Thông tư", "TT"),
    ("Thông tư liên tịch", "TTLT"),
    ("Nghị quyết liên tịch", "NQLT"),
)
COPY_TYPES: tuple[tuple[str, str | None], ...] = (
    ("Bản sao y", "SY"),
    ("Trích sao", "TrS"),
    ("Sao lục", "SL"),
)
ALL_TYPES = ADMIN_TYPES + NORMATIVE_TYPES + COPY_TYPES
ABBR_OF: dict[str, str | None] = dict(ALL_TYPES)

URGENCY = ("Hỏa tốc hẹn giờ", "Hỏa tốc", "Thượng khẩn", "Khẩn")
SECRECY = ("Tuyệt mật", "Tối mật", "Mật")

# Old-style tone placement ("hoả", "uỷ") folded to one spelling for comparisons only.
_OLD_NEW = {
    "oà": "òa", "oá": "óa", "oả": "ỏa", "oã": "õa", "oạ": "ọa",
    "oè": "òe", "oé": "óe", "oẻ": "ỏe", "oẽ": "õe", "oẹ": "ọe",
    "uỳ": "ùy", "uý": "úy", "uỷ": "ủy", "uỹ": "ũy", "uỵ": "ụy",
}  # fmt: skip
_OLD_RE = re.compile("|".join(_OLD_NEW))


def key(text: str) -> str:
    """Comparison key: NFC, case-folded, tone placement unified, spaces collapsed; Đ stays Đ."""
    text = unicodedata.normalize("NFC", text).casefold()
    text = _OLD_RE.sub(lambda m: _OLD_NEW[m.group(0)], text)
    return " ".join(text.split())


def fold_d(text: str) -> str:
    """Key with đ folded to d: only to recognise misspelt notations like ``QD``."""
    return key(text).replace("đ", "d")


_BY_NAME = {key(name): name for name, _ in ALL_TYPES}
_BY_ABBR = {abbr: name for name, abbr in ALL_TYPES if abbr}
_BY_ABBR_CI = {key(abbr): name for name, abbr in ALL_TYPES if abbr}
_BY_ABBR_FOLD = {fold_d(abbr): name for name, abbr in ALL_TYPES if abbr}
_MARKS = {key(v): v for v in URGENCY + SECRECY}


def type_leading(text: str) -> str | None:
    """The type whose name a line starts with, as a word (``Công văn số 15/…`` → Công văn)."""
    lead = key(text)
    return next((name for prefix, name in _LEADS if lead.startswith(prefix)), None)


_LEADS = [(key(name) + " ", name) for name, _ in ALL_TYPES]


def type_by_title(text: str) -> str | None:
    """The type whose name the whole line is (``QUYẾT ĐỊNH`` → Quyết định)."""
    return _BY_NAME.get(key(text.rstrip(" :")))


def type_by_abbr(group: str) -> tuple[str | None, str | None]:
    """Type for a notation's first group, and a flag when matched only loosely (``QD``)."""
    if group in _BY_ABBR:
        return _BY_ABBR[group], None
    if key(group) in _BY_ABBR_CI:
        return _BY_ABBR_CI[key(group)], f"notation_case:{group}"
    folded = fold_d(group)
    if folded in _BY_ABBR_FOLD:
        return _BY_ABBR_FOLD[folded], f"notation_spelling:{group}"
    return None, None


# Longer than any mark: "Hỏa tốc hẹn giờ" with its hour and date is some 60 characters.
_MARK_MAX = 200


def mark(text: str) -> str | None:
    """Canonical urgency or secrecy value when the text is exactly such a mark. A longer
    text is none, and is not normalised and case-folded whole to find that out: every cell
    and body line is asked, and a plain-text body's one long line made that a tenth of
    analysing a 200 KB letter (issue 17)."""
    if len(text) > _MARK_MAX and len(" ".join(text.split())) > _MARK_MAX:
        return None
    k = key(text.strip(" .:*()[]"))
    if k in _MARKS:
        return _MARKS[k]
    if k.startswith(key("Hỏa tốc hẹn giờ")):
        return "Hỏa tốc hẹn giờ"
    return None


def is_urgency(value: str) -> bool:
    return value in URGENCY


def is_secrecy(value: str) -> bool:
    return value in SECRECY
