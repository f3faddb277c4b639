"""Enveloped XMLDSig made by signxml; the chain is checked by certvalidator with CRLs."""

from __future__ import annotations

import pytest

from signing import TrustStore, verify_document
from tests.support.pki import Pki, make_edxml, sign_xml


def only(reports):
    assert len(reports) == 1, reports
    return reports[0]


@pytest.mark.parametrize("signer", ["person", "agency"])
def test_edxml_signature_valid(pki: Pki, trust: TrustStore, signer: str):
    rep = only(verify_document(sign_xml(make_edxml(), pki.signer(signer)), "edxml", None, trust))
    assert (rep.format, rep.verdict, rep.reason, rep.covers_whole_file) == (
        "xmldsig",
        "valid",
        None,
        True,
    )


def test_edxml_tampered(pki: Pki, trust: TrustStore):
    signed = sign_xml(make_edxml("V/v kiểm thử"), pki.signer("person"))
    tampered = signed.replace("kiểm thử".encode(), "kiểm tra".encode())
    rep = only(verify_document(tampered, "edxml", None, trust))
    assert (rep.verdict, rep.reason) == ("invalid", "digest_mismatch")


def test_xml_revoked_signer_uses_crls(pki: Pki, trust: TrustStore):
    rep = only(verify_document(sign_xml(make_edxml(), pki.signer("revoked")), "xml", None, trust))
    assert (rep.verdict, rep.reason) == ("revoked", "revoked")


def test_xml_unknown_ca(pki: Pki, trust: TrustStore):
    rep = only(verify_document(sign_xml(make_edxml(), pki.signer("stranger")), "xml", None, trust))
    assert (rep.verdict, rep.reason) == ("untrusted", "no_path")


def test_unsigned_and_broken_xml(trust: TrustStore):
    assert verify_document(make_edxml(), "edxml", None, trust) == []
    rep = only(verify_document(b"<a><Signature>", "xml", None, trust))
    assert rep.verdict == "malformed"
