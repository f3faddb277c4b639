"""Shared fixtures for the mailparse tests and the accuracy summary printed at the end."""

from __future__ import annotations

from typing import Any

# Filled by test_mp_corpus: {"pdf": {fact: (right, total)}, "docx": {...}}
ACCURACY: dict[str, dict[str, list[int]]] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ACCURACY:
        return
    tr = terminalreporter
    tr.section("mailparse: accuracy per fact on the generated corpus")
    for fmt, table in sorted(ACCURACY.items()):
        cells = [f"{fact} {right}/{total}" for fact, (right, total) in table.items()]
        tr.write_line(f"{fmt:5} " + "  ".join(cells))
