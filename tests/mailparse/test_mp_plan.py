"""mailparse.plan: one decision per message about documents, pairing, edXML and what to verify."""

from __future__ import annotations

import io
import zipfile

import pytest

from mailparse.plan import MessagePlan, pairing_names, plan, plan_files
from tests.support.corpus import by_key, docx_bytes, make_edxml, pdf_bytes
from tests.support.mails import make_forward, make_mail
from tests.support.pki import make_pki, make_smime_mail, sign_cms

PDF = "application/pdf"
P7S = "application/pkcs7-signature"
OCTET = "application/octet-stream"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def doc() -> bytes:
    return pdf_bytes("cv-bnv")


@pytest.fixture(scope="module")
def sig(pki, doc) -> bytes:
    return sign_cms(doc, pki.signer("person"))


def _by_name(p: MessagePlan) -> dict[str | None, int]:
    return {d.filename: d.index for d in p.documents}


def _pairs(p: MessagePlan) -> dict[str, str]:
    """signature name -> name of the document it signs."""
    return {
        d.filename or "": p.documents[d.signs].filename or ""
        for d in p.documents
        if d.signs is not None
    }


def test_detached_signature_by_exact_name_case_folded(doc, sig) -> None:
    p = plan(make_mail("x", [("CV.PDF", doc, PDF), ("cv.pdf.p7s", sig, P7S)]))
    assert _pairs(p) == {"cv.pdf.p7s": "CV.PDF"}
    names = _by_name(p)
    # the signature is verified with the document's bytes as its detached content
    assert (names["cv.pdf.p7s"], names["CV.PDF"]) in {
        (v.document, v.detached) for v in p.verifications
    }
    assert [c.filename for c in p.covering(names["CV.PDF"])] == ["cv.pdf.p7s"]


def test_sig_by_stem_only_when_unique(doc, sig) -> None:
    p = plan(make_mail("x", [("qd.pdf", doc, PDF), ("qd.sig", sig, OCTET)]))
    assert _pairs(p) == {"qd.sig": "qd.pdf"}
    dotted = plan(make_mail("x", [("bc.v2.pdf", doc, PDF), ("bc.v2.sig", sig, OCTET)]))
    assert _pairs(dotted) == {"bc.v2.sig": "bc.v2.pdf"}
    two = plan(
        make_mail(
            "x",
            [
                ("qd.pdf", doc, PDF),
                ("qd.docx", docx_bytes("cv-bnv"), OCTET),
                ("qd.sig", sig, OCTET),
            ],
        )
    )
    assert _pairs(two) == {}  # which one it signs is a guess: not paired
    exact_wins = plan(
        make_mail(
            "x",
            [("qd.docx", docx_bytes("cv-bnv"), OCTET), ("qd", doc, OCTET), ("qd.sig", sig, OCTET)],
        )
    )
    assert _pairs(exact_wins) == {"qd.sig": "qd"}


def test_a_signature_naming_a_pdf_never_signs_another_file(doc, sig) -> None:
    p = plan(make_mail("x", [("qd.docx", docx_bytes("cv-bnv"), OCTET), ("qd.pdf.p7s", sig, P7S)]))
    assert _pairs(p) == {}
    (v,) = [v for v in p.verifications if p.documents[v.document].filename == "qd.pdf.p7s"]
    assert v.detached is None  # verified alone: the verifier says what is missing


def test_pairing_stays_inside_one_container(doc, sig) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.pdf", doc)
        z.writestr("a.pdf.p7s", sig)
    p = plan(
        make_mail("x", [("ho-so.zip", buf.getvalue(), "application/zip"), ("a.pdf.p7s", sig, P7S)])
    )
    zipped = [d for d in p.documents if d.parent is not None]
    top_sig = next(d for d in p.documents if d.parent is None and d.filename == "a.pdf.p7s")
    assert {d.filename for d in zipped} == {"a.pdf", "a.pdf.p7s"}
    assert top_sig.signs is None  # the a.pdf inside the ZIP is not its sibling
    inner_sig = next(d for d in zipped if d.filename == "a.pdf.p7s")
    assert inner_sig.signs is not None and p.documents[inner_sig.signs].parent == inner_sig.parent


def test_forwarded_mail_pairs_its_own_attachments(doc, sig) -> None:
    inner = make_mail("gốc", [("cv.pdf", doc, PDF), ("cv.pdf.p7s", sig, P7S)])
    p = plan(make_forward(inner))
    assert _pairs(p) == {"cv.pdf.p7s": "cv.pdf"}


