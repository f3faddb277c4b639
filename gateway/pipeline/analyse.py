"""Plan, classify and spool one message: the CPU and file work, run in a worker process.

Everything here is synchronous on purpose: it runs in the analysis processes
(`analysis_worker`, on gateway/processes/pool.py, stopped at their deadline), never on the
event loop. What the message is (its documents, the .p7m contents, which detached signature signs
which document, the edXML codes, what to verify) is decided by `mailparse.plan`, the same
call `edocgw check` makes; this module classifies the documents and spools the bytes the
plan says to verify, so megabytes of attachment bytes never travel through a pipe. The
small signed parts (the usual signed mail) are verified right here (`verify_small_parts`),
with the same code and the same per-part deadline as in the verifier processes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from gateway.pipeline.status import StatusInfo, find_status
from gateway.processes.alarm import Overrun, deadline
from gateway.processes.verify import (
    VERIFY_TIMEOUT,
    TrustArgs,
    Verifier,
    format_of,
    timeout_report,
)
from mailparse import (
    DEFAULT_LIMITS,
    Attachment,
    ClassifyContext,
    DocumentFacts,
    Limits,
    classify,
    message_facts,
)
from mailparse.plan import EdxmlRef, MessagePlan, plan
from signing import SignatureReport

log = logging.getLogger("edocgw.pipeline")

# A part the verifier reads: the path of its spool file, or (up to INLINE_BLOB) its bytes.
Blob = str | bytes
INLINE_BLOB = 256 * 1024


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
    # What the verifier reads, when the type can carry a signature: a spool file's path, or
    # a small part's own bytes (see `Blob`); for a detached signature, the content it signs.
    verify_path: Blob | None = None
    detached_path: Blob | None = None
    covers: list[int] = field(default_factory=list)  # documents this one's signatures sign
    # Verified already, in the analysis process (a small part, on the first attempt): the
    # reports and the seconds it took; the bytes are then not sent back.
    reports: list[SignatureReport] | None = None
    verify_seconds: float = 0.0


@dataclass
class SmimePlan:
    kind: str
    part_path: str
    signature_path: Blob
    signed_path: Blob | None
    reports: list[SignatureReport] | None = None  # as DocPlan.reports
    verify_seconds: float = 0.0


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
    # From the plan, for routing and the receipts: the organ codes the edXML packages
    # address, and the first package's own reference.
    edxml_to_codes: list[str] = field(default_factory=list)
    edxml: EdxmlRef | None = None
    status: StatusInfo | None = None  # an edXML status package: logged, not forwarded


Analyser = Callable[[bytes, Path], ContentAnalysis]


@dataclass(frozen=True)
class RawFile:
    """A message's raw bytes spooled to a file: what crosses the pipe to the analysis
    process instead of megabytes of pickled bytes."""

    path: str

    def read(self) -> bytes:
        return Path(self.path).read_bytes()


# The analyser, the messages, and whether to verify their small signed parts here too.
AnalysisJob = tuple[Analyser, list[tuple[bytes | RawFile, Path]], bool]


class AnalysisFailed(Exception):
    """One message of `analyse_many` failed; the message is `Type: text` of the original
    error (a plain string, so it crosses a process boundary whatever the original was)."""


def analyse_many(
    analyser: Analyser, jobs: list[tuple[bytes | RawFile, Path]]
) -> list[ContentAnalysis | AnalysisFailed]:
    """Run *analyser* over several small messages in one hand-off to the analysis process
    (instead of one per message); a failure stays with its own message."""
    out: list[ContentAnalysis | AnalysisFailed] = []
    for source, spool in jobs:
        try:
            out.append(analyser(source.read() if isinstance(source, RawFile) else source, spool))
        except Exception as e:
            out.append(AnalysisFailed(f"{type(e).__name__}: {e}"))
    return out


WARM_UP = (
    b"Subject: =?utf-8?q?C=C3=B4ng_v=C4=83n?=\r\nFrom: a@b.vn\r\n\r\nK\xc3\xadnh g\xe1\xbb\xadi\r\n"
)


def analysis_worker(
    trust: TrustArgs | None = None,
) -> Callable[[AnalysisJob], list[ContentAnalysis | AnalysisFailed]]:
    """The factory of an analysis process (gateway/processes/pool.py). One small message is
    analysed here, and the PDF engines imported, so the first real job (already on the
    clock) does not pay for lazy imports; each job is `analyse_many`, then, given a trust
    store, `verify_small_parts` on each message the job says to."""
    import tempfile

    import pypdf  # noqa: F401
    import pypdfium2  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        analyse_content(WARM_UP, Path(tmp) / "warm-up")
    try:
        verifier = Verifier(*trust) if trust is not None else None
    except Exception as e:  # a trust file broken since start: the verifier processes answer
        log.warning("the analysis process verifies nothing", extra={"error": repr(e)})
        verifier = None

    def handle(job: AnalysisJob) -> list[ContentAnalysis | AnalysisFailed]:
        analyser, items, verify = job
        results = analyse_many(analyser, items)
        if verify and verifier is not None:
            for a in results:
                if isinstance(a, ContentAnalysis):
                    verify_small_parts(a, verifier, VERIFY_TIMEOUT)
        return results

    return handle


def verify_small_parts(analysis: ContentAnalysis, verifier: Verifier, seconds: float) -> None:
    """Verify here the signed parts that travel as bytes (up to `INLINE_BLOB`), each stopped
    after *seconds* with the verifier processes' own `worker_timeout` report. Saves a
    hand-off to a verifier process and back for the usual signed mail; spooled (big) parts
    are left to the verifier processes."""
    for d in analysis.docs:
        if not isinstance(d.verify_path, bytes) or isinstance(d.detached_path, str):
            continue
        fmt = format_of(d.detected_type) or "cms"
        d.reports, d.verify_seconds = _within(
            seconds,
            fmt,
            partial(verifier.document, d.verify_path, d.detected_type, d.filename, d.detached_path),
        )
        d.verify_path = d.detached_path = None  # verified: the bytes need not travel back
    s = analysis.smime
    if s is not None and isinstance(s.signature_path, bytes) and not isinstance(s.signed_path, str):
        s.reports, s.verify_seconds = _within(
            seconds, "smime", partial(verifier.smime, s.signature_path, s.signed_path)
        )


def _within(
    seconds: float, fmt: str, work: Callable[[], list[SignatureReport]]
) -> tuple[list[SignatureReport], float]:
    start = time.perf_counter()
    try:
        with deadline(seconds):
            reports = work()
    except Overrun:
        reports = [timeout_report(fmt, seconds)]
    return reports, time.perf_counter() - start


def spooled(analysis: ContentAnalysis) -> bool:
    """Whether *analysis* left files in its spool directory (most mail has nothing to verify,
    and a small signed part travels as bytes)."""
    blobs = [b for d in analysis.docs for b in (d.verify_path, d.detached_path)]
    if analysis.smime is not None:
        blobs += [analysis.smime.signature_path, analysis.smime.signed_path]
    return any(isinstance(b, str) for b in blobs)


class _Spool:
    """Files of one message under its own directory, named by position (never by the
    sender's filename). A part up to `INLINE_BLOB` bytes is not written: its bytes go to
    the verifier through the pipes (a directory and a file made, read and removed cost
    more than the copies, and megabytes still never cross a pipe)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0

    def write(self, data: bytes) -> Blob:
        if len(data) <= INLINE_BLOB:
            return bytes(data)
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
    """Plan *raw*, classify every document and spool what the plan says to verify."""
    p = plan(raw, limits)
    spool = _Spool(spool_dir)
    ctx = p.context()
    # One OCR budget for the whole message, so many scans cannot outlast the claim.
    ocr_end = time.monotonic() + limits.ocr_message_seconds
    docs = []
    for d in p.documents:
        left = max(0.0, min(limits.ocr_seconds, ocr_end - time.monotonic()))
        budget = replace(limits, ocr_seconds=left)
        docs.append(_document(d.index, d.attachment, list(d.covers), ctx, budget))
    spooled_at: dict[int, Blob] = {}

    def path_of(index: int) -> Blob:
        if index not in spooled_at:
            spooled_at[index] = spool.write(p.documents[index].attachment.data)
        return spooled_at[index]

    for v in p.verifications:
        docs[v.document].verify_path = path_of(v.document)
        if v.detached is not None:
            docs[v.document].detached_path = path_of(v.detached)
    own = message_facts(ctx)
    return ContentAnalysis(
        message_urgency=own.urgency,
        message_secrecy=own.secrecy,
        subject=p.header.subject,
        body_text_length=len(p.body_text),
        defects=list(p.defects),
        malformed=p.malformed,
        docs=docs,
        smime=_spool_smime(p, spool),
        edxml_to_codes=p.edxml_to_codes(),
        edxml=p.edxml[0] if p.edxml else None,
        status=find_status(d.attachment for d in p.documents),
    )


def _document(
    index: int,
    att: Attachment,
    covers: list[int],
    ctx: ClassifyContext,
    limits: Limits = DEFAULT_LIMITS,
) -> DocPlan:
    return DocPlan(
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
        covers=covers,
    )


def _classify(
    att: Attachment, ctx: ClassifyContext, limits: Limits = DEFAULT_LIMITS
) -> DocumentFacts:
    try:
        return classify(att, ctx, limits)  # limits carry the OCR deadline
    except Exception as exc:  # classify promises not to raise; a bug must not lose the rest
        log.warning("classify failed", extra={"part": att.part_path, "error": repr(exc)})
        return DocumentFacts(flags=[f"classify_error:{type(exc).__name__}"])


def _spool_smime(p: MessagePlan, spool: _Spool) -> SmimePlan | None:
    s = p.smime
    if s is None:
        return None
    return SmimePlan(
        kind=s.kind,
        part_path=s.part_path,
        signature_path=spool.write(s.signature),
        signed_path=spool.write(s.signed) if s.signed is not None else None,
    )
