"""Plain data returned by :mod:`mailparse`; other packages code against these names."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

FACT_NAMES: tuple[str, ...] = (
    "kind",
    "kind_abbr",
    "number",
    "year",
    "notation",
    "issuer",
    "parent_issuer",
    "place",
    "date",
    "subject",
    "signer",
    "signer_position",
    "signer_competence",
    "urgency",
    "secrecy",
    "recipients",
    "agency_codes",
    "meeting_start",
    "meeting_place",
)


@dataclass
class Attachment:
    """One document found in a message (a MIME leaf, a ZIP member or a TNEF member)."""

    part_path: str
    filename: str | None
    declared_type: str | None
    detected_type: str
    data: bytes
    size: int
    sha256: str
    defects: list[str] = field(default_factory=list)
    malformed: bool = False
    children: list[Attachment] = field(default_factory=list)

    def walk(self) -> list[Attachment]:
        """This attachment and every descendant, depth first."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


@dataclass
class SmimeInfo:
    """Where the S/MIME signature is, with the bytes a verifier needs untouched."""

    kind: str  # "multipart/signed" | "pkcs7-mime"
    signed_bytes: bytes | None
    signature: bytes
    part_path: str


@dataclass
class ParsedMessage:
    """The decoded envelope-independent view of one RFC 5322 message."""

    message_id: str | None = None
    subject: str = ""
    from_addr: str | None = None
    to_addrs: list[str] = field(default_factory=list)
    date: dt.datetime | None = None
    attachments: list[Attachment] = field(default_factory=list)
    smime: SmimeInfo | None = None
    body_text: str = ""
    defects: list[str] = field(default_factory=list)
    malformed: bool = False
    # MIME parts the parser built, attached messages included: it stops past `max_parts`.
    parts_parsed: int = 0

    def all_attachments(self) -> list[Attachment]:
        """Every attachment including ZIP/TNEF/forwarded-mail children, depth first."""
        out: list[Attachment] = []
        for att in self.attachments:
            out.extend(att.walk())
        return out


# What the fact patterns see of a mail's Subject. A real subject is a line or two (RFC 5322
# lines stop at 998 characters); a 1 MB one cost seconds of regex CPU per pattern and per
# document, so the one door every caller passes through (this context) cuts it.
MAX_SUBJECT_CHARS = 4096


@dataclass
class ClassifyContext:
    """Mail-level hints used when a document itself says nothing."""

    subject: str = ""
    body_text: str = ""

    def __post_init__(self) -> None:
        if len(self.subject) > MAX_SUBJECT_CHARS:
            self.subject = self.subject[:MAX_SUBJECT_CHARS]


@dataclass
class DocumentFacts:
    """Decree 30 facts of one document, each with where it came from."""

    kind: str | None = None
    kind_abbr: str | None = None
    number: str | None = None
    year: int | None = None
    notation: str | None = None
    issuer: str | None = None
    # The organ printed above a subordinate issuer ("BỘ TÀI CHÍNH" over "TỔNG CỤC THUẾ").
    parent_issuer: str | None = None
    place: str | None = None
    date: dt.date | None = None
    subject: str | None = None
    signer: str | None = None  # the signer's name
    signer_position: str | None = None
    signer_competence: str | None = None  # "KT. CHỦ TỊCH", "TM. ỦY BAN NHÂN DÂN", …
    urgency: str | None = None
    secrecy: str | None = None
    recipients: list[str] = field(default_factory=list)
    agency_codes: list[str] = field(default_factory=list)
    # Giấy mời only: when (Vietnam time) and where the meeting is.
    meeting_start: dt.datetime | None = None
    meeting_place: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    confidence: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    # edXML only: the organ codes of the sender and the addressees.
    from_code: str | None = None
    to_codes: list[str] = field(default_factory=list)
    # Why the document's text could not be read (``ocr_timeout``, ``encrypted``, ``no_reader``…);
    # None when it was read. An unread document may carry a secrecy mark: policy decides.
    unreadable: str | None = None
    text_chars: int = 0  # characters of text read (text layer, Word/ODT/RTF, or OCR)

    def set(self, name: str, value: Any, source: str, confidence: float) -> None:
        """Record a fact unless it is empty or an earlier, better source already gave it."""
        if value is None or value == [] or value == "":
            return
        if name in self.sources:
            return
        setattr(self, name, value)
        self.sources[name] = source
        self.confidence[name] = confidence

    def to_dict(self) -> dict[str, Any]:
        """The ``facts`` object of DESIGN §7 (JSON-ready; unknown facts are ``None``)."""
        return {
            "kind": self.kind,
            "kind_abbr": self.kind_abbr,
            "number": self.number,
            "year": self.year,
            "notation": self.notation,
            "issuer": self.issuer,
            "parent_issuer": self.parent_issuer,
            "place": self.place,
            "date": self.date.isoformat() if self.date else None,
            "subject": self.subject,
            "signer": self.signer,
            "signer_position": self.signer_position,
            "signer_competence": self.signer_competence,
            "urgency": self.urgency,
            "secrecy": self.secrecy,
            "recipients": list(self.recipients),
            "agency_codes": list(self.agency_codes),
            "meeting_start": self.meeting_start.isoformat() if self.meeting_start else None,
            "meeting_place": self.meeting_place,
            "sources": dict(self.sources),
        }
