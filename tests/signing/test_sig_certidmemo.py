"""The remembered signing-certificate check gives pyHanko's own answer for every pairing of
certificate and attribute, and a letter signed with a certificate that is not the one its
attribute names is still refused."""

from __future__ import annotations

import io

from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.generic_cms import get_signing_cert_attr

import signing  # noqa: F401  (installs the memo)
from signing import _certidmemo
from signing.pdf import verify_pdf
from tests.support.pki import Pki, make_pdf, sign_pdf


def _signer_and_certid(pdf: bytes):  # noqa: ANN202
    emb = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0]
    attrs = emb.signer_info["signed_attrs"]
    return emb.signer_cert, get_signing_cert_attr(attrs)["certs"][0]


def test_the_memo_answers_as_pyhanko_for_every_pairing(pki: Pki) -> None:
    pairs = [
        _signer_and_certid(sign_pdf(make_pdf(f"Công văn số {n}/UBND-VP"), pki.signer(who)))
        for n, who in enumerate(("person", "agency", "person"))
    ]
    for cert, _ in pairs:
        for _, certid in pairs:
            expected = _certidmemo._original(cert, certid)
            assert _certidmemo.check_ess_certid(cert, certid) is expected
            assert _certidmemo.check_ess_certid(cert, certid) is expected  # remembered
    assert _certidmemo.check_ess_certid(pairs[0][0], pairs[2][1]) is True  # same signer
    assert _certidmemo.check_ess_certid(pairs[0][0], pairs[1][1]) is False


def test_a_changed_attribute_is_judged_again(pki: Pki) -> None:
    cert, certid = _signer_and_certid(sign_pdf(make_pdf("Tờ trình"), pki.signer("person")))
    assert _certidmemo.check_ess_certid(cert, certid) is True
    certid["cert_hash"] = b"\x00" * 32  # a hash that is not this certificate's
    assert _certidmemo.check_ess_certid(cert, certid) is False
    assert _certidmemo._original(cert, certid) is False


def test_signed_letters_verify_as_before(pki: Pki, trust) -> None:  # noqa: ANN001
    for who in ("person", "agency"):
        pdf = sign_pdf(make_pdf("Quyết định số 3/QĐ-UBND"), pki.signer(who))
        first, again = verify_pdf(pdf, trust), verify_pdf(pdf, trust)
        assert [r.verdict for r in first] == [r.verdict for r in again] == ["valid"]
