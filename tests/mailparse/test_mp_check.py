"""``edocgw check``: the JSON contract of DESIGN §7, the table, and exit codes."""

from __future__ import annotations

import argparse
import io
import json
import zipfile
from pathlib import Path

import pytest

from gateway.cli import check
from tests.support.corpus import by_key, docx_bytes, make_edxml, pdf_bytes
from tests.support.mails import make_forward, make_mail

REPORT_KEYS = {
    "file", "detected_type", "facts", "signatures", "verdict", "reason", "e_document",
    "attachments", "defects",
}  # fmt: skip
FACT_KEYS = {
    "kind", "kind_abbr", "number", "year", "notation", "issuer", "place", "date", "subject",
    "signer", "urgency", "secrecy", "recipients", "agency_codes", "sources",
    "parent_issuer", "signer_position", "signer_competence", "meeting_start", "meeting_place",
}  # fmt: skip


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="edocgw")
    check.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    assert args.func is check.run
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def _shape(report: dict) -> None:
    assert set(report) == REPORT_KEYS
    assert set(report["facts"]) == FACT_KEYS
    assert report["signatures"] == [] and report["verdict"] == "unsigned"
    for child in report["attachments"]:
        _shape(child)


def test_json_for_documents_eml_and_zip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pdf = tmp_path / "15_CT-TTg.pdf"
    pdf.write_bytes(pdf_bytes("ct-ttg-khan"))
    docx = tmp_path / "cv.docx"
    docx.write_bytes(docx_bytes("cv-ubnd-tuyetmat"))
    inner = make_mail(
        "Quyết định 45/QĐ-UBND", [("45.pdf", pdf_bytes("qd-ubnd"), "application/pdf")]
    )
    eml = tmp_path / "fwd.eml"
    eml.write_bytes(make_forward(inner))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("nd.pdf", pdf_bytes("nd-cp"))
    zpath = tmp_path / "ho-so.zip"
    zpath.write_bytes(buf.getvalue())

    code, out, err = _run(["check", str(pdf), str(docx), str(eml), str(zpath), "--json"], capsys)
    assert code == 0 and err == ""
    files = json.loads(out)["files"]  # stdout is exactly one JSON document
    for report in files:
        _shape(report)
    r_pdf, r_docx, r_eml, r_zip = files
    assert r_pdf["file"] == str(pdf) and r_pdf["detected_type"] == "pdf"
    assert r_pdf["facts"]["kind"] == "Chỉ thị" and r_pdf["facts"]["date"] == "2024-03-05"
    assert r_pdf["facts"]["urgency"] == "Khẩn" and r_pdf["facts"]["secrecy"] is None
    assert r_docx["facts"]["secrecy"] == "Tuyệt mật" and r_docx["facts"]["urgency"] == "Hỏa tốc"
    assert r_eml["detected_type"] == "eml"
    (fwd,) = r_eml["attachments"]
    assert fwd["detected_type"] == "eml"
    (doc,) = fwd["attachments"]
    assert (doc["file"], doc["facts"]["kind"], doc["facts"]["notation"]) == (
        "45.pdf",
        "Quyết định",
        "QĐ-UBND",
    )
    assert [a["facts"]["notation"] for a in r_zip["attachments"]] == ["NĐ-CP"]
    assert r_zip["facts"]["kind"] is None and r_zip["facts"]["date"] is None


def test_edxml_file_reports_header_and_carried_documents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = by_key("gm-vpcp")
    path = tmp_path / "goi.edxml"
    path.write_bytes(make_edxml(doc, attachments=(("gm.pdf", pdf_bytes(doc.key)),)))
    code, out, _ = _run(["check", str(path), "--json"], capsys)
    (report,) = json.loads(out)["files"]
    assert code == 0 and report["detected_type"] == "edxml"
    assert (
        report["facts"]["sources"]["kind"] == "edxml"
        and report["facts"]["urgency"] == "Thượng khẩn"
    )
    assert report["attachments"][0]["facts"]["sources"]["kind"] == "text"


def test_unreadable_file_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "a.pdf"
    good.write_bytes(pdf_bytes("cv-bnv"))
    code, out, err = _run(["check", str(good), str(tmp_path / "missing.pdf"), "--json"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "missing.pdf" in err and "Traceback" not in err
    files = json.loads(out)["files"]
    assert files[0]["facts"]["notation"] == "BNV-VP"
    assert files[1]["defects"][0].startswith("unreadable:")


def test_table_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mat.pdf"
    path.write_bytes(pdf_bytes("qc-bqp-mat"))
    code, out, _ = _run(["check", str(path), "--soft-fail"], capsys)
    assert code == 0
    header, row = out.splitlines()[:2]
    assert header.split()[:3] == ["FILE", "TYPE", "KIND"]
    assert "mat.pdf" in row and "Quy chế" in row and "03/QC-BQP" in row and "Mật" in row
    assert "secrecy mark" in out
