"""``plan(raw, limits) -> MessagePlan``: what a message is, decided once.

Everything about a message that needs neither a database nor keys: its header facts, its
documents (MIME parts, ZIP/TNEF/edXML/forwarded-mail members, the content of each enveloping
``.p7m``), which detached signature signs which document, the edXML packages and their organ
codes, and what there is to verify. ``edocgw check`` and the gateway's pipeline both build on
it, so they cannot judge the same mail differently. Pure: no I/O; the caller spools or
verifies the bytes the plan points at.

Detached signatures, one rule. A CMS document named ``<target>.p7s`` or ``<target>.sig``
signs a document of the same container (the message's own attachments, or the members of
one ZIP, edXML package or attached mail), chosen:

1. by exact name: the document named ``<target>`` (``x.pdf`` for ``x.pdf.p7s``);
2. else by stem: the one document whose name without its extension is ``<target>``
   (``x.pdf`` or ``x.docx`` for ``x.sig``; none when several share that stem).

Names compare after NFC normalisation and case folding. ``x.pdf.p7s`` never signs
``x.docx``: the signature names a PDF, and checking it against a DOCX would blame the DOCX
for a mismatch that is only a missing file. Other CMS files are enveloping (``.p7m``):
their content is unpacked, opened like any attachment, and is covered by their signature.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from .agency import find_codes
from .edxml import EdxmlError, read_package
from .limits import DEFAULT_LIMITS, Limits
from .mime import cms_content, open_file, parse
from .models import Attachment, ClassifyContext, ParsedMessage

DETACHED_SUFFIXES = (".p7s", ".sig")
# Types whose bytes can carry a signature the verifier understands.
VERIFIABLE = frozenset({"pdf", "cms", "edxml", "xml"})


@dataclass(frozen=True)
class HeaderFacts:
    """The message's own header fields, decoded."""

    message_id: str | None = None
    from_addr: str | None = None
    to_addrs: tuple[str, ...] = ()
    subject: str = ""
    agency_codes: tuple[str, ...] = ()  # codes written in the subject: "[000.00.00.H53]"


@dataclass(frozen=True)
class PlannedDocument:
    """One document of the message. ``attachment`` holds its bytes (not modified here)."""

    index: int
    parent: int | None  # the container it came out of; None for the message's own parts
    attachment: Attachment
    signs: int | None = None  # a paired detached signature: the document it signs
    envelops: int | None = None  # an enveloping .p7m: the document unpacked from it

    @property
    def part_path(self) -> str:
        return self.attachment.part_path

    @property
    def filename(self) -> str | None:
        return self.attachment.filename

    @property
    def detected_type(self) -> str:
        return self.attachment.detected_type

    @property
    def malformed(self) -> bool:
        return self.attachment.malformed

    @property
    def covers(self) -> tuple[int, ...]:
        """Documents whose content this one's signatures sign."""
        return tuple(i for i in (self.signs, self.envelops) if i is not None)

    @property
    def verifiable(self) -> bool:
        return self.detected_type in VERIFIABLE


@dataclass(frozen=True)
class Verification:
    """One thing to verify: a document's bytes, with the content a detached signature signs."""

    document: int
    detached: int | None = None


@dataclass(frozen=True)
class SmimeCheck:
    """The message's S/MIME signature and the signed part exactly as it was on the wire."""

    kind: str  # "multipart/signed" | "pkcs7-mime"
    part_path: str
    signature: bytes
    signed: bytes | None  # None for pkcs7-mime: the content is inside the signature


@dataclass(frozen=True)
class EdxmlRef:
    """What an edXML package says about itself: who sent it, to whom, and which document it
    is (what a status package answering it must quote)."""

    document: int
    from_code: str | None = None
    to_codes: tuple[str, ...] = ()
    document_id: str | None = None
    code_number: str | None = None
    code_notation: str | None = None
    promulgation_date: dt.date | None = None


@dataclass(frozen=True)
class MessagePlan:
    header: HeaderFacts
    body_text: str = ""
    defects: tuple[str, ...] = ()
    malformed: bool = False
    documents: tuple[PlannedDocument, ...] = ()
    smime: SmimeCheck | None = None
    edxml: tuple[EdxmlRef, ...] = ()
    verifications: tuple[Verification, ...] = field(default=())

    def context(self) -> ClassifyContext:
        """The mail-level hints classification falls back on."""
        return ClassifyContext(subject=self.header.subject, body_text=self.body_text)

    def children(self, parent: int | None) -> list[PlannedDocument]:
        """The documents directly inside *parent* (None: the message's own parts)."""
        return [d for d in self.documents if d.parent == parent]

    def covering(self, index: int) -> list[PlannedDocument]:
        """The documents whose signatures sign document *index* (a detached signature, or
        the .p7m it was unpacked from)."""
        return [d for d in self.documents if index in d.covers]

    def edxml_to_codes(self) -> list[str]:
        """Every organ code the edXML packages address, in order, without repeats."""
        return list(dict.fromkeys(c for ref in self.edxml for c in ref.to_codes))


