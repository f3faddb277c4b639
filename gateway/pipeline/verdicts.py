"""A document's verdict from its signature reports: one rule for the gateway and `check`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from signing import SignatureReport, aggregate


class Judged(Protocol):
    """What the rule needs of a document (a pipeline `DocPlan` or a `PlannedDocument`)."""

    @property
    def index(self) -> int: ...
    @property
    def covers(self) -> Sequence[int]: ...
    @property
    def malformed(self) -> bool: ...


def document_verdicts(
    docs: Sequence[Judged], reports: Mapping[int, Sequence[SignatureReport]]
) -> dict[int, str]:
    """Each document's verdict: its own signatures and those of a detached or enveloping
    signature that covers it; `malformed` for an unreadable unsigned file; else `unsigned`."""
    covering: dict[int, list[str]] = {}
    for d in docs:
        for target in d.covers:
            covering.setdefault(target, []).extend(r.verdict for r in reports.get(d.index, []))
    out: dict[int, str] = {}
    for d in docs:
        verdicts = [r.verdict for r in reports.get(d.index, [])] + covering.get(d.index, [])
        if not verdicts and d.malformed:
            verdicts = ["malformed"]
        out[d.index] = aggregate(verdicts)
    return out
