"""PDF signatures signed by pyHanko with the test PKI: each case gets its verdict and reason."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import serialization

from signing import TrustStore, aggregate, verify_document
from tests.support.pki import (
    Pki,
    fill_text_field,
    replace_page_content,
    sign_pdf,
    timestamp_pdf,
)


def only(reports):
    assert len(reports) == 1, reports
    return reports[0]


def _contents_spans(pdf: bytes) -> list[tuple[int, int]]:
    """(start, end) of each signature's hex /Contents string, in file order."""
    return [(m.start(1), m.end(1)) for m in re.finditer(rb"/Contents\s*<([0-9a-fA-F]+)>", pdf)]


def test_valid_rsa_signature_reports_signer(pki: Pki, trust: TrustStore, person_pdf: bytes):
    rep = only(verify_document(person_pdf, "pdf", "cv.pdf", trust))
    cert = pki.signer("person").cert
    assert (rep.format, rep.verdict, rep.reason, rep.etsi) == ("pdf", "valid", None, "PASSED")
    assert rep.signer_cn == "Nguyễn Văn An"
    assert rep.signer_o == "UBND tỉnh Tây Ninh"
    assert rep.signer_uid == "CCCD:072099001234"
    assert rep.serial == format(cert.serial_number, "x")
    assert rep.issuer_cn == "CA phục vụ các cơ quan Nhà nước (thử nghiệm)"
    der = cert.public_bytes(serialization.Encoding.DER)
    assert rep.cert_sha256 == hashlib.sha256(der).hexdigest()
    assert rep.covers_whole_file is True
    assert rep.signing_time_source == "self-reported"
    assert abs(rep.signing_time - datetime.now(UTC)) < timedelta(minutes=10)


def test_valid_ecdsa_signature(pki: Pki, trust: TrustStore, unsigned_pdf: bytes):
    rep = only(verify_document(sign_pdf(unsigned_pdf, pki.signer("agency")), "pdf", None, trust))
    assert (rep.verdict, rep.signer_uid) == ("valid", "MST:3900123456")


def test_one_byte_of_content_changed_is_digest_mismatch(trust: TrustStore, person_pdf: bytes):
    at = person_pdf.index(b"CONG VAN 15/UBND-VP")
    tampered = person_pdf[:at] + b"D" + person_pdf[at + 1 :]
    rep = only(verify_document(tampered, "pdf", None, trust))
    assert (rep.verdict, rep.reason, rep.etsi) == ("invalid", "digest_mismatch", "FAILED")


def test_form_filling_after_signing_is_allowed(trust: TrustStore, person_pdf: bytes):
    rep = only(verify_document(fill_text_field(person_pdf, "Đã tiếp nhận"), "pdf", None, trust))
    assert (rep.verdict, rep.reason, rep.covers_whole_file) == ("valid", None, False)
    assert "form" in rep.detail


def test_content_replaced_after_signing_is_invalid(trust: TrustStore, person_pdf: bytes):
    rep = only(verify_document(replace_page_content(person_pdf), "pdf", None, trust))
    assert (rep.verdict, rep.reason, rep.covers_whole_file) == (
        "invalid",
        "modified_after_signing",
        False,
    )


def test_person_then_agency_both_valid(pki: Pki, trust: TrustStore, person_pdf: bytes):
    both = sign_pdf(person_pdf, pki.signer("agency"))
    reps = verify_document(both, "pdf", None, trust)
    assert [(x.signer_cn, x.verdict, x.covers_whole_file) for x in reps] == [
        ("Nguyễn Văn An", "valid", False),
        ("UBND tỉnh Tây Ninh", "valid", True),
    ]
    assert aggregate(x.verdict for x in reps) == "valid"


