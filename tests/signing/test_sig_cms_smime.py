"""CMS (.p7s detached, .p7m enveloping) and S/MIME made by the openssl command line."""

from __future__ import annotations

import base64

import pytest

from signing import TrustStore, extract_p7m_content, split_smime, verify_document, verify_smime
from signing.sign import sign_smime
from signing.smime import verify_smime_message
from tests.support.pki import Pki, make_pki, make_smime_mail, sign_cms

CONTENT = "Quyết định số 30/2020/QĐ-UBND, bản chính.\n".encode()


def only(reports):
    assert len(reports) == 1, reports
    return reports[0]


def flip(data: bytes, needle: bytes) -> bytes:
    at = data.index(needle)
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize("pem", [False, True])
def test_detached_cms_valid(pki: Pki, trust: TrustStore, pem: bool):
    p7s = sign_cms(CONTENT, pki.signer("person"), pem=pem)
    rep = only(verify_document(p7s, "cms", "qd.pdf.p7s", trust, detached_content=CONTENT))
    assert (rep.format, rep.verdict, rep.reason) == ("cms", "valid", None)
    assert rep.signer_uid == "CCCD:072099001234"


def test_detached_cms_tampered(pki: Pki, trust: TrustStore):
    p7s = sign_cms(CONTENT, pki.signer("person"))
    rep = only(verify_document(p7s, "cms", None, trust, detached_content=flip(CONTENT, b"30")))
    assert (rep.verdict, rep.reason) == ("invalid", "digest_mismatch")


def test_detached_cms_without_its_file_is_malformed(pki: Pki, trust: TrustStore):
    rep = only(verify_document(sign_cms(CONTENT, pki.signer("person")), "cms", None, trust))
    assert (rep.verdict, rep.reason) == ("malformed", "detached_content_missing")


def test_enveloping_p7m_valid_and_content_extracted(pki: Pki, trust: TrustStore):
    p7m = sign_cms(CONTENT, pki.signer("agency"), detached=False)
    assert extract_p7m_content(p7m) == CONTENT
    rep = only(verify_document(p7m, "cms", "qd.pdf.p7m", trust))
    assert (rep.verdict, rep.signer_cn) == ("valid", "UBND tỉnh Tây Ninh")


def test_enveloping_p7m_tampered(pki: Pki, trust: TrustStore):
    p7m = sign_cms(CONTENT, pki.signer("agency"), detached=False)
    rep = only(verify_document(flip(p7m, "Quyết".encode()), "cms", None, trust))
    assert (rep.verdict, rep.reason) == ("invalid", "digest_mismatch")


def test_cms_sha1_is_weak(pki: Pki, trust: TrustStore):
    """Intact but SHA-1: ETSI INDETERMINATE (CRYPTO_CONSTRAINTS_FAILURE_NO_POE) by default,
    invalid when the operator says so; a changed file stays invalid either way."""
    p7s = sign_cms(CONTENT, pki.signer("person"), md="sha1")
    rep = only(verify_document(p7s, "cms", None, trust, detached_content=CONTENT))
    assert (rep.verdict, rep.reason, rep.etsi) == (
        "indeterminate",
        "weak_algorithm",
        "INDETERMINATE",
    )
    strict = TrustStore.load(pki.anchors, pki.crls, weak_algorithms="invalid")
    rep = only(verify_document(p7s, "cms", None, strict, detached_content=CONTENT))
    assert (rep.verdict, rep.reason) == ("invalid", "weak_algorithm")
    changed = CONTENT.replace(b"30", b"31", 1)
    rep = only(verify_document(p7s, "cms", None, trust, detached_content=changed))
    assert (rep.verdict, rep.reason) == ("invalid", "digest_mismatch")


def test_cms_revoked_signer(pki: Pki, trust: TrustStore):
    p7s = sign_cms(CONTENT, pki.signer("revoked"))
    rep = only(verify_document(p7s, "cms", None, trust, detached_content=CONTENT))
    assert (rep.verdict, rep.reason) == ("revoked", "revoked")


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_cms_is_malformed(pki: Pki, trust: TrustStore, cut: float):
    p7s = sign_cms(CONTENT, pki.signer("person"))
    rep = only(verify_document(p7s[: int(len(p7s) * cut)], "cms", None, trust, CONTENT))
    assert (rep.verdict, rep.reason) == ("malformed", "malformed")


