"""CMS SignedData: the checks shared by every format, and detached / enveloping CMS files.

A PDF signature, a ``.p7s``, a ``.p7m`` and an S/MIME signature are all CMS SignedData;
:func:`check_signed_data` turns one into reports (integrity, algorithm, signing time, chain)
and the format modules add what is specific to them (PDF coverage, MIME canonical form).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from datetime import UTC, datetime

from asn1crypto import cms, x509
from asn1crypto.core import Asn1Value
from pyhanko.sign.general import get_pyca_cryptography_hash
from pyhanko.sign.validation import errors as val_errors
from pyhanko.sign.validation.generic_cms import (
    collect_timing_info,
    validate_sig_integrity,
)

from signing import report as r
from signing._memo import Memo
from signing._sync import run_sync
from signing.certinfo import signer_fields
from signing.chain import WEAK_HASHES, check_chain
from signing.report import SignatureReport
from signing.trust import TrustStore

_PEM = re.compile(rb"-----BEGIN (?:PKCS7|CMS|SIGNED DATA)-----(.*?)-----END", re.S)
_B64 = re.compile(rb"^[A-Za-z0-9+/=\s]+$")


class CmsParseError(ValueError):
    """Not a CMS SignedData (the reason is in the message)."""


def parse_signed_data(data: bytes, *, padded: bool = False) -> cms.SignedData:
    """DER, PEM or bare base64 to a fully parsed SignedData, or :class:`CmsParseError`.
    *padded*: trailing bytes are allowed (a PDF's /Contents is zero-padded)."""
    return read_signed_data(data, padded=padded, lenient=False)[0]


def read_signed_data(
    data: bytes, *, padded: bool = False, lenient: bool = True
) -> tuple[cms.SignedData, list[str]]:
    """Like :func:`parse_signed_data`, but when asn1crypto's strict full parse refuses a part
    that verification does not need (a non-critical certificate extension such as a
    malformed QcStatements, an odd optional signed attribute, an OCSP response in Adobe's
    revocation archive), read the rest and say what was skipped: real signers produce such
    files and DSS validates them. Returns the SignedData and those notes (empty when strict)."""
    data = data.strip() if not data[:1] == b"\x30" else data
    if m := _PEM.search(data):
        data = _b64(m.group(1))
    elif data[:1] != b"\x30" and _B64.match(data[:4096]):
        data = _b64(data)
    try:
        info = cms.ContentInfo.load(data, strict=not padded)
        kind = info["content_type"].native
        if kind != "signed_data":
            raise CmsParseError(f"CMS content type is {kind}, not signed-data")
        sd = info["content"]
    except CmsParseError:
        raise
    except Exception as exc:
        raise CmsParseError(f"not a CMS structure: {type(exc).__name__}: {_short(exc)}") from None
    return sd, settle_signed_data(sd, lenient=lenient)


def settle_signed_data(sd: cms.SignedData, *, lenient: bool = True) -> list[str]:
    """Parse *sd* in full now, in place, strictly or (with *lenient*) skipping what
    verification does not need; returns the notes of what was skipped, raises
    :class:`CmsParseError`. In place, so a caller that already holds a loaded SignedData
    (pyHanko's, for a PDF signature) does not load and parse the same bytes a second time."""
    notes: list[str] = []
    try:
        _strict_parse(sd)
    except Exception as exc:
        if not lenient:
            raise CmsParseError(
                f"not a CMS structure: {type(exc).__name__}: {_short(exc)}"
            ) from None
        try:
            notes = _lenient_parse(sd)
        except Exception as again:
            raise CmsParseError(
                f"not a CMS structure: {type(exc).__name__}: {_short(exc)} "
                f"(a lenient reading failed too: {_short(again)})"
            ) from None
    if len(sd["signer_infos"]) == 0:
        raise CmsParseError("CMS SignedData has no signer")
    return notes


def _strict_parse(sd: cms.SignedData) -> None:
    """Force a full parse now, so that truncation shows up here and not mid-validation.

    A certificate, a signed attribute or a signer identifier whose exact bytes parsed
    before is not parsed again: an agency signs its documents with the same few
    certificates, so their full parse (a quarter of the time of verifying a signed PDF),
    that of the signingCertificateV2 attribute naming them (a tenth) and that of the
    issuer's name in the signer identifier (half of what was left: 155 -> 78 us per
    signature) are repeated work."""
    for signer_info in sd["signer_infos"]:
        for attr in signer_info["signed_attrs"]:
            _parse_once(attr)
        _parse_once(signer_info["sid"])
    for cert in sd["certificates"]:
        _parse_once(cert)
    sd["encap_content_info"]["content_type"].native  # noqa: B018


def _parse_once(value: Asn1Value) -> None:
    """Parse *value* in full (asn1crypto's `.native`), unless the same DER did before."""
    der = value.dump()
    if der in _PARSED:
        return
    value.native  # noqa: B018
    _PARSED.put(der, True)


# DER of values that parsed in full, per process.
_PARSED: Memo[bytes, bool] = Memo(512)


# Signed attributes a verification reads: these must parse, whatever else is skipped.
_NEEDED_ATTRS = frozenset({"content_type", "message_digest", "signing_time"})
_TBS_FIELDS = (
    "version",
    "serial_number",
    "signature",
    "issuer",
    "validity",
    "subject",
    "subject_public_key_info",
)


def _lenient_parse(sd: cms.SignedData) -> list[str]:
    """Parse what verification needs strictly and the rest part by part; returns one note
    per part skipped. Raises when a needed part (a signer's identifier, algorithms,
    content type or message digest, a certificate's body, a critical extension) is broken."""
    notes: list[str] = []
    sd["encap_content_info"]["content_type"].native  # noqa: B018
    for signer_info in sd["signer_infos"]:
        for key in ("sid", "digest_algorithm", "signature_algorithm", "signature"):
            signer_info[key].native  # noqa: B018
        for where in ("signed_attrs", "unsigned_attrs"):
            for attr in signer_info[where]:
                kind = attr["type"].native
                try:
                    attr["values"].native  # noqa: B018
                except Exception as exc:
                    if where == "signed_attrs" and kind in _NEEDED_ATTRS:
                        raise
                    label = where.replace("_attrs", "")
                    notes.append(f"{label} attribute {kind} unreadable ({_first(exc)}), ignored")
    for index, choice in enumerate(sd["certificates"]):
        try:
            choice.native  # noqa: B018
            continue
        except Exception as exc:
            if choice.name != "certificate":
                notes.append(f"{choice.name} #{index + 1} unreadable ({_first(exc)}), ignored")
                continue
        tbs = choice.chosen["tbs_certificate"]
        for key in _TBS_FIELDS:
            tbs[key].native  # noqa: B018
        subject = choice.chosen.subject
        who = str(subject.native.get("common_name") or subject.human_friendly)[:80]
        for ext in tbs["extensions"]:
            try:
                ext.native  # noqa: B018
            except Exception as exc:
                if ext["critical"].native:
                    raise
                notes.append(
                    f"non-critical extension {ext['extn_id'].native} of the certificate of "
                    f"{who} unreadable ({_first(exc)}), ignored"
                )
    try:
        sd["crls"].native  # noqa: B018
    except Exception as exc:
        notes.append(f"embedded revocation data unreadable ({_first(exc)}), ignored")
    return notes


def _first(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:120]


def _b64(text: bytes) -> bytes:
    try:
        return base64.b64decode(b"".join(text.split()), validate=True)
    except binascii.Error as exc:
        raise CmsParseError(f"bad base64: {exc}") from None


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def encapsulated_content(sd: cms.SignedData) -> bytes | None:
    content = sd["encap_content_info"]["content"]
    if content.native is None:
        return None
    value = content.native
    return value if isinstance(value, bytes) else content.contents


def extract_p7m_content(data: bytes) -> bytes | None:
    """The inner content of an enveloping ``.p7m`` (so it can be classified), else None."""
    try:
        return encapsulated_content(read_signed_data(data)[0])
    except Exception:
        return None


def _signer_cert(sd: cms.SignedData, signer_info: cms.SignerInfo):
    certs = [_shared(c.chosen) for c in sd["certificates"] if c.name == "certificate"]
    sid = signer_info["sid"]
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            # the serial first, and the issuer's bytes before its slow RFC 4518 comparison
            issuer = sid.chosen["issuer"]
            if cert.serial_number == sid.chosen["serial_number"].native and (
                cert.issuer.dump() == issuer.dump() or cert.issuer == issuer
            ):
                return cert, certs
        elif cert.key_identifier == sid.chosen.native:
            return cert, certs
    return None, certs


def _shared(cert: x509.Certificate) -> x509.Certificate:
    """The one parsed object of this process for *cert*'s exact DER. An agency's few
    certificates come in every document it signs; asn1crypto keeps what it has read of an
    object (serial, issuer, key, validity), so the signer lookup, the signing-certificate
    attribute check and the chain memo read them once, not once per document."""
    der = cert.dump()
    known = _CERTS.get(der)
    return known if known is not None else _CERTS.put(der, cert)


# Certificates met in signatures, by DER, per process: the objects themselves (`_PARSED` only
# records which DER parsed in full, and may hold a certificate a lenient reading skipped).
_CERTS: Memo[bytes, x509.Certificate] = Memo(128)  # about 40 KB each, parsed


def _weak(signer_info: cms.SignerInfo) -> str | None:
    md = signer_info["digest_algorithm"]["algorithm"].native
    if md in WEAK_HASHES:
        return md
    sig_algo = signer_info["signature_algorithm"]["algorithm"].native
    for weak in WEAK_HASHES:
        if str(sig_algo).startswith(weak + "_"):
            return weak
    return None


def digest_of(content: bytes) -> Callable[[str], bytes]:
    def compute(md: str) -> bytes:
        from cryptography.hazmat.primitives import hashes

        h = hashes.Hash(get_pyca_cryptography_hash(md))
        h.update(content)
        return h.finalize()

    return compute


def check_signed_data(
    sd: cms.SignedData,
    *,
    fmt: str,
    digest: Callable[[str], bytes],
    trust: TrustStore,
    expected_content_type: str = "data",
    covers_whole_file: bool | None = None,
    fallback_time: datetime | None = None,
    note: str = "",
) -> list[SignatureReport]:
    """One report per SignerInfo. *digest(md_name)* hashes the signed content."""
    return [
        _check_one(
            sd,
            si,
            fmt=fmt,
            digest=digest,
            trust=trust,
            expected_content_type=expected_content_type,
            covers_whole_file=covers_whole_file,
            fallback_time=fallback_time,
            note=note,
        )
        for si in sd["signer_infos"]
    ]


def _check_one(
    sd,
    signer_info,
    *,
    fmt,
    digest,
    trust,
    expected_content_type,
    covers_whole_file,
    fallback_time,
    note,
) -> SignatureReport:
    cert, certs = _signer_cert(sd, signer_info)
    base = {"format": fmt, "covers_whole_file": covers_whole_file, **signer_fields(cert)}
    prefix = f"{note}; " if note else ""
    if cert is None:
        return r.malformed(
            fmt,
            "no_signer_certificate",
            prefix + "the signer's certificate is not in the signature",
            covers_whole_file=covers_whole_file,
        )
    md = signer_info["digest_algorithm"]["algorithm"].native
    unsupported = _unsupported_algorithm(signer_info)
    if unsupported:
        return _unsupported_report(base, signer_info, digest, md, unsupported, prefix)
    try:
        actual = digest(md)
        intact, valid = validate_sig_integrity(signer_info, cert, expected_content_type, actual)
    except val_errors.SignatureValidationError as exc:
        return SignatureReport(
            **base,
            verdict=r.INVALID,
            reason="bad_signed_attributes",
            detail=prefix + _short(exc.failure_message),
        )
    except Exception as exc:
        return SignatureReport(
            **base,
            verdict=r.MALFORMED,
            reason="malformed",
            detail=f"{prefix}cannot check the signature: {type(exc).__name__}: {_short(exc)}",
        )
    signing_time, source, ts_note, ts_bad = _timing(signer_info, digest, trust)
    if signing_time is None:
        signing_time, source = fallback_time, ("self-reported" if fallback_time else None)
    if signing_time is not None and signing_time.tzinfo is None:
        signing_time = signing_time.replace(tzinfo=UTC)
    base.update(signing_time=signing_time, signing_time_source=source)
    if not intact:
        return SignatureReport(
            **base,
            verdict=r.INVALID,
            reason="digest_mismatch",
            detail=prefix + "the signed content was changed after signing",
        )
    if not valid:
        return SignatureReport(
            **base,
            verdict=r.INVALID,
            reason="signature_mismatch",
            detail=prefix + "the signature value does not match the signer's key",
        )
    if ts_bad:
        return SignatureReport(
            **base, verdict=r.INVALID, reason="timestamp_invalid", detail=prefix + ts_note
        )
    moment = signing_time or datetime.now(UTC)
    outcome = check_chain(cert, certs, trust, moment)
    when = "" if signing_time else " (no signing time: checked now)"
    detail = "; ".join(x for x in (note, outcome.detail + when, ts_note) if x)
    weak = _weak(signer_info)
    if weak and outcome.verdict not in _FAILED_CHAIN:
        # intact, but the algorithm no longer proves it: ETSI INDETERMINATE
        # (CRYPTO_CONSTRAINTS_FAILURE_NO_POE) unless the operator asks for invalid
        said = f"signed with {weak.upper()}, a weak algorithm (the content is intact)"
        return SignatureReport(
            **base,
            verdict=trust.weak_algorithms,
            reason="weak_algorithm",
            detail="; ".join(x for x in (note, said, outcome.detail + when, ts_note) if x),
        )
    return SignatureReport(**base, verdict=outcome.verdict, reason=outcome.reason, detail=detail)


# Chain results that outrank a weak algorithm: they fail the signature on their own.
_FAILED_CHAIN = frozenset({r.REVOKED, r.EXPIRED, r.INVALID, r.MALFORMED})


def _unsupported_algorithm(signer_info: cms.SignerInfo) -> str | None:
    """The dotted OID of a signature algorithm asn1crypto does not know (SHA-3 with RSA,
    BSI plain ECDSA, a curve OID put where an algorithm belongs), else None. Such a
    signature cannot be checked here, which does not make it a forgery."""
    algo = signer_info["signature_algorithm"]["algorithm"]
    return algo.dotted if algo.native == algo.dotted else None


def _unsupported_report(base, signer_info, digest, md, oid: str, prefix: str) -> SignatureReport:
    """``indeterminate``/``unsupported_algorithm``, or ``invalid`` when the signed message
    digest shows the content was changed (that part needs no signature algorithm)."""
    claimed = None
    for attr in signer_info["signed_attrs"]:
        if attr["type"].native == "message_digest":
            claimed = attr["values"][0].native
    try:
        actual = digest(md)
    except Exception:
        actual = None
    if claimed is not None and actual is not None and claimed != actual:
        return SignatureReport(
            **base,
            verdict=r.INVALID,
            reason="digest_mismatch",
            detail=prefix + "the signed content was changed after signing",
        )
    intact = "the content digest matches; " if claimed is not None and actual else ""
    return SignatureReport(
        **base,
        verdict=r.INDETERMINATE,
        reason="unsupported_algorithm",
        detail=f"{prefix}{intact}signature algorithm {oid} is not supported, so the signature "
        "value cannot be checked",
    )


def _timing(signer_info, digest, trust: TrustStore):
    """(time, source, note, timestamp_broken). A signature timestamp from a trusted TSA
    beats the self-reported signingTime; revocation of the TSA is not required."""
    try:
        # a context (the trust anchors indexed anew) only for a timestamp to validate
        ctx = (
            trust.context(datetime.now(UTC), check_revocation=False)
            if _has_timestamp(signer_info)
            else None
        )
        info = run_sync(collect_timing_info(signer_info, ctx, raw_digest=digest))
    except Exception as exc:
        return None, None, f"timestamp unreadable: {_short(exc)}", False
    tst = info.get("timestamp_validity")
    reported = info.get("signer_reported_dt")
    if tst is not None:
        if not (tst.intact and tst.valid):
            return (
                reported,
                "self-reported" if reported else None,
                "the signature timestamp does not match the signature",
                True,
            )
        if tst.trusted:
            return tst.timestamp, "timestamp", "", False
        note = "signature timestamp from an untrusted TSA ignored"
        return reported, "self-reported" if reported else None, note, False
    return reported, "self-reported" if reported else None, "", False


def verify_cms(
    data: bytes, trust: TrustStore, detached_content: bytes | None = None
) -> list[SignatureReport]:
    """A ``.p7s``/``.sig`` (with *detached_content*, the file it signs) or a ``.p7m``."""
    try:
        sd, lenient = read_signed_data(data)
    except CmsParseError as exc:
        return [r.malformed("cms", "malformed", str(exc))]
    inner = encapsulated_content(sd)
    notes = [f"lenient reading: {n}" for n in lenient]
    if inner is not None and detached_content is not None and inner != detached_content:
        notes.append("enveloped content checked; the paired file differs from it")
    note = "; ".join(notes)
    content = inner if inner is not None else detached_content
    if content is None:
        return [
            r.malformed(
                "cms", "detached_content_missing", "detached signature without the file it signs"
            )
        ]
    ctype = sd["encap_content_info"]["content_type"].native
    return check_signed_data(
        sd,
        fmt="cms",
        digest=digest_of(content),
        trust=trust,
        expected_content_type=ctype,
        covers_whole_file=True,
        note=note,
    )


_TIMESTAMP_ATTRS = frozenset({"signature_time_stamp_token", "content_time_stamp"})


def _has_timestamp(signer_info: cms.SignerInfo) -> bool:
    """Whether *signer_info* carries a signature or content timestamp token."""
    return any(
        a["type"].native in _TIMESTAMP_ATTRS
        for where in ("unsigned_attrs", "signed_attrs")
        for a in signer_info[where]
    )
