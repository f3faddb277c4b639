"""XMLDSig (edXML header and other XML): signxml checks the signature, certvalidator the chain.

signxml's own chain check knows nothing of CRLs, so signxml is only given the signer's
certificate (from KeyInfo) to check the cryptography, and :func:`signing.chain.check_chain`
does the trust part exactly as for PDF and CMS.
"""

from __future__ import annotations

import base64
from datetime import datetime

from asn1crypto import x509 as asn1_x509
from cryptography import x509 as pyca_x509
from lxml import etree
from signxml import DigestAlgorithm, SignatureConfiguration, SignatureMethod, XMLVerifier
from signxml import exceptions as sx_errors

from signing import report as r
from signing.certinfo import signer_fields
from signing.chain import check_chain
from signing.report import SignatureReport
from signing.trust import TrustStore

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = ("http://uri.etsi.org/01903/v1.3.2#", "http://uri.etsi.org/01903/v1.4.1#")
_ANY_ALGORITHM = SignatureConfiguration(
    signature_methods=frozenset(SignatureMethod),
    digest_algorithms=frozenset(DigestAlgorithm),
    expect_references=True,
    location=".//",
)


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def _leaf(certs: list[asn1_x509.Certificate]) -> asn1_x509.Certificate | None:
    """The certificate that issued none of the others (KeyInfo order is not reliable)."""
    issuers = {c.issuer.dump() for c in certs}
    leaves = [c for c in certs if c.subject.dump() not in issuers or c.self_signed == "yes"]
    leaves = [c for c in leaves if c.self_signed != "yes"] or leaves
    return leaves[0] if leaves else (certs[0] if certs else None)


def _signing_time(sig: etree._Element) -> datetime | None:
    for ns in XADES:
        node = sig.find(f".//{{{ns}}}SigningTime")
        if node is not None and node.text:
            try:
                return datetime.fromisoformat(node.text.strip().replace("Z", "+00:00"))
            except ValueError:
                return None
    return None


def _weak(sig: etree._Element) -> str | None:
    for tag in ("SignatureMethod", "DigestMethod"):
        for node in sig.iter(f"{{{DS}}}{tag}"):
            algorithm = (node.get("Algorithm") or "").lower()
            if "sha1" in algorithm or "md5" in algorithm:
                return algorithm.rsplit("#", 1)[-1]
    return None


def verify_xml(data: bytes, trust: TrustStore) -> list[SignatureReport]:
    """Reports for the XMLDSig signatures in *data*; ``[]`` when it has none."""
    try:
        root = etree.fromstring(data, parser=_parser())
    except Exception as exc:
        if b"Signature" not in data:
            return []
        return [r.malformed("xmldsig", "malformed", f"not well-formed XML: {_short(exc)}")]
    signatures = root.findall(f".//{{{DS}}}Signature")
    if root.tag == f"{{{DS}}}Signature":
        signatures = [root]
    if not signatures:
        return []
    if len(signatures) > 1:
        note = f"{len(signatures)} signatures; only the first is checked"
    else:
        note = ""
    try:
        return [_verify_one(data, signatures[0], trust, note)]
    except Exception as exc:  # lxml/signxml on hostile input
        return [r.malformed("xmldsig", "malformed", f"{type(exc).__name__}: {_short(exc)}")]


def _verify_one(data: bytes, sig: etree._Element, trust: TrustStore, note: str) -> SignatureReport:
    certs = []
    for node in sig.iter(f"{{{DS}}}X509Certificate"):
        try:
            certs.append(asn1_x509.Certificate.load(base64.b64decode("".join(node.text.split()))))
        except Exception as exc:
            return r.malformed(
                "xmldsig", "bad_certificate", f"unreadable X509Certificate: {_short(exc)}"
            )
    leaf = _leaf(certs)
    if leaf is None:
        return r.malformed("xmldsig", "no_signer_certificate", "no X509Certificate in KeyInfo")
    references = [ref.get("URI") for ref in sig.iter(f"{{{DS}}}Reference")]
    whole = bool(references) and all(uri == "" for uri in references)
    signing_time = _signing_time(sig)
    base = {
        "format": "xmldsig",
        "covers_whole_file": whole,
        "signing_time": signing_time,
        "signing_time_source": "self-reported" if signing_time else None,
        **signer_fields(leaf),
    }
    prefix = f"{note}; " if note else ""
    try:
        XMLVerifier().verify(
            data,
            x509_cert=pyca_x509.load_der_x509_certificate(leaf.dump()),
            parser=_parser(),
            expect_config=_ANY_ALGORITHM,
        )
    except sx_errors.InvalidDigest as exc:
        return SignatureReport(
            **base,
            verdict=r.INVALID,
            reason="digest_mismatch",
            detail=f"{prefix}signed XML was changed: {_short(exc)}",
        )
    except (sx_errors.InvalidSignature, sx_errors.InvalidCertificate) as exc:
        return SignatureReport(
            **base, verdict=r.INVALID, reason="signature_mismatch", detail=f"{prefix}{_short(exc)}"
        )
    except Exception as exc:
        return SignatureReport(
            **base,
            verdict=r.MALFORMED,
            reason="malformed",
            detail=f"{prefix}{type(exc).__name__}: {_short(exc)}",
        )
    weak = _weak(sig)
    if weak:
        return SignatureReport(
            **base,
            verdict=r.INVALID,
            reason="weak_algorithm",
            detail=f"{prefix}uses {weak}, which is no longer accepted",
        )
    if not whole:
        prefix += "the signature covers only part of the XML; "
    moment = signing_time or datetime.now().astimezone()
    outcome = check_chain(leaf, certs, trust, moment)
    when = "" if signing_time else " (no signing time: checked now)"
    return SignatureReport(
        **base,
        verdict=outcome.verdict,
        reason=outcome.reason,
        detail=prefix + outcome.detail + when,
    )