def test_p7m_is_unpacked_and_covered(pki, doc) -> None:
    der = sign_cms(doc, pki.signer("agency"), detached=False)
    pem = sign_cms(doc, pki.signer("agency"), detached=False, pem=True)
    p = plan(make_mail("x", [("qd.pdf.p7m", der, OCTET), ("bc.pdf.p7m", pem, OCTET)]))
    for name, inner_name in (("qd.pdf.p7m", "qd.pdf"), ("bc.pdf.p7m", "bc.pdf")):
        env = next(d for d in p.documents if d.filename == name)
        assert env.envelops is not None
        inner = p.documents[env.envelops]
        assert (inner.filename, inner.detected_type) == (inner_name, "pdf")
        assert inner.part_path == f"{env.part_path}.p7m" and inner.parent == env.index
        assert inner.attachment.data == doc
        assert [c.index for c in p.covering(inner.index)] == [env.index]


def test_p7m_carrying_a_zip_is_opened(pki, doc) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.pdf", doc)
    env = sign_cms(buf.getvalue(), pki.signer("agency"), detached=False)
    p = plan(make_mail("x", [("ho-so.zip.p7m", env, OCTET)]))
    assert [(d.filename, d.detected_type) for d in p.documents] == [
        ("ho-so.zip.p7m", "cms"),
        ("ho-so.zip", "zip"),
        ("a.pdf", "pdf"),
    ]


def test_header_facts_and_subject_codes() -> None:
    raw = make_mail("[000.00.00.H53] [000.00.00.G22] Công văn 15/UBND-VP", [])
    p = plan(raw)
    assert p.header.agency_codes == ("000.00.00.H53", "000.00.00.G22")
    assert p.header.message_id == "<test-1@snv.tayninh.gov.vn>"
    assert p.header.from_addr == "vanthu@snv.tayninh.gov.vn"
    assert p.header.subject.startswith("[000.00.00.H53]")
    assert p.context().subject == p.header.subject and "Văn thư" in p.context().body_text


def test_edxml_codes_and_reference() -> None:
    pkg = make_edxml(by_key("cv-bnv"), to_codes=("000.00.00.G09", "000.00.00.H53"))
    p = plan(make_mail("edXML", [("vb.edxml", pkg, "application/xml")]))
    (ref,) = p.edxml
    assert ref.from_code == "000.00.00.G22"
    assert ref.to_codes == ("000.00.00.G09", "000.00.00.H53")
    assert ref.document_id and ref.document_id.startswith("000.00.00.G22,")
    assert p.edxml_to_codes() == ["000.00.00.G09", "000.00.00.H53"]
    assert p.documents[ref.document].detected_type == "edxml"


def test_smime_signed_part_is_the_wire_bytes(pki) -> None:
    raw = make_smime_mail("Kính gửi Văn phòng Chính phủ", pki.signer("person"))
    p = plan(raw)
    assert p.smime is not None and p.smime.kind == "multipart/signed"
    assert p.smime.signed is not None and p.smime.signed in raw  # untouched, CRLF and all
    opaque = plan(make_smime_mail("Kính gửi", pki.signer("person"), opaque=True))
    assert opaque.smime is not None and opaque.smime.signed is None


def test_only_types_that_carry_signatures_are_verified(doc) -> None:
    p = plan(make_mail("x", [("a.pdf", doc, PDF), ("b.docx", docx_bytes("cv-bnv"), OCTET)]))
    assert [p.documents[v.document].filename for v in p.verifications] == ["a.pdf"]


def test_bad_input_gives_defects_not_exceptions() -> None:
    for raw in (b"", b"\x00\xff" * 100, b"Content-Type: multipart/mixed\r\n\r\n--x\r\n"):
        p = plan(raw)
        assert isinstance(p, MessagePlan)


def test_files_on_disk_pair_by_the_same_rule(doc, sig) -> None:
    p = plan_files([("cv.pdf", doc), ("cv.sig", sig)])
    assert _pairs(p) == {"cv.sig": "cv.pdf"}
    names = ["cv.pdf", "cv.pdf.p7s", "cv.sig", "cv.docx", "other.pdf", "other.pdf.sig"]
    assert pairing_names("cv.pdf", names) == ["cv.pdf.p7s", "cv.sig", "cv.docx"]
    assert pairing_names("cv.pdf.p7s", names) == ["cv.pdf"]
    assert pairing_names("cv.sig", names) == ["cv.pdf", "cv.docx"]
    assert pairing_names("other.pdf", names) == ["other.pdf.sig"]
