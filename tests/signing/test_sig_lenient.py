"""A signature asn1crypto's strict parser refuses is read leniently, and says so.

The signer's certificate carries an ETSI QcCompliance statement with an info value the
statement does not allow (real qualified certificates do this; DSS validates them). As a
non-critical extension it is skipped with a note; as a critical one the signature stays
malformed. The same reading serves PDF, detached CMS, enveloping CMS and S/MIME.
"""

from __future__ import annotations

import pytest

from signing import TrustStore, verify_document
from signing.smime import verify_smime_message
from tests.support.pki import Pki, make_pdf, make_smime_mail, odd_signer, sign_cms, sign_pdf

CONTENT = "Quyết định số 45/QĐ-UBND".encode()


def _verify(kind: str, signer, trust: TrustStore):
    if kind == "pdf":
        return verify_document(sign_pdf(make_pdf(), signer), "pdf", None, trust)
    if kind == "detached":
        return verify_document(sign_cms(CONTENT, signer), "cms", None, trust, CONTENT)
    if kind == "enveloping":
        return verify_document(sign_cms(CONTENT, signer, detached=False), "cms", None, trust)
    return verify_smime_message(make_smime_mail("Kính gửi", signer), trust)


@pytest.mark.parametrize("kind", ["pdf", "detached", "enveloping", "smime"])
def test_non_critical_oddity_is_skipped_and_named(kind: str, pki: Pki, trust: TrustStore):
    (rep,) = _verify(kind, odd_signer(pki), trust)
    assert (rep.verdict, rep.reason) == ("valid", None), rep.detail
    assert "lenient reading: non-critical extension qc_statements" in rep.detail
    assert "Đỗ Thị Lạ" in rep.detail and "ignored" in rep.detail
    assert rep.signer_cn == "Đỗ Thị Lạ" and rep.signer_kind == "personal"


@pytest.mark.parametrize("kind", ["pdf", "detached", "smime"])
def test_critical_oddity_stays_malformed(kind: str, pki: Pki, trust: TrustStore):
    (rep,) = _verify(kind, odd_signer(pki, critical=True), trust)
    assert (rep.verdict, rep.reason) == ("malformed", "malformed")
    assert "a lenient reading failed too" in rep.detail


def test_lenient_reading_does_not_excuse_tampering(pki: Pki, trust: TrustStore):
    p7s = sign_cms(CONTENT, odd_signer(pki))
    (rep,) = verify_document(p7s, "cms", None, trust, CONTENT + " (sửa)".encode())
    assert (rep.verdict, rep.reason) == ("invalid", "digest_mismatch")