def test_person_signature_broken_agency_valid(pki: Pki, trust: TrustStore, person_pdf: bytes):
    # flip one hex digit of the person's signature value, then let the agency sign on top
    start, end = _contents_spans(person_pdf)[0]
    info = cms.ContentInfo.load(bytes.fromhex(person_pdf[start:end].decode()), strict=False)
    sig_hex = info["content"]["signer_infos"][0]["signature"].native.hex().encode()
    at = person_pdf.lower().index(sig_hex, start) + 10
    flipped = b"0" if person_pdf[at : at + 1] != b"0" else b"1"
    broken = person_pdf[:at] + flipped + person_pdf[at + 1 :]
    reps = verify_document(sign_pdf(broken, pki.signer("agency")), "pdf", None, trust)
    assert [(x.signer_cn, x.verdict, x.reason) for x in reps] == [
        ("Nguyễn Văn An", "invalid", "signature_mismatch"),
        ("UBND tỉnh Tây Ninh", "valid", None),
    ]
    assert aggregate(x.verdict for x in reps) == "invalid"


@pytest.mark.parametrize(
    ("signer", "verdict", "reason"),
    [
        ("revoked", "revoked", "revoked"),  # revoked 2 days before signing
        ("revoked_later", "valid", None),  # revocation date after the signing time
        ("expired", "expired", "expired"),
        ("not_yet_valid", "expired", "not_yet_valid"),
        ("stranger", "untrusted", "no_path"),
        # pyHanko wants nonRepudiation by default; we do not: many Vietnamese signing
        # certificates carry digitalSignature only and their signatures are still valid.
        ("no_nonrepudiation", "valid", None),
    ],
)
def test_signer_certificate_cases(
    pki: Pki, trust: TrustStore, unsigned_pdf: bytes, signer: str, verdict: str, reason: str | None
):
    rep = only(verify_document(sign_pdf(unsigned_pdf, pki.signer(signer)), "pdf", None, trust))
    assert (rep.verdict, rep.reason) == (verdict, reason), rep.detail


def test_one_certificate_in_many_documents_each_gets_its_own_verdict(
    pki: Pki, trust: TrustStore, person_pdf: bytes
):
    """A process keeps one parsed copy of a certificate it meets in many signatures: the
    documents that carry it, and the trust stores they are checked against, still decide."""
    at = person_pdf.index(b"CONG VAN 15/UBND-VP")
    tampered = person_pdf[:at] + b"D" + person_pdf[at + 1 :]
    no_crl = TrustStore.load(pki.anchors)
    cases = [
        (person_pdf, trust),
        (tampered, trust),
        (person_pdf, no_crl),
        (replace_page_content(person_pdf), trust),
        (person_pdf, TrustStore.empty()),
        (person_pdf, trust),
    ]
    reports = [only(verify_document(data, "pdf", None, store)) for data, store in cases]
    seen = [(rep.verdict, rep.reason) for rep in reports]
    assert seen == [
        ("valid", None),
        ("invalid", "digest_mismatch"),
        ("indeterminate", "revocation_unavailable"),
        ("invalid", "modified_after_signing"),
        ("untrusted", "no_path"),
        ("valid", None),
    ]


def test_no_crl_is_indeterminate_in_hard_fail(pki: Pki, person_pdf: bytes):
    rep = only(verify_document(person_pdf, "pdf", None, TrustStore.load(pki.anchors)))
    assert (rep.verdict, rep.reason, rep.etsi) == (
        "indeterminate",
        "revocation_unavailable",
        "INDETERMINATE",
    )


def test_no_crl_is_valid_in_soft_fail(pki: Pki, person_pdf: bytes):
    soft = TrustStore.load(pki.anchors, revocation="soft-fail")
    rep = only(verify_document(person_pdf, "pdf", None, soft))
    assert (rep.verdict, rep.reason) == ("valid", None)
    assert "soft-fail" in rep.detail


def test_soft_fail_still_sees_revocation(pki: Pki, unsigned_pdf: bytes):
    soft = TrustStore.load(pki.anchors, pki.crls, revocation="soft-fail")
    rep = only(verify_document(sign_pdf(unsigned_pdf, pki.signer("revoked")), "pdf", None, soft))
    assert rep.verdict == "revoked"


def test_stale_crl_is_indeterminate(pki: Pki, person_pdf: bytes):
    stale = TrustStore.load(pki.anchors, pki.stale_crls)
    rep = only(verify_document(person_pdf, "pdf", None, stale))
    assert (rep.verdict, rep.reason) == ("indeterminate", "crl_stale")


