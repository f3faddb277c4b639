"""Signed PDFs: every signature field, its coverage and what was changed after it.

Each field is handled on its own and every exception from a real-world file becomes a
report, because one broken field (empty, encrypted, odd CMS) must not hide the others.
Document timestamps (``/DocTimeStamp``) are reported as ``pdf-timestamp``, not as failed
signatures.
"""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import datetime

from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import DiffResult, ModificationLevel
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from signing import _fasthex, _fasttokens
from signing import report as r
from signing.cms import (
    CmsParseError,
    check_signed_data,
    digest_of,
    encapsulated_content,
    settle_signed_data,
)
from signing.report import SignatureReport
from signing.trust import TrustStore

_fasthex.install()
_fasttokens.install()

_ALLOWED_CHANGES = {
    ModificationLevel.NONE: "",
    ModificationLevel.LTA_UPDATES: "later revisions only add validation data or timestamps",
    ModificationLevel.FORM_FILLING: "later revisions only fill in form fields or add signatures",
    ModificationLevel.ANNOTATIONS: "later revisions only add annotations",
}


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def verify_pdf(data: bytes, trust: TrustStore) -> list[SignatureReport]:
    """Reports for every filled signature field; ``[]`` for an unsigned PDF."""
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        if reader.encrypted:
            # signatures of a file with only an owner password are still readable
            result = reader.decrypt("")
            if not getattr(result, "status", None) or result.status.name == "FAILED":
                if b"/ByteRange" not in data:
                    return []  # read, but locked: and no signature dictionary in it
                raise PermissionError("encrypted PDF and the empty user password does not open it")
        fields = list(enumerate_sig_fields(reader, filled_status=True))
    except Exception as exc:
        # never `unsigned`: whoever reads that assumes the file was read (DESIGN §5)
        return [r.malformed("pdf", "unreadable_pdf", f"cannot read the PDF: {_short(exc)}")]
    if not fields and b"/ByteRange" in data and b"/Contents" in data:
        return [
            r.malformed(
                "pdf", "malformed", "the PDF has signature data but no readable signature field"
            )
        ]
    reports: list[tuple[int, SignatureReport]] = []
    for fq_name, _sig_obj, sig_field in fields:
        order, rep = _one_field(reader, sig_field, fq_name, trust)
        reports.append((order, rep))
    reports.sort(key=lambda item: item[0])  # signing order
    return [rep for _, rep in reports]


def _one_field(reader, sig_field, fq_name: str, trust: TrustStore) -> tuple[int, SignatureReport]:
    fmt = "pdf"
    try:
        sig_dict = sig_field.get_object()["/V"].get_object()
        if (
            sig_dict.get("/Type") == "/DocTimeStamp"
            or sig_dict.get("/SubFilter") == "/ETSI.RFC3161"
        ):
            fmt = "pdf-timestamp"
        emb = EmbeddedPdfSignature(reader, sig_field, fq_name)
        # full parse of the SignedData pyHanko loaded (the one checked below): truncation
        # shows up here; a lenient reading says what it skipped
        lenient = settle_signed_data(emb.signed_data)
    except CmsParseError as exc:
        return 1 << 30, r.malformed(fmt, "malformed", f"field {fq_name}: {exc}")
    except Exception as exc:
        # a /Sig dictionary or /ByteRange that cannot be read is a broken signature
        return 1 << 30, r.malformed(fmt, "malformed", f"field {fq_name}: {_short(exc)}")
    order = emb.signed_revision if isinstance(emb.signed_revision, int) else 1 << 29
    try:
        return order, _check(emb, fq_name, fmt, trust, lenient)
    except Exception as exc:  # a file pyHanko chokes on, deep in the analysis
        return order, r.malformed(fmt, "malformed", f"field {fq_name}: {_short(exc)}")


def _overshoot(emb: EmbeddedPdfSignature) -> int:
    """Bytes by which a standard, contiguous byte range runs past the end of the file when
    that is only a dropped trailing newline (1-2 bytes), else 0. The digest is then taken
    over the whole file, so the signature still covers all of it."""
    try:
        start1, len1, start2, len2 = (int(x) for x in emb.byte_range)
        stream = emb.reader.stream
        stream.seek(0, io.SEEK_END)
        size = stream.tell()
    except Exception:
        return 0
    contiguous = start2 == len1 + len(emb.pkcs7_content) * 2 + 2
    overshoot = start2 + len2 - size
    return overshoot if start1 == 0 and contiguous and 0 < overshoot <= 2 else 0


def _integrity(emb: EmbeddedPdfSignature) -> tuple[bool | None, str | None, str]:
    """(covers_whole_file, failure reason or None, note) from coverage and diff analysis."""
    try:
        emb.compute_integrity_info()
    except Exception as exc:
        # pyHanko could not read the later revisions: nothing proves a change, nothing rules it out
        return (
            None,
            "diff_analysis_failed",
            f"the revisions after signing cannot be analysed: {_short(exc)}",
        )
    coverage = emb.coverage
    if coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return True, None, ""
    if coverage != SignatureCoverageLevel.ENTIRE_REVISION:
        overshoot = _overshoot(emb)
        if overshoot:
            return (
                True,
                None,
                f"the byte range reaches {overshoot} byte(s) past the end of the file "
                "(a final end-of-line dropped after signing)",
            )
        return False, "coverage_unclear", "the signed byte range does not cover a whole revision"
    diff = emb.diff_result
    if not isinstance(diff, DiffResult):
        return (False, *_unexplained(str(diff)))
    level = diff.modification_level
    docmdp = emb.docmdp_level
    if level == ModificationLevel.OTHER or (docmdp is not None and level.value > docmdp.value):
        return (
            False,
            "modified_after_signing",
            f"content changed after signing ({level.name.lower()})",
        )
    return False, None, _ALLOWED_CHANGES.get(level, "")


