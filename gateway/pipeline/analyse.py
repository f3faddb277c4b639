"""Parse, classify and spool one message: the CPU and file work, run in an executor.

Everything here is synchronous on purpose (it runs in a worker thread, never on the event
loop). The result names the spooled files the verifier processes read, so megabytes of
attachment bytes never travel through a pipe.

Pairing rules: a detached CMS signature (``x.pdf.p7s``, ``x.sig``) signs the attachment whose
name it carries (``x.pdf``, else the one with the same stem); an enveloping ``.p7m`` carries
its content inside, which is unpacked and classified as a document of its own. Either way
the signature's document "covers" the signed one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath

from mailparse import (
    DEFAULT_LIMITS,
    Attachment,
    ClassifyContext,
    DocumentFacts,
    Limits,
    ParsedMessage,
    classify,
    message_facts,
    parse,
)
from mailparse.containers import make_attachment
from signing import extract_p7m_content

log = logging.getLogger("edocgw.pipeline")

# Types that can carry a signature the verifier understands.
VERIFIABLE = frozenset({"pdf", "cms", "edxml", "xml"})
DETACHED_SUFFIXES = (".p7s", ".sig")


@dataclass
class DocPlan:
    """One document of the message, its facts, and what to verify."""

    index: int
    part_path: str
    filename: str | None
    declared_type: str | None
    detected_type: str
    size: int
    sha256: str
    facts: DocumentFacts
    defects: list[str] = field(default_factory=list)
    malformed: bool = False
    verify_path: str | None = None  # spooled bytes, when the type can carry a signature
    detached_path: str | None = None  # for a detached signature: the content it signs
    covers: list[int] = field(default_factory=list)  # documents this one's signatures sign


@dataclass
class SmimePlan:
    kind: str
    part_path: str
    signature_path: str
    signed_path: str | None


@dataclass
class ContentAnalysis:
    subject: str
    body_text_length: int
    defects: list[str]
    malformed: bool
    docs: list[DocPlan]
    smime: SmimePlan | None = None
    # Marks the mail itself carries (subject, or alone on a body line), documents or not.
    message_urgency: str | None = None
    message_secrecy: str | None = None


Analyser = Callable[[bytes, Path], ContentAnalysis]


class AnalysisFailed(Exception):
    """One message of `analyse_many` failed; the message is `Type: text` of the original
    error (a plain string, so it crosses a process boundary whatever the original was)."""


def analyse_many(
    analyser: Analyser, jobs: list[tuple[bytes, Path]]
) -> list[ContentAnalysis | AnalysisFailed]:
    """Run *analyser* over several small messages in one executor call (one hand-off to the
    thread or process instead of one per message); a failure stays with its own message."""
    out: list[ContentAnalysis | AnalysisFailed] = []
    for raw, spool in jobs:
        try:
            out.append(analyser(raw, spool))
        except Exception as e:
            out.append(AnalysisFailed(f"{type(e).__name__}: {e}"))
    return out


def spooled(analysis: ContentAnalysis) -> bool:
    """Whether *analysis* left files in its spool directory (most mail has nothing to verify)."""
    return analysis.smime is not None or any(
        d.verify_path or d.detached_path for d in analysis.docs
    )


class _Spool:
    """Files of one message under its own directory, named by position (never by the
    sender's filename)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0

    def write(self, data: bytes) -> str:
        if self.count == 0:
            self.directory.mkdir(parents=True, exist_ok=True)
        self.count += 1
        path = self.directory / f"{self.count:04d}.bin"
        path.write_bytes(data)
        return str(path)


def parse_limits(max_message_size: int) -> Limits:
    """mailparse's caps, raised to fit what the SMTP listener accepts: a message the gateway
    said 250 to must not come out `malformed` merely for being within its own size limit."""
    d = DEFAULT_LIMITS
    if max_message_size <= d.max_message_bytes:
        return d
    return replace(
        d,
        max_message_bytes=max_message_size,
        max_decoded_bytes=max(d.max_decoded_bytes, max_message_size),
        max_total_decoded_bytes=max(d.max_total_decoded_bytes, 2 * max_message_size),
    )


def analyse_content(
    raw: bytes, spool_dir: Path, limits: Limits = DEFAULT_LIMITS
) -> ContentAnalysis:
    """Parse *raw*, classify every attachment (recursively) and spool what needs verifying."""
    parsed = parse(raw, limits)
    spool = _Spool(spool_dir)
    ctx = ClassifyContext(subject=parsed.subject, body_text=parsed.body_text)
    docs: list[DocPlan] = []
    data_of: dict[int, bytes] = {}
    ocr_end = time.monotonic() + limits.ocr_message_seconds
    for att in parsed.all_attachments():
        # One OCR budget for the whole message, so many scans cannot outlast the claim.
        left = max(0.0, min(limits.ocr_seconds, ocr_end - time.monotonic()))
        doc = _plan(att, len(docs), ctx, spool, replace(limits, ocr_seconds=left))
        docs.append(doc)
        data_of[doc.index] = att.data
        if att.detected_type == "cms" and not _is_detached_name(att.filename):
            inner = _unpack_p7m(att, len(docs), ctx, spool, limits)
            if inner is not None:
                docs.append(inner[0])
                data_of[inner[0].index] = inner[1]
                doc.covers.append(inner[0].index)
    _pair_detached(docs, data_of, spool)
    own = message_facts(ctx)
    return ContentAnalysis(
        message_urgency=own.urgency,
        message_secrecy=own.secrecy,
        subject=parsed.subject,
        body_text_length=len(parsed.body_text),
        defects=list(parsed.defects),
        malformed=parsed.malformed,
        docs=docs,
        smime=_spool_smime(parsed, spool),
    )


def _plan(
    att: Attachment,
    index: int,
    ctx: ClassifyContext,
    spool: _Spool,
    limits: Limits = DEFAULT_LIMITS,
) -> DocPlan:
    doc = DocPlan(
        index=index,
        part_path=att.part_path,
        filename=att.filename,
        declared_type=att.declared_type,
        detected_type=att.detected_type,
        size=att.size,
        sha256=att.sha256,
        facts=_classify(att, ctx, limits),
        defects=list(att.defects),
        malformed=att.malformed,
    )
    if att.detected_type in VERIFIABLE:
        doc.verify_path = spool.write(att.data)
    return doc


def _classify(
    att: Attachment, ctx: ClassifyContext, limits: Limits = DEFAULT_LIMITS
) -> DocumentFacts:
    try:
        return classify(att, ctx, limits)  # limits carry the OCR deadline
    except Exception as exc:  # classify promises not to raise; a bug must not lose the rest
        log.warning("classify failed", extra={"part": att.part_path, "error": repr(exc)})
        return DocumentFacts(flags=[f"classify_error:{type(exc).__name__}"])


def _is_detached_name(filename: str | None) -> bool:
    return bool(filename) and filename.lower().endswith(DETACHED_SUFFIXES)  # type: ignore[union-attr]


def _unpack_p7m(
    att: Attachment,
    index: int,
    ctx: ClassifyContext,
    spool: _Spool,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[DocPlan, bytes] | None:
    content = extract_p7m_content(att.data)
    if not content:
        return None
    name = att.filename
    if name and name.lower().endswith(".p7m"):
        name = name[:-4]
    inner = make_attachment(f"{att.part_path}.p7m", name, None, content)
    return _plan(inner, index, ctx, spool, limits), content


def _pair_detached(docs: list[DocPlan], data_of: dict[int, bytes], spool: _Spool) -> None:
    by_name: dict[str, DocPlan] = {}
    by_stem: dict[str, list[DocPlan]] = {}
    for d in docs:
        if d.filename and not _is_detached_name(d.filename):
            by_name.setdefault(d.filename.casefold(), d)
            by_stem.setdefault(PurePath(d.filename.casefold()).stem, []).append(d)
    for sig in docs:
        if sig.detected_type != "cms" or not _is_detached_name(sig.filename):
            continue
        target_name = sig.filename.casefold()[:-4]  # type: ignore[union-attr]
        target = by_name.get(target_name)
        if target is None:
            same_stem = by_stem.get(PurePath(target_name).stem, [])
            target = same_stem[0] if len(same_stem) == 1 else None
        if target is None:
            continue
        if target.verify_path is None:
            target_path = spool.write(data_of[target.index])
        else:
            target_path = target.verify_path
        sig.detached_path = target_path
        sig.covers.append(target.index)


def _spool_smime(parsed: ParsedMessage, spool: _Spool) -> SmimePlan | None:
    s = parsed.smime
    if s is None or not s.signature:
        return None
    return SmimePlan(
        kind=s.kind,
        part_path=s.part_path,
        signature_path=spool.write(s.signature),
        signed_path=spool.write(s.signed_bytes) if s.signed_bytes is not None else None,
    )