def test_sha1_digest_is_weak_algorithm(pki: Pki, trust: TrustStore, unsigned_pdf: bytes):
    signed = sign_pdf(unsigned_pdf, pki.signer("person"), md_algorithm="sha1")
    rep = only(verify_document(signed, "pdf", None, trust))
    assert (rep.verdict, rep.reason) == ("indeterminate", "weak_algorithm")
    assert "intact" in rep.detail
    strict = TrustStore.load(pki.anchors, pki.crls, weak_algorithms="invalid")
    rep = only(verify_document(signed, "pdf", None, strict))
    assert (rep.verdict, rep.reason) == ("invalid", "weak_algorithm")
    at = signed.index(b"CONG VAN")
    tampered = signed[:at] + b"KONG" + signed[at + 4 :]
    rep = only(verify_document(tampered, "pdf", None, trust))
    assert (rep.verdict, rep.reason) == ("invalid", "digest_mismatch")


def test_truncated_signature_is_malformed(trust: TrustStore, person_pdf: bytes):
    start, end = _contents_spans(person_pdf)[0]
    cut = start + (end - start) // 3
    truncated = person_pdf[:cut] + b"0" * (end - cut) + person_pdf[end:]
    rep = only(verify_document(truncated, "pdf", None, trust))
    assert (rep.verdict, rep.reason, rep.format) == ("malformed", "malformed", "pdf")


def test_garbage_signature_is_malformed(trust: TrustStore, person_pdf: bytes):
    start, end = _contents_spans(person_pdf)[0]
    garbage = person_pdf[:start] + (b"deadbeef" * (end - start))[: end - start] + person_pdf[end:]
    rep = only(verify_document(garbage, "pdf", None, trust))
    assert rep.verdict == "malformed"
    assert "Traceback" not in rep.detail and "\n" not in rep.detail


def test_unsigned_pdf_has_no_reports(trust: TrustStore, unsigned_pdf: bytes):
    reports = verify_document(unsigned_pdf, "pdf", "cv.pdf", trust)
    assert reports == []
    assert aggregate(x.verdict for x in reports) == "unsigned"


def test_not_a_pdf_at_all(trust: TrustStore):
    """A file that says %PDF- but cannot be read is malformed, never unsigned (a reader of
    "unsigned" assumes the file was read)."""
    rep = only(verify_document(b"%PDF-1.7\n garbage", "pdf", None, trust))
    assert (rep.verdict, rep.reason) == ("malformed", "unreadable_pdf")
    rep = only(
        verify_document(b"%PDF-1.7\n/ByteRange [0 1 2 3] /Contents <00>", "pdf", None, trust)
    )
    assert rep.verdict == "malformed"


def test_document_timestamp_is_a_timestamp_not_a_failed_signature(
    pki: Pki, trust: TrustStore, person_pdf: bytes
):
    stamped = timestamp_pdf(person_pdf, pki.signer("tsa"))
    sig, ts = verify_document(stamped, "pdf", None, trust)
    assert (sig.format, sig.verdict, sig.covers_whole_file) == ("pdf", "valid", False)
    assert (ts.format, ts.verdict, ts.signing_time_source) == (
        "pdf-timestamp",
        "valid",
        "timestamp",
    )
    assert ts.signer_cn == "TSA Kiểm thử edocgw"


def test_signature_timestamp_from_a_trusted_tsa_gives_the_signing_time(
    pki: Pki, trust: TrustStore, unsigned_pdf: bytes
):
    """PAdES-T: the TSA's time beats the signer's own clock; from an unknown TSA it is
    ignored and the self-reported time stands."""
    stamped = sign_pdf(unsigned_pdf, pki.signer("person"), tsa=pki.signer("tsa"))
    sig = only(verify_document(stamped, "pdf", None, trust))
    assert (sig.verdict, sig.signing_time_source) == ("valid", "timestamp")
    plain = only(verify_document(sign_pdf(unsigned_pdf, pki.signer("person")), "pdf", None, trust))
    assert plain.signing_time_source == "self-reported"
    stranger = only(verify_document(stamped, "pdf", None, TrustStore.empty()))
    assert stranger.signing_time_source == "self-reported"
    assert "untrusted TSA" in stranger.detail