def plan(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> MessagePlan:
    """The plan of one RFC 5322 message; never raises (bad input gives defects)."""
    parsed = parse(raw, limits)
    return _build(_header(parsed), parsed, parsed.attachments, limits)


def plan_files(files: Sequence[tuple[str, bytes]], limits: Limits = DEFAULT_LIMITS) -> MessagePlan:
    """Standalone files (``edocgw check x.pdf`` with ``x.pdf.p7s`` beside it) as the parts of
    one container, so a detached signature pairs by the same rule as in a message."""
    top = [
        open_file(data, name, limits, part_path=str(i)) for i, (name, data) in enumerate(files, 1)
    ]
    return _build(HeaderFacts(), ParsedMessage(), top, limits)


def detached_target(filename: str | None) -> str | None:
    """``x.pdf`` for ``x.pdf.p7s`` / ``x.pdf.sig``: the name a detached signature carries;
    None for any other name."""
    if not filename:
        return None
    lower = filename.lower()
    for ext in DETACHED_SUFFIXES:
        if lower.endswith(ext) and len(filename) > len(ext):
            return filename[: -len(ext)]
    return None


def pairing_names(name: str, names: Iterable[str]) -> list[str]:
    """Of *names* (files lying beside a file called *name*), those the pairing rule looks at
    when *name* is checked on its own: for a document, the signatures that may sign it and
    the documents that compete with it for a signature named by stem; for a signature, the
    documents it may sign."""
    key = _fold(name)
    target = detached_target(name)
    sigs, docs = [], []
    for n in names:
        if n == name:
            continue
        t = detached_target(n)
        if target is not None:
            if t is None and _fold(target) in (_fold(n), _stem(_fold(n))):
                docs.append(n)
        elif t is not None and _fold(t) in (key, _stem(key)):
            sigs.append(n)
        elif t is None and _stem(_fold(n)) == _stem(key):
            docs.append(n)
    if target is None and not any(_fold(detached_target(s) or "") == _stem(key) for s in sigs):
        docs = []  # no signature named by stem: no competition to decide
    return sigs + docs


def _header(parsed: ParsedMessage) -> HeaderFacts:
    codes, _ = find_codes(parsed.subject)
    return HeaderFacts(
        message_id=parsed.message_id,
        from_addr=parsed.from_addr,
        to_addrs=tuple(parsed.to_addrs),
        subject=parsed.subject,
        agency_codes=tuple(codes),
    )


class _Builder:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.docs: list[PlannedDocument] = []
        self.defects: list[str] = []
        self.full = False

    def add(self, att: Attachment, parent: int | None, depth: int) -> int | None:
        """*att* and everything inside it, depth first; the unpacked content of a .p7m
        right after the .p7m."""
        if len(self.docs) >= self.limits.max_attachments:
            if not self.full:
                self.defects.append(f"too_many_attachments:>{self.limits.max_attachments}")
                self.full = True
            return None
        index = len(self.docs)
        self.docs.append(PlannedDocument(index, parent, att))
        for child in att.children:
            self.add(child, index, depth + 1)
        if att.detected_type == "cms" and detached_target(att.filename) is None:
            inner = self._unpack(att, depth)
            if inner is not None:
                inner_index = self.add(inner, index, depth + 1)
                if inner_index is not None:
                    self.docs[index] = replace(self.docs[index], envelops=inner_index)
        return index

    def _unpack(self, att: Attachment, depth: int) -> Attachment | None:
        if depth >= self.limits.max_depth:
            self.defects.append(f"{att.part_path}:nesting_too_deep")
            return None
        content = cms_content(att.data)
        if not content:
            return None
        name = att.filename
        if name and name.lower().endswith(".p7m") and len(name) > 4:
            name = name[:-4]
        return open_file(content, name, self.limits, part_path=f"{att.part_path}.p7m")

    def pair_detached(self) -> None:
        groups: dict[int | None, list[PlannedDocument]] = {}
        for d in self.docs:
            groups.setdefault(d.parent, []).append(d)
        for siblings in groups.values():
            by_name: dict[str, int] = {}
            by_stem: dict[str, list[int]] = {}
            for d in siblings:
                if d.filename and detached_target(d.filename) is None:
                    name = _fold(d.filename)
                    by_name.setdefault(name, d.index)
                    by_stem.setdefault(_stem(name), []).append(d.index)
            for d in siblings:
                target = detached_target(d.filename)
                if d.detected_type != "cms" or target is None:
                    continue
                key = _fold(target)
                signed = by_name.get(key)
                if signed is None:
                    same_stem = by_stem.get(key, [])
                    signed = same_stem[0] if len(same_stem) == 1 else None
                if signed is not None:
                    self.docs[d.index] = replace(d, signs=signed)


def _fold(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def _stem(name: str) -> str:
    dot = name.rfind(".")
    return name[:dot] if dot > 0 else name


def _build(
    header: HeaderFacts, parsed: ParsedMessage, top: list[Attachment], limits: Limits
) -> MessagePlan:
    b = _Builder(limits)
    for att in top:
        b.add(att, None, 0)
    b.pair_detached()
    docs = tuple(b.docs)
    s = parsed.smime
    smime = (
        SmimeCheck(s.kind, s.part_path, s.signature, s.signed_bytes)
        if s is not None and s.signature
        else None
    )
    return MessagePlan(
        header=header,
        body_text=parsed.body_text,
        defects=tuple(parsed.defects) + tuple(b.defects),
        malformed=parsed.malformed or b.full,
        documents=docs,
        smime=smime,
        edxml=tuple(r for r in (_edxml_ref(d) for d in docs) if r is not None),
        verifications=tuple(Verification(d.index, d.signs) for d in docs if d.verifiable),
    )


def _edxml_ref(d: PlannedDocument) -> EdxmlRef | None:
    if d.detected_type != "edxml":
        return None
    try:
        pkg = read_package(d.attachment.data, attachments=False)
    except EdxmlError:
        return None
    except Exception:  # a reader bug must not lose the message: the package stays unread
        return None
    return EdxmlRef(
        document=d.index,
        from_code=pkg.from_code,
        to_codes=tuple(pkg.to_codes),
        document_id=pkg.document_id,
        code_number=pkg.code_number,
        code_notation=pkg.code_notation,
        promulgation_date=pkg.promulgation_date,
    )
