"""`edocgw check` with signatures: the DESIGN §7 report, run as the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import edocgw
from tests.support.corpus import pdf_bytes
from tests.support.pki import make_pki, make_smime_mail, sign_cms, sign_pdf


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def _check(*args: str) -> dict[str, dict]:
    r = edocgw("check", "--json", *args)
    assert r.code == 0, r.err
    return {Path(f["file"]).name: f for f in json.loads(r.out)["files"]}


def _trust(pki) -> list[str]:
    out = []
    for a in pki.anchors:
        out += ["--trust", str(a)]
    for c in pki.crls:
        out += ["--crl", str(c)]
    return out


def test_signed_documents_get_their_verdicts(tmp_path, pki):
    doc = pdf_bytes("ct-ttg-khan")
    signed = sign_pdf(doc, pki.signer("person"))
    twice = sign_pdf(signed, pki.signer("agency"))
    tampered = bytearray(signed)
    i = tampered.index(b"/Producer")  # a byte inside the signed range, outside the contents
    tampered[i + 1] ^= 0x01
    files = {
        "signed.pdf": signed,
        "twice.pdf": twice,
        "tampered.pdf": bytes(tampered),
        "plain.pdf": doc,
        "detached.pdf": doc,
        "detached.pdf.p7s": sign_cms(doc, pki.signer("person")),
        "envelope.pdf.p7m": sign_cms(doc, pki.signer("agency"), detached=False),
        "revoked.pdf": sign_pdf(doc, pki.signer("revoked")),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    rep = _check(*_trust(pki), *(str(tmp_path / n) for n in files))

    s = rep["signed.pdf"]
    assert s["verdict"] == "valid" and s["facts"]["kind"] == "Chỉ thị"
    assert s["facts"]["notation"] == "CT-TTg" and s["facts"]["urgency"] == "Khẩn"
    (sig,) = s["signatures"]
    assert sig["format"] == "pdf" and sig["covers_whole_file"] is True
    assert (
        sig["signer_cn"]
        == pki.signer("person").cert.subject.rfc4514_string().split("CN=")[1].split(",")[0]
    )
    assert set(sig) >= {
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
    }

    assert [x["verdict"] for x in rep["twice.pdf"]["signatures"]] == ["valid", "valid"]
    assert rep["tampered.pdf"]["verdict"] == "invalid"
    assert rep["plain.pdf"]["verdict"] == "unsigned" and rep["plain.pdf"]["signatures"] == []
    assert rep["revoked.pdf"]["verdict"] == "revoked"

    # a detached signature is reported on the document it signs, paired by name
    assert [x["format"] for x in rep["detached.pdf"]["signatures"]] == ["cms"]
    assert rep["detached.pdf"]["verdict"] == "valid"
    assert rep["detached.pdf.p7s"]["signatures"] == []

    # an enveloping .p7m: its signature, and the document inside classified
    env = rep["envelope.pdf.p7m"]
    assert env["verdict"] == "valid"
    (inner,) = env["attachments"]
    assert inner["detected_type"] == "pdf" and inner["facts"]["number"] == "15"


def test_revocation_policy_and_trust_from_the_command_line(tmp_path, pki):
    (tmp_path / "a.pdf").write_bytes(sign_pdf(pdf_bytes("cv-bnv"), pki.signer("person")))
    anchors = ["--trust", str(pki.anchors[0])]
    no_crl = _check(*anchors, str(tmp_path / "a.pdf"))["a.pdf"]
    assert no_crl["verdict"] == "indeterminate"
    assert no_crl["signatures"][0]["reason"] == "revocation_unavailable"
    soft = _check(*anchors, "--soft-fail", str(tmp_path / "a.pdf"))["a.pdf"]
    assert soft["verdict"] == "valid"
    nothing = _check(str(tmp_path / "a.pdf"))["a.pdf"]
    assert nothing["verdict"] == "untrusted"


def test_smime_mail_is_verified_on_its_raw_bytes(tmp_path, pki):
    (tmp_path / "signed.eml").write_bytes(
        make_smime_mail("Kính gửi Văn phòng Chính phủ", pki.signer("person"))
    )
    rep = _check(*_trust(pki), str(tmp_path / "signed.eml"))["signed.eml"]
    assert rep["detected_type"] == "eml"
    assert [s["format"] for s in rep["signatures"]] == ["smime"] and rep["verdict"] == "valid"


def test_unreadable_trust_anchor_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate", encoding="utf-8")
    (tmp_path / "x.pdf").write_bytes(pdf_bytes("cv-bnv"))
    r = edocgw("check", "--json", "--trust", str(bad), str(tmp_path / "x.pdf"))
    assert r.code == 2 and "bad.pem" in r.err and len(r.err.strip().splitlines()) == 1
    assert "Traceback" not in r.err
