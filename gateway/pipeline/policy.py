"""What the gateway does with a message given its documents' marks and verdicts (DESIGN §4.3, §5).

Pure: the pipeline hands in plain facts and the `[policy]` settings and gets one decision
back. A secrecy mark always quarantines (state secrets never travel over the Internet, Law
29/2018/QH14 Art. 5), whatever else is configured. Otherwise each finding maps to the action
configured for it and the strictest action wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from config.settings import PolicySettings

Action = Literal["forward", "hold", "reject", "quarantine"]

# Worst first. A verdict in BAD_VERDICTS means the signature (or the file) cannot be relied on.
_STRICTNESS: tuple[Action, ...] = ("quarantine", "reject", "hold", "forward")
BAD_VERDICTS = frozenset({"malformed", "invalid", "revoked", "expired"})
# File types that are documents in their own right (an unsigned logo image is not).
DOCUMENT_TYPES = frozenset({"pdf", "docx", "doc", "odt", "rtf", "xlsx", "xls", "edxml"})


@dataclass(frozen=True)
class DocumentCheck:
    """One document as policy sees it."""

    label: str  # filename or part path, for the reasons given to people
    detected_type: str
    verdict: str  # effective verdict: its own signatures and any that cover it
    secrecy: str | None = None
    kind: str | None = None
    # Decree 30 e-document check: its problems ((): conformant; None: not checked)
    e_document_problems: tuple[str, ...] | None = None
    unreadable: str | None = None  # why its text could not be read; None when it was

    @property
    def is_document(self) -> bool:
        return is_document(self.detected_type, self.kind)


def is_document(detected_type: str | None, kind: str | None) -> bool:
    """A document in its own right (a file type documents come in, or one whose text or
    name gives its kind), as opposed to a logo image."""
    return detected_type in DOCUMENT_TYPES or kind is not None


def e_document_applies(detected_type: str | None, kind: str | None) -> bool:
    """Whether the Decree 30 e-document check is made: for documents, not for a signature
    file (``.p7s``/``.p7m``, whose name often carries the document's notation); its
    signatures count for the document it signs."""
    return detected_type != "cms" and is_document(detected_type, kind)


@dataclass(frozen=True)
class Decision:
    action: Action
    reasons: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        """Message state this decision leaves (reject keeps the message, quarantined)."""
        return {"forward": "processed", "hold": "held"}.get(self.action, "quarantined")

    @property
    def notice(self) -> str:
        """The kind of notice the sender gets."""
        return {
            "forward": "accepted",
            "hold": "held",
            "reject": "rejected",
            "quarantine": "quarantined",
        }[self.action]


def strictest(actions: Iterable[Action]) -> Action:
    seen = set(actions)
    return next((a for a in _STRICTNESS if a in seen), "forward")


def decide(
    documents: Iterable[DocumentCheck],
    policy: PolicySettings,
    *,
    message_verdict: str | None = None,
) -> Decision:
    """The action for a message; ``reasons`` name each finding (``secrecy:Mật:qd.pdf``)."""
    docs = list(documents)
    secret = [f"secrecy:{d.secrecy}:{d.label}" for d in docs if d.secrecy]
    if secret:
        return Decision("quarantine", secret)
    actions: list[Action] = []
    reasons: list[str] = []
    for d in docs:
        if d.verdict in BAD_VERDICTS:
            actions.append(policy.invalid_signature)
            reasons.append(f"signature:{d.verdict}:{d.label}")
        elif d.verdict == "unsigned" and d.is_document:
            actions.append(policy.unsigned)
            reasons.append(f"unsigned:{d.label}")
        if d.e_document_problems and d.is_document:
            # flagged whatever the action: the reason travels with forward too
            actions.append(policy.non_conformant)
            reasons.append(f"non_conformant:{'+'.join(d.e_document_problems)}:{d.label}")
        if d.unreadable:  # nothing unread passes as unmarked: a secrecy mark may be on it
            actions.append(policy.unreadable)
            reasons.append(f"unreadable:{d.unreadable}:{d.label}")
    if message_verdict in BAD_VERDICTS and not any(r.startswith("signature:") for r in reasons):
        actions.append(policy.invalid_signature)
        reasons.append(f"signature:{message_verdict}:message")
    action = strictest(actions)
    return Decision(action, [r for r, a in zip(reasons, actions, strict=True) if a == action])


_REASON_TEXT = {
    "dmarc": "không xác thực được tên miền người gửi (DMARC, chính sách {0}): {1}",
    "sender_not_official": "văn bản gửi từ hộp thư ngoài tên miền công vụ: {0}",
    "sender_denied": "người gửi nằm trong danh sách chặn: {0}",
    "secrecy": "văn bản có dấu chỉ mức độ mật ({0}): {1}",
    "signature": "chữ ký số không đạt ({0}): {1}",
    "unsigned": "văn bản chưa được ký số: {0}",
    "non_conformant": "văn bản điện tử chưa đúng Nghị định 30/2020/NĐ-CP ({0}): {1}",
    "unreadable": "không đọc được nội dung văn bản ({0}): {1}",
    "no_route": "không xác định được cơ quan nhận",
}


def describe(reasons: Iterable[str]) -> str:
    """One Vietnamese line for the sender from machine reasons (``signature:invalid:x.pdf``)."""
    out = []
    for reason in reasons:
        kind, *args = reason.split(":", 2)
        template = _REASON_TEXT.get(kind)
        out.append(template.format(*args, "", "") if template else reason)
    return "; ".join(out)
