"""S/MIME: ``multipart/signed`` (detached signature over the raw first part) and
``application/pkcs7-mime`` signed-data (enveloping).

The signature covers the signed part's bytes exactly as they came over the wire, so the
caller passes those raw bytes; re-serialising the part with :mod:`email` changes header
folding and line ends and breaks good signatures. The only transformation tried here is
the one RFC 8551 §3.1.1 defines as canonical: bare LF → CRLF, for a store that dropped CRs.
"""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.parser import BytesHeaderParser

from signing import report as r
from signing.cms import (
    CmsParseError,
    check_signed_data,
    digest_of,
    encapsulated_content,
    read_signed_data,
)
from signing.report import SignatureReport
from signing.trust import TrustStore

_BARE_LF = re.compile(rb"(?<!\r)\n")


def verify_smime(
    signature: bytes, signed_bytes: bytes | None, trust: TrustStore
) -> list[SignatureReport]:
    """*signature*: the ``application/pkcs7-signature`` part decoded (DER, or base64/PEM),
    with *signed_bytes* the raw signed part; or a whole ``pkcs7-mime`` signed-data with
    *signed_bytes* None."""
    try:
        sd, lenient = read_signed_data(signature)
    except CmsParseError as exc:
        return [r.malformed("smime", "malformed", str(exc))]
    note = "; ".join(f"lenient reading: {n}" for n in lenient)
    content = signed_bytes if signed_bytes is not None else encapsulated_content(sd)
    if content is None:
        return [
            r.malformed(
                "smime",
                "detached_content_missing",
                "detached S/MIME signature without the signed part",
            )
        ]
    ctype = sd["encap_content_info"]["content_type"].native
    reports = check_signed_data(
        sd,
        fmt="smime",
        digest=digest_of(content),
        trust=trust,
        expected_content_type=ctype,
        covers_whole_file=True,
        note=note,
    )
    if any(rep.reason == "digest_mismatch" for rep in reports) and _BARE_LF.search(content):
        canonical = _BARE_LF.sub(b"\r\n", content)
        retry = check_signed_data(
            sd,
            fmt="smime",
            digest=digest_of(canonical),
            trust=trust,
            expected_content_type=ctype,
            covers_whole_file=True,
            note="; ".join(
                x for x in (note, "checked in canonical form (bare LF line ends made CRLF)") if x
            ),
        )
        if all(rep.reason != "digest_mismatch" for rep in retry):
            return retry
    return reports


def split_smime(raw_message: bytes) -> tuple[bytes, bytes | None] | None:
    """(signature, signed_bytes) of a top-level S/MIME message as raw bytes, or None.

    For ``multipart/signed`` the signed part is cut out of *raw_message* byte for byte
    (between the first delimiter line and the CRLF that belongs to the next one)."""
    headers = BytesHeaderParser(policy=policy.compat32).parsebytes(raw_message)
    ctype = headers.get_content_type()
    if ctype == "multipart/signed":
        boundary = headers.get_param("boundary")
        if not boundary:
            return None
        body_start = _body_offset(raw_message)
        delim = b"--" + str(boundary).encode("utf-8", "surrogateescape")
        first = raw_message.find(delim, body_start)
        if first < 0:
            return None
        start = raw_message.find(b"\n", first) + 1
        nxt = re.compile(rb"\r?\n" + re.escape(delim)).search(raw_message, start)
        if start <= 0 or nxt is None:
            return None
        signed = raw_message[start : nxt.start()]
        message = message_from_bytes(raw_message, policy=policy.compat32)
        parts = message.get_payload()
        if not isinstance(parts, list) or len(parts) < 2:
            return None
        sig_part = parts[1]
        if isinstance(sig_part, str):
            return None
        signature = sig_part.get_payload(decode=True)
        return (signature, signed) if isinstance(signature, bytes) and signature else None
    if ctype in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
        message = message_from_bytes(raw_message, policy=policy.compat32)
        payload = message.get_payload(decode=True)
        return (payload, None) if isinstance(payload, bytes) and payload else None
    return None


def _body_offset(raw: bytes) -> int:
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = raw.find(sep)
        if i >= 0:
            return i + len(sep)
    return len(raw)


def verify_smime_message(raw_message: bytes, trust: TrustStore) -> list[SignatureReport]:
    """Reports for a whole raw message; ``[]`` when it is not S/MIME signed at top level."""
    try:
        split = split_smime(raw_message)
    except Exception as exc:
        return [r.malformed("smime", "malformed", f"cannot split the S/MIME message: {exc}")]
    if split is None:
        return []
    return verify_smime(split[0], split[1], trust)
