"""A document's verdict from its signature reports: one rule for the gateway and `check`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from gateway.pipeline.policy import e_document_applies
from mailparse import DocumentFacts
from signing import EDocumentCheck, SignatureReport, aggregate, check_e_document


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


def document_signatures(
    docs: Sequence[Judged], reports: Mapping[int, Sequence[SignatureReport]]
) -> dict[int, list[SignatureReport]]:
    """Each document's signatures: its own, then those of a detached or enveloping
    signature that covers it."""
    out: dict[int, list[SignatureReport]] = {d.index: list(reports.get(d.index, [])) for d in docs}
    for d in docs:
        for target in d.covers:
            out.setdefault(target, []).extend(reports.get(d.index, []))
    return out


def e_document_for(
    detected_type: str | None, facts: DocumentFacts, signatures: Sequence[SignatureReport]
) -> EDocumentCheck | None:
    """The Decree 30 e-document check of one document (None for an image, a signature file
    …), from its signatures (`document_signatures`) and the signer and issuer read from it."""
    if not e_document_applies(detected_type, facts.kind):
        return None
    return check_e_document(list(signatures), signer=facts.signer, issuer=facts.issuer)


def shown_verdict(signature_verdict: str, unreadable: str | None) -> str:
    """The verdict stored and shown for a document: `unreadable` when its text could not be
    read (OCR failed, encrypted, no reader), whatever its signatures say, since a secrecy
    mark may be on it; else the verdict of its signatures. A file that cannot even be parsed
    stays `malformed` (the stronger word: the file is broken, not merely unread); its
    `unreadable` reason is still reported and the policy for unreadable documents applies."""
    if unreadable and signature_verdict != "malformed":
        return "unreadable"
    return signature_verdict
