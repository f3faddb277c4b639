"""`edocgw check --json`: the Decree 30 e-document check of each document, and the
`[trust] weak_algorithms` choice, run as the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import clean_env, edocgw
from tests.support.corpus import docx_bytes, pdf_bytes
from tests.support.pki import make_pki, sign_cms, sign_pdf


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def _trust(pki) -> list[str]:
    out = []
    for a in pki.anchors:
        out += ["--trust", str(a)]
    for c in pki.crls:
        out += ["--crl", str(c)]
    return out


def _check(*args: str, env: dict[str, str] | None = None) -> dict[str, dict]:
    r = edocgw("check", "--json", *args, env=env)
    assert r.code == 0, r.err
    return {Path(f["file"]).name: f for f in json.loads(r.out)["files"]}


def test_e_document_in_each_report(tmp_path, pki):
    qd = pdf_bytes("qd-ubnd")  # ỦY BAN NHÂN DÂN / TỈNH TÂY NINH, signed by Phạm Văn Hùng
    person = sign_pdf(qd, pki.signer("chairman"))
    files = {
        "proper.pdf": sign_pdf(person, pki.signer("seal_rsa")),
        "person-only.pdf": person,
        "wrong-seal.pdf": sign_pdf(person, pki.signer("other_seal")),
        "plain.docx": docx_bytes("qd-ubnd"),
        "envelope.pdf.p7m": sign_cms(qd, pki.signer("chairman"), detached=False),
        "logo.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    rep = _check(*_trust(pki), *(str(tmp_path / n) for n in files))

    assert rep["proper.pdf"]["verdict"] == "valid"
    assert rep["proper.pdf"]["e_document"] == {
        "conformant": True,
        "personal_signer": "Phạm Văn Hùng",
        "organisation_signer": "ỦY BAN NHÂN DÂN TỈNH TÂY NINH",
        "problems": [],
    }
    kinds = [s["signer_kind"] for s in rep["proper.pdf"]["signatures"]]
    assert kinds == ["personal", "organisation"]
    assert rep["person-only.pdf"]["e_document"]["problems"] == ["no_organisation_signature"]
    assert rep["wrong-seal.pdf"]["e_document"]["problems"] == ["organisation_not_issuer"]
    assert rep["wrong-seal.pdf"]["e_document"]["organisation_signer"] == "UBND huyện Gò Dầu"
    assert rep["plain.docx"]["e_document"] == {
        "conformant": False,
        "personal_signer": None,
        "organisation_signer": None,
        "problems": ["unsigned", "no_personal_signature", "no_organisation_signature"],
    }
    assert rep["logo.png"]["e_document"] is None  # not a document
    # the .p7m's signature signs the document inside it, as in the gateway
    envelope = rep["envelope.pdf.p7m"]
    assert envelope["e_document"] is None  # a signature file, not a document
    (inner,) = envelope["attachments"]
    assert inner["e_document"]["problems"] == ["no_organisation_signature"]
    assert inner["e_document"]["personal_signer"] == "Phạm Văn Hùng"


def test_weak_algorithm_choice_from_the_config(tmp_path, pki):
    sha1 = sign_pdf(pdf_bytes("qd-ubnd"), pki.signer("chairman"), md_algorithm="sha1")
    path = tmp_path / "sha1.pdf"
    path.write_bytes(sha1)
    (sig,) = _check(*_trust(pki), str(path))["sha1.pdf"]["signatures"]
    assert (sig["verdict"], sig["reason"], sig["etsi"]) == (
        "indeterminate",
        "weak_algorithm",
        "INDETERMINATE",
    )
    config = tmp_path / "edocgw.toml"
    config.write_text('[trust]\nweak_algorithms = "invalid"\n')
    args = ["--config", str(config), *_trust(pki), str(path)]
    (sig,) = _check(*args)["sha1.pdf"]["signatures"]
    assert (sig["verdict"], sig["reason"]) == ("invalid", "weak_algorithm")
    env = clean_env(EDOCGW_TRUST__WEAK_ALGORITHMS="invalid")
    (sig,) = _check(*_trust(pki), str(path), env=env)["sha1.pdf"]["signatures"]
    assert sig["verdict"] == "invalid"


def test_a_bad_weak_algorithms_value_is_one_line(tmp_path):
    config = tmp_path / "edocgw.toml"
    config.write_text('[trust]\nweak_algorithms = "ignore"\n')
    r = edocgw("check", "--config", str(config), "--json", str(config))
    assert r.code != 0
    lines = [x for x in r.err.splitlines() if x.strip()]
    assert len(lines) == 1 and "weak_algorithms" in lines[0], r.err


def test_unreadable_pdf_is_malformed_not_unsigned(tmp_path):
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R\nthis is not a pdf")
    header = tmp_path / "header.pdf"  # header destroyed, body and a signature dictionary kept
    header.write_bytes(b"#G\xf3\xbf\n1 0 obj\n<< /ByteRange [0 1 2 3] /Contents <00> >>\n%%EOF\n")
    rep = _check(str(broken), str(header))
    for name in ("broken.pdf", "header.pdf"):
        assert rep[name]["detected_type"] == "pdf"
        assert rep[name]["verdict"] == "malformed", rep[name]["signatures"]
        assert rep[name]["signatures"][0]["reason"] == "unreadable_pdf"