# pyHanko's diff policy is a whitelist: a change it cannot explain is not proof of tampering.
# What it touched decides: the page tree, a page's content, resources or annotations, the
# name tree (scripts, embedded files) or actions change what a reader shows or does, so
# they make the signature `invalid`; the DSS/VRI validation data, the logical structure tree
# (tags for accessibility), XMP metadata and objects not reachable from the signed
# revision's catalog change nothing that was signed.
_CONTENT_MARKS = re.compile(
    r"/(?:Pages?|Contents|Resources|Annots|Names|OpenAction|AA|JavaScript|EmbeddedFiles|"
    r"AcroForm|XObject|Font|MediaBox|CropBox|Kids)\b|\.Root\.Pages|Dict keys differ"
)
_NON_CONTENT_MARKS = re.compile(
    r"VRI key|/DSS\b|\.Root\.DSS|StructTreeRoot|AdditionalStreams|/Metadata\b|/StructParents?\b"
)


def _unexplained(message: str) -> tuple[str | None, str]:
    """(failure reason or None, note) for a later revision pyHanko's policy rejected."""
    text = " ".join(message.split())
    if _CONTENT_MARKS.search(text):
        return "modified_after_signing", f"content changed after signing: {text}"
    if _NON_CONTENT_MARKS.search(text):
        return None, f"later revisions change only validation data or document structure: {text}"
    return "unexplained_changes", f"later revisions make changes that cannot be explained: {text}"


def _check(
    emb: EmbeddedPdfSignature,
    fq_name: str,
    fmt: str,
    trust: TrustStore,
    lenient: list[str] | None = None,
) -> SignatureReport:
    whole, failure, note = _integrity(emb)
    lenient_note = "; ".join(f"lenient reading: {n}" for n in lenient or ())
    note = "; ".join(x for x in (f"field {fq_name}", lenient_note, note) if x)
    sd = emb.signed_data
    if fmt == "pdf-timestamp":
        return _check_timestamp(emb, sd, whole, failure, note, trust)
    fallback: datetime | None = emb.self_reported_timestamp  # /M, when the CMS has no time
    reports = check_signed_data(
        sd,
        fmt="pdf",
        digest=emb.compute_digest,
        trust=trust,
        covers_whole_file=whole,
        fallback_time=fallback,
        note=note,
    )
    return _apply_integrity(reports[0], failure)


def _apply_integrity(rep: SignatureReport, failure: str | None) -> SignatureReport:
    """A coverage or modification failure outranks what the CMS check said, except a
    digest mismatch (already invalid, and the more precise reason) and malformed."""
    if not failure or rep.verdict == r.MALFORMED or rep.reason == "digest_mismatch":
        return rep
    if failure in _UNDECIDED:
        # nothing proves a change and nothing rules it out: never valid, and the chain's
        # own verdict stands when it is worse
        if r.SEVERITY.index(rep.verdict) <= r.SEVERITY.index(r.INDETERMINATE):
            return rep
        return _replace(rep, verdict=r.INDETERMINATE, reason=failure)
    return _replace(rep, verdict=r.INVALID, reason=failure)


_UNDECIDED = frozenset({"diff_analysis_failed", "unexplained_changes"})


def _check_timestamp(emb, sd, whole, failure, note, trust) -> SignatureReport:
    """A document timestamp: the TSTInfo's message imprint must be the byte-range digest."""
    tst = sd["encap_content_info"]["content"].parsed
    gen_time = tst["gen_time"].native
    imprint = tst["message_imprint"]
    md = imprint["hash_algorithm"]["algorithm"].native
    encap = encapsulated_content(sd) or b""
    reports = check_signed_data(
        sd,
        fmt="pdf-timestamp",
        digest=digest_of(encap),
        trust=trust,
        expected_content_type="tst_info",
        covers_whole_file=whole,
        fallback_time=gen_time,
        note=note,
    )
    rep = _replace(reports[0], signing_time=gen_time, signing_time_source="timestamp")
    if rep.verdict == r.MALFORMED:
        return rep
    if emb.compute_digest(md) != imprint["hashed_message"].native:
        return _replace(
            rep,
            verdict=r.INVALID,
            reason="digest_mismatch",
            detail=f"{note}; the timestamped bytes were changed",
        )
    return _apply_integrity(rep, failure)


def _replace(rep: SignatureReport, **changes) -> SignatureReport:
    if "verdict" in changes:
        changes["etsi"] = r.etsi_indication(changes["verdict"])
        if "detail" not in changes:
            changes["detail"] = rep.detail
    return replace(rep, **changes)
