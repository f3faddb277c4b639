"""Decree 30 e-document check: signed by the competent person, then by the issuing
organisation, both valid, the person the signer and the organisation the issuer read from
the document's own text.

The documents are the generated Decree 30 layouts of tests/support/corpus.py, signed once
and twice with pyHanko by the test PKI's personal (CCCD/given name + surname) and
organisation (MST/MNS/CN) certificates, RSA and ECDSA; signer and issuer come from
mailparse's reading of the signed PDF, as in the gateway.
"""

from __future__ import annotations

import functools

import pytest

from mailparse import ClassifyContext, classify, open_file
from signing import TrustStore, verify_document
from signing.certinfo import signer_kind
from signing.edocument import PROBLEMS, EDocumentCheck, check_e_document
from signing.names import names_organisation, normalise, same_organisation, same_person
from signing.report import SignatureReport
from tests.support.corpus import by_key
from tests.support.corpus import make_pdf as make_document
from tests.support.pki import Pki, sign_pdf


@functools.cache
def _document(key: str) -> bytes:
    return make_document(by_key(key))


def _signed(pki: Pki, key: str, *signers: str) -> bytes:
    pdf = _document(key)
    for name in signers:
        pdf = sign_pdf(pdf, pki.signer(name))
    return pdf


def judge(pdf: bytes, trust: TrustStore) -> EDocumentCheck:
    facts = classify(open_file(pdf, "vanban.pdf"), ClassifyContext())
    reports = verify_document(pdf, "pdf", "vanban.pdf", trust)
    return check_e_document(reports, signer=facts.signer, issuer=facts.issuer)


# ------------------------------------------------------------------ names and certificates


@pytest.mark.parametrize(
    ("certified", "printed"),
    [
        ("UBND xã Tân Phú", "ỦY BAN NHÂN DÂN\nXÃ TÂN PHÚ"),  # abbreviation, two lines
        ("Ủy ban nhân dân tỉnh Tây Ninh", "UỶ BAN NHÂN DÂN TỈNH TÂY NINH"),  # old tone position
        ("HĐND tỉnh Đồng Nai", "HỘI ĐỒNG NHÂN DÂN TỈNH ĐỒNG NAI"),
        ("UBND TP. Hồ Chí Minh", "ỦY BAN NHÂN DÂN THÀNH PHỐ HỒ CHÍ MINH"),
        ("UBND tỉnh Tây Ninh", "TỈNH TÂY NINH"),  # header read as its last line only
        ("Sở Nội vụ tỉnh Tây Ninh", "SỞ NỘI VỤ"),
    ],
)
def test_same_organisation(certified: str, printed: str):
    assert same_organisation(certified, printed)


@pytest.mark.parametrize(
    ("certified", "printed"),
    [
        ("UBND huyện Gò Dầu", "ỦY BAN NHÂN DÂN TỈNH TÂY NINH"),
        ("UBND xã Tân Phú", "ỦY BAN NHÂN DÂN XÃ TÂN PHƯỚC"),
        ("Sở Nội vụ", "SỞ NGOẠI VỤ"),
        ("UBND tỉnh Tây Ninh", None),
        (None, "ỦY BAN NHÂN DÂN TỈNH TÂY NINH"),
    ],
)
def test_different_organisations(certified, printed):
    assert not same_organisation(certified, printed)


def test_same_person_in_the_signature_block():
    block = "KT. CHỦ TỊCH, PHÓ CHỦ TỊCH, Phạm Văn Hùng"
    assert same_person("Phạm Văn Hùng", block)
    assert same_person("PHẠM VĂN HÙNG", "Phạm Văn Hùng")
    assert not same_person("Phạm Văn Hưng", block)  # one letter is another person
    assert not same_person("Văn Hùng", "Phạm Văn Hùngg")
    assert not same_person("Phạm Văn Hùng", None)
    assert normalise("Đặng") != normalise("Dặng")  # Đ is a letter of its own


@pytest.mark.parametrize(
    ("uid", "cn", "names", "kind"),
    [
        ("CCCD:072099001234", "Nguyễn Văn An", False, "personal"),
        ("CMND:290123456", "Trần Thị Bình", False, "personal"),
        ("HC:B1234567", "Lê Văn Cường", False, "personal"),
        (None, "Phạm Văn Hùng", True, "personal"),  # given name and surname
        ("MST:3900123456", "UBND tỉnh Tây Ninh", False, "organisation"),
        ("MNS:1234567", "Trường THPT Trảng Bàng", False, "organisation"),
        (None, "ỦY BAN NHÂN DÂN XÃ TÂN PHÚ", False, "organisation"),  # CN names an organ
        (None, "Sở Nội vụ tỉnh Tây Ninh", False, "organisation"),
        (None, "Ministry of Home Affairs", False, "organisation"),
        (None, "Nguyễn Văn An", False, None),  # no identifier: cannot tell
        (None, None, False, None),
    ],
)
def test_certificate_kind(uid, cn, names, kind):
    assert signer_kind(uid, cn, has_person_names=names) == kind


def test_names_organisation_is_not_fooled_by_a_person():
    assert not names_organisation("Bùi Quang Vinh")
    assert not names_organisation("Sơn Thị Hoa")  # a name starting like "Sở" is no Sở
    assert names_organisation("Công ty TNHH Phần mềm Tây Ninh")


