"""Event details as text a person reads (CLI `show` and the web timeline share it).

Details are JSON: lists and objects used to print as Python reprs (`['a', 'b']`,
`{'k': None}`). Here lists become comma lists, objects `key: value` groups in parentheses,
null and empty values are left out, and true/false read as yes/no.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_ITEMS = 20  # a long list shows its first items and how many more


def plain(value: Any) -> str:
    """One value as text; "" when there is nothing to show."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        inner = detail_text(value)
        return f"({inner})" if inner else ""
    if isinstance(value, list | tuple):
        parts = [p for p in (plain(v) for v in value[:MAX_ITEMS]) if p]
        more = len(value) - MAX_ITEMS
        return ", ".join(parts) + (f" … (+{more})" if more > 0 else "")
    return str(value)


def detail_items(detail: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(key, text) pairs of an event detail, without the empty ones."""
    out = []
    for k, v in (detail or {}).items():
        t = plain(v)
        if t:
            out.append((str(k).replace("_", " "), t))
    return out


def detail_text(detail: Mapping[str, Any] | None) -> str:
    """An event detail on one line: `reply: 550 5.1.1 no such user; attempt: 2`."""
    return "; ".join(f"{k}: {v}" for k, v in detail_items(detail))
