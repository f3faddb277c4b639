"""Agency identification codes (mã định danh, Decision 20/2020/QĐ-TTg)."""

from __future__ import annotations

import re

STRICT = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$")
LEGACY = re.compile(r"^\d{2}\.\d{2}\.[A-Z]\d{2}$")
# In running text: not glued to other digits/dots, so dates and versions do not match.
_IN_TEXT = re.compile(
    r"(?<![\w.])(\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}|\d{2}\.\d{2}\.[A-Z]\d{2})(?![\w]|\.\w)"
)


def find_codes(text: str) -> tuple[list[str], list[str]]:
    """All agency codes in text, in order and without repeats, and flags for legacy ones."""
    codes: list[str] = []
    flags: list[str] = []
    for match in _IN_TEXT.finditer(text):
        code = match.group(1)
        if code in codes:
            continue
        codes.append(code)
        if LEGACY.match(code):
            flags.append(f"legacy_agency_code:{code}")
    return codes, flags
