"""The inline entry points: bytes (or paths) in, reports out, never an exception.

Used directly by tests and ``edocgw check``, and inside each verification worker (gateway/processes/verify.py).
"""

from __future__ import annotations

from pathlib import Path

from signing import report as r
from signing.cms import verify_cms
from signing.pdf import verify_pdf
from signing.report import SignatureReport
from signing.smime import verify_smime
from signing.trust import TrustStore
from signing.xmldsig import verify_xml

_FORMAT_OF = {"pdf": "pdf", "cms": "cms", "edxml": "xmldsig", "xml": "xmldsig"}


def verify_document(
    data: bytes,
    detected_type: str,
    filename: str | None,
    trust: TrustStore,
    detached_content: bytes | None = None,
) -> list[SignatureReport]:
    """Reports for one document of mailparse's *detected_type*; other types give ``[]``.

    For ``cms`` with *detached_content* (the file a ``.p7s``/``.sig`` signs) the signature is
    detached; otherwise it must be an enveloping ``.p7m``. *filename* only enriches details.
    """
    fmt = _FORMAT_OF.get(detected_type)
    if fmt is None:
        return []
    try:
        if fmt == "pdf":
            return verify_pdf(data, trust)
        if fmt == "cms":
            return verify_cms(data, trust, detached_content)
        return verify_xml(data, trust)
    except Exception as exc:  # a bug or a file nobody foresaw: still a report
        name = f"{filename}: " if filename else ""
        return [r.malformed(fmt, "malformed", f"{name}{type(exc).__name__}: {exc}")]


def verify_file(
    path: str | Path | bytes,
    detected_type: str,
    filename: str | None,
    trust: TrustStore,
    detached_path: str | Path | bytes | None = None,
) -> list[SignatureReport]:
    """:func:`verify_document` on files (how a pool worker gets its job); a small part
    comes as its bytes instead of a path."""
    fmt = _FORMAT_OF.get(detected_type, "cms")
    try:
        data = _read(path)
        detached = _read(detached_path) if detached_path is not None else None
    except OSError as exc:
        return [r.malformed(fmt, "unreadable_file", f"cannot read {exc.filename}: {exc.strerror}")]
    return verify_document(data, detected_type, filename, trust, detached)


def verify_smime_files(
    signature_path: str | Path | bytes,
    signed_path: str | Path | bytes | None,
    trust: TrustStore,
) -> list[SignatureReport]:
    """:func:`verify_smime` on spooled files (or the bytes of small ones)."""
    try:
        signature = _read(signature_path)
        signed = _read(signed_path) if signed_path is not None else None
    except OSError as exc:
        return [
            r.malformed("smime", "unreadable_file", f"cannot read {exc.filename}: {exc.strerror}")
        ]
    try:
        return verify_smime(signature, signed, trust)
    except Exception as exc:
        return [r.malformed("smime", "malformed", f"{type(exc).__name__}: {exc}")]


def _read(source: str | Path | bytes) -> bytes:
    """A spooled file's bytes, or the bytes themselves."""
    return source if isinstance(source, bytes) else Path(source).read_bytes()