def test_garbage_cms_is_malformed(trust: TrustStore):
    rep = only(verify_document(b"\x30\x82garbage" * 10, "cms", None, trust, CONTENT))
    assert rep.verdict == "malformed"
    assert extract_p7m_content(b"not cms") is None


def test_other_types_have_no_signatures(trust: TrustStore):
    assert verify_document(b"PK\x03\x04", "docx", "a.docx", trust) == []


# ------------------------------------------------------------------ S/MIME


def test_smime_multipart_signed_valid_on_raw_bytes(pki: Pki, trust: TrustStore):
    raw = make_smime_mail("Kính gửi: UBND tỉnh Tây Ninh\nNội dung công văn.", pki.signer("person"))
    signature, signed = split_smime(raw)
    assert signed is not None and signed in raw  # cut byte for byte out of the message
    rep = only(verify_smime(signature, signed, trust))
    assert (rep.format, rep.verdict, rep.covers_whole_file) == ("smime", "valid", True)


def test_smime_multipart_signed_tampered(pki: Pki, trust: TrustStore):
    raw = make_smime_mail("Nội dung công văn số 15.", pki.signer("person"))
    rep = only(verify_smime_message(raw.replace(b"15.", b"16."), trust))
    assert (rep.verdict, rep.reason) == ("invalid", "digest_mismatch")


def test_smime_stored_with_bare_lf_is_checked_in_canonical_form(pki: Pki, trust: TrustStore):
    raw = make_smime_mail("Dòng một.\nDòng hai.", pki.signer("person"))
    rep = only(verify_smime_message(raw.replace(b"\r\n", b"\n"), trust))
    assert rep.verdict == "valid"
    assert "canonical" in rep.detail


@pytest.mark.parametrize("signer", ["person", "agency"])
def test_smime_pkcs7_mime_valid(pki: Pki, trust: TrustStore, signer: str):
    raw = make_smime_mail("Nội dung.", pki.signer(signer), opaque=True)
    signature, signed = split_smime(raw)
    assert signed is None
    assert (only(verify_smime(signature, None, trust)).verdict) == "valid"


def test_smime_pkcs7_mime_tampered(pki: Pki, trust: TrustStore):
    raw = make_smime_mail("Nội dung công văn.", pki.signer("agency"), opaque=True)
    signature, _ = split_smime(raw)
    rep = only(verify_smime(flip(signature, "công".encode()), None, trust))
    assert (rep.verdict, rep.reason) == ("invalid", "digest_mismatch")


def test_smime_base64_signature_is_accepted(pki: Pki, trust: TrustStore):
    raw = make_smime_mail("Nội dung.", pki.signer("person"))
    signature, signed = split_smime(raw)
    assert only(verify_smime(base64.encodebytes(signature), signed, trust)).verdict == "valid"


def test_smime_garbage_signature(trust: TrustStore):
    rep = only(verify_smime(b"garbage", b"body", trust))
    assert (rep.format, rep.verdict) == ("smime", "malformed")


def test_gateway_receipt_signature_round_trip(pki: Pki, trust: TrustStore):
    agency = pki.signer("agency")
    entity = "Content-Type: text/plain; charset=utf-8\r\n\r\nBiên nhận văn bản.\r\n".encode()
    signed = sign_smime(entity, agency.cert_pem + agency.chain_pem, agency.key_pem)
    message = b"From: edocgw@localhost\r\nTo: vanthu@tayninh.gov.vn\r\n" + signed
    rep = only(verify_smime_message(message, trust))
    assert (rep.verdict, rep.signer_cn) == ("valid", "UBND tỉnh Tây Ninh")
    tampered = message.replace("nhận".encode(), "nhân".encode())
    assert only(verify_smime_message(tampered, trust)).reason == "digest_mismatch"


def test_sign_smime_refuses_a_mismatched_key(pki: Pki):
    from signing import SignerConfigError

    with pytest.raises(SignerConfigError, match="does not match"):
        sign_smime(b"x", pki.signer("person").cert_pem, pki.signer("agency").key_pem)


def test_pki_is_rebuilt_cheaply(tmp_path):
    other = make_pki(tmp_path)
    assert other.anchors[0].read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
