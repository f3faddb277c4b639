"""Who signed: the report fields taken from a signer certificate (asn1crypto)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from asn1crypto import x509

from signing._memo import Memo

_UID_PREFIX = re.compile(r"\b(CMND|CCCD|MST|MNS|HC|BHXH)\s*:\s*\S+", re.IGNORECASE)


def _attr(name: x509.Name, key: str) -> str | None:
    values = [
        v for rdn in name.chosen for attr in rdn for v in [attr] if attr["type"].native == key
    ]
    if not values:
        return None
    return str(values[-1]["value"].native)


def _uid(subject: x509.Name) -> str | None:
    """Vietnamese CAs put the identity number in UID (0.9.2342.19200300.100.1.1) as
    ``CMND:…``/``CCCD:…``/``MST:…``/``MNS:…``; some put it in another attribute, so look
    at every value for a known prefix before falling back to the raw UID."""
    raw_uid = _attr(subject, "user_id")
    for rdn in subject.chosen:
        for attr in rdn:
            value = attr["value"].native
            if isinstance(value, str) and (m := _UID_PREFIX.search(value)):
                return m.group(0).replace(" ", "")
    return raw_uid


_PERSONAL_UID = re.compile(r"^(CMND|CCCD|HC)\s*:", re.IGNORECASE)
_ORGANISATION_UID = re.compile(r"^(MST|MNS)\s*:", re.IGNORECASE)


def signer_kind(uid: str | None, cn: str | None, *, has_person_names: bool = False) -> str | None:
    """``personal``, ``organisation`` or None (cannot tell), as Decree 30 reads a certificate:
    a personal identifier (UID ``CMND:``/``CCCD:``/``HC:``, or a given name and surname) makes
    it personal; ``MST:``/``MNS:``, or no personal identifier and a CN that names an
    organisation, makes it an organisation's."""
    from signing.names import names_organisation

    if uid and _ORGANISATION_UID.match(uid):
        return "organisation"
    if (uid and _PERSONAL_UID.match(uid)) or has_person_names:
        return "personal"
    if cn and names_organisation(cn):
        return "organisation"
    return None


def signer_fields(cert: x509.Certificate | None) -> dict[str, Any]:
    """The identity fields of :class:`~signing.report.SignatureReport` for *cert* (remembered
    by its bytes: an agency signs with a few certificates, each a fresh object per file)."""
    if cert is None:
        return {}
    der = cert.dump()
    known = _FIELDS.get(der)
    if known is None:
        known = _FIELDS.put(der, _read_fields(cert))
    return dict(known)


_FIELDS: Memo[bytes, dict[str, Any]] = Memo(512)


def _read_fields(cert: x509.Certificate) -> dict[str, Any]:
    try:
        subject, issuer = cert.subject, cert.issuer
        cn, uid = _attr(subject, "common_name"), _uid(subject)
        person = bool(_attr(subject, "given_name") and _attr(subject, "surname"))
        return {
            "signer_cn": cn,
            "signer_o": _attr(subject, "organization_name"),
            "signer_uid": uid,
            "signer_kind": signer_kind(uid, cn, has_person_names=person),
            "serial": format(cert.serial_number, "x"),
            "issuer_cn": _attr(issuer, "common_name"),
            "cert_sha256": hashlib.sha256(cert.dump()).hexdigest(),
        }
    except Exception:  # a certificate too broken to describe still gets its hash
        return {"cert_sha256": hashlib.sha256(cert.dump()).hexdigest()}