def test_document_timestamp_from_unknown_tsa_is_untrusted(pki: Pki, person_pdf: bytes):
    stamped = timestamp_pdf(person_pdf, pki.signer("tsa"))
    reps = verify_document(stamped, "pdf", None, TrustStore.empty())
    assert [(x.format, x.verdict) for x in reps] == [
        ("pdf", "untrusted"),
        ("pdf-timestamp", "untrusted"),
    ]


def test_to_dict_has_the_check_json_keys(trust: TrustStore, person_pdf: bytes):
    data = only(verify_document(person_pdf, "pdf", None, trust)).to_dict()
    assert list(data)[:11] == [
        "format",
        "verdict",
        "reason",
        "signer_cn",
        "signer_o",
        "signer_uid",
        "serial",
        "issuer_cn",
        "signing_time",
        "covers_whole_file",
        "detail",
    ]
    assert datetime.fromisoformat(data["signing_time"]).tzinfo is not None


@pytest.mark.parametrize(
    "breakage",
    [
        lambda br: b"[" + b"x" * (len(br) - 2) + b"]",  # not numbers
        lambda br: b"[0 1 2]" + b" " * (len(br) - 7),  # three numbers, not four
        lambda br: b"(" + b"0" * (len(br) - 2) + b")",  # a string, not an array
    ],
)
def test_broken_byte_range_is_a_malformed_signature(trust: TrustStore, person_pdf: bytes, breakage):
    """A /Sig field whose /ByteRange cannot be read is a broken signature, not none."""
    m = re.search(rb"/ByteRange\s*(\[[^\]]*\])", person_pdf)
    assert m is not None
    broken = person_pdf[: m.start(1)] + breakage(m.group(1)) + person_pdf[m.end(1) :]
    assert len(broken) == len(person_pdf)
    reports = verify_document(broken, "pdf", "cv.pdf", trust)
    assert aggregate(x.verdict for x in reports) == "malformed", reports
    assert all("\n" not in x.detail for x in reports)


def test_signature_dictionary_without_a_field_is_malformed(trust: TrustStore, person_pdf: bytes):
    """The signature dictionary is there but no form field points at it any more."""
    broken = person_pdf.replace(b"/FT /Sig", b"/FT /Xx", 1).replace(b"/FT/Sig", b"/FT/Xx", 1)
    assert broken != person_pdf
    reports = verify_document(broken, "pdf", "cv.pdf", trust)
    assert [(x.verdict, x.reason) for x in reports] == [("malformed", "malformed")]


@pytest.mark.parametrize(
    ("message", "failure"),
    [
        # pyHanko's wording for changes its diff policy cannot explain (from real files)
        ("VRI key /9D87BB56C198E3C8959AC87D31D440066CBD2EBE was modified or deleted.", None),
        ("Values for dict key /StructTreeRoot differ:{'/Type': '/StructTreeRoot'} changed", None),
        (
            "There are unexplained xrefs in revision 3: Reference(idnum=10, generation=0).\n"
            "Some objects from revision 2 were replaced in revision 3 without precise "
            "justification:\n - Reference(idnum=10, generation=0) is also used in "
            "AbsoluteContext(path=PathInRevision('.Root.StructTreeRoot')) in the prior revision.",
            None,
        ),
        (
            "There are unexplained xrefs in revision 2: Reference(idnum=72, generation=0).\n"
            " - Reference(idnum=3, generation=0) is also used in "
            "AbsoluteContext(path=PathInRevision('.Root.Pages')) in the prior revision.",
            "modified_after_signing",
        ),
        (
            "Values for dict key /Resources differ:IndirectObject(35, 0) changed",
            "modified_after_signing",
        ),
        ("Dict keys differ: {'/Pages', '/Names'} vs. {'/Pages'}.", "modified_after_signing"),
        (
            "Update of Reference(idnum=44, generation=0) is only allowed after an approval "
            "signature, not a certification signature.",
            "unexplained_changes",
        ),
    ],
)
def test_unexplained_changes_are_judged_by_what_they_touch(message: str, failure):
    from signing.pdf import _unexplained

    got, note = _unexplained(message)
    assert got == failure
    assert "\n" not in note