# ------------------------------------------------------------------ documents signed by pyHanko


def test_person_then_organisation_is_conformant(pki: Pki, trust: TrustStore):
    # personal ECDSA (CCCD) then organisation RSA (MST)
    result = judge(_signed(pki, "qd-ubnd", "chairman", "seal_rsa"), trust)
    assert result == EDocumentCheck(True, "Phạm Văn Hùng", "ỦY BAN NHÂN DÂN TỈNH TÂY NINH", ())
    assert result.to_dict() == {
        "conformant": True,
        "personal_signer": "Phạm Văn Hùng",
        "organisation_signer": "ỦY BAN NHÂN DÂN TỈNH TÂY NINH",
        "problems": [],
    }


def test_abbreviated_organisation_certificate_is_conformant(pki: Pki, trust: TrustStore):
    # personal RSA by given name + surname, organisation ECDSA "UBND tỉnh Tây Ninh" (MST)
    result = judge(_signed(pki, "qd-ubnd", "named_person", "agency"), trust)
    assert (result.conformant, result.problems) == (True, ())
    assert result.organisation_signer == "UBND tỉnh Tây Ninh"


def test_organisation_known_by_its_cn_alone(pki: Pki, trust: TrustStore):
    # tb-snv is signed in the text by Đặng Thị Mai for SỞ NỘI VỤ
    result = judge(_signed(pki, "tb-snv", "named_person", "seal_by_name"), trust)
    assert result.organisation_signer == "Sở Nội vụ tỉnh Tây Ninh"
    assert result.problems == ("signer_not_in_text",)


def test_unsigned_document(trust: TrustStore):
    result = judge(_document("qd-ubnd"), trust)
    assert not result.conformant
    assert result.problems == ("unsigned", "no_personal_signature", "no_organisation_signature")
    assert (result.personal_signer, result.organisation_signer) == (None, None)


def test_personal_signature_only(pki: Pki, trust: TrustStore):
    result = judge(_signed(pki, "qd-ubnd", "chairman"), trust)
    assert result.problems == ("no_organisation_signature",)
    assert result.personal_signer == "Phạm Văn Hùng"


def test_organisation_signature_only(pki: Pki, trust: TrustStore):
    result = judge(_signed(pki, "qd-ubnd", "seal_rsa"), trust)
    assert result.problems == ("no_personal_signature",)
    assert result.organisation_signer == "ỦY BAN NHÂN DÂN TỈNH TÂY NINH"


def test_signer_not_in_text(pki: Pki, trust: TrustStore):
    # Nguyễn Văn An (CCCD) signs a decision the text says Phạm Văn Hùng signed
    result = judge(_signed(pki, "qd-ubnd", "person", "agency"), trust)
    assert result.problems == ("signer_not_in_text",)


def test_organisation_not_issuer(pki: Pki, trust: TrustStore):
    # the seal of UBND huyện Gò Dầu (MNS) on a decision of UBND tỉnh Tây Ninh
    result = judge(_signed(pki, "qd-ubnd", "chairman", "other_seal"), trust)
    assert result.problems == ("organisation_not_issuer",)
    assert result.organisation_signer == "UBND huyện Gò Dầu"


def test_signatures_not_valid(pki: Pki, unsigned_trust: TrustStore):
    # the right people and organisation, but no anchor: untrusted is not valid
    result = judge(_signed(pki, "qd-ubnd", "chairman", "seal_rsa"), unsigned_trust)
    assert result.problems == ("signature_not_valid",)


def test_signature_of_a_revoked_person(pki: Pki, trust: TrustStore):
    result = judge(_signed(pki, "qd-ubnd", "revoked", "seal_rsa"), trust)
    assert result.problems == ("signature_not_valid", "signer_not_in_text")


def test_every_problem_at_once(pki: Pki, unsigned_trust: TrustStore):
    result = judge(_signed(pki, "qd-ubnd", "person", "other_seal"), unsigned_trust)
    assert result.problems == (
        "signature_not_valid",
        "signer_not_in_text",
        "organisation_not_issuer",
    )
    assert set(PROBLEMS) >= set(result.problems)


def test_a_malformed_signature_is_not_valid_and_names_nobody():
    broken = SignatureReport(format="pdf", verdict="malformed", reason="malformed")
    result = check_e_document([broken], signer="Phạm Văn Hùng", issuer="TỈNH TÂY NINH")
    assert result.problems == (
        "signature_not_valid",
        "no_personal_signature",
        "no_organisation_signature",
    )


def test_document_timestamps_are_not_signatures():
    stamp = SignatureReport(format="pdf-timestamp", verdict="valid", signer_cn="TSA")
    result = check_e_document([stamp], signer=None, issuer=None)
    assert result.problems[0] == "unsigned"


def test_round_trip_through_a_dict():
    result = EDocumentCheck(False, "A", None, ("no_organisation_signature",))
    assert EDocumentCheck.from_dict(result.to_dict()) == result


@pytest.fixture(scope="module")
def unsigned_trust() -> TrustStore:
    """No anchors: every chain is untrusted."""
    return TrustStore.empty()
