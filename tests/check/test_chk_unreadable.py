"""`edocgw check --json` on scans, older office formats and documents that cannot be read,
run as the real command (real Tesseract, real LibreOffice for the DOC/RTF/ODT files)."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
from pathlib import Path

import pypdf

from tests.support.cli import edocgw
from tests.support.corpus import by_key, docx_bytes, make_pdf, pdf_bytes
from tests.support.scans import STYLES, scan_image, scan_pdf


def _check(*paths: Path) -> dict[str, dict]:
    r = edocgw("check", "--json", *map(str, paths))
    assert r.code == 0, r.err
    return {Path(f["file"]).name: f for f in json.loads(r.out)["files"]}


def _encrypted(pdf: bytes) -> bytes:
    writer = pypdf.PdfWriter()
    for page in pypdf.PdfReader(io.BytesIO(pdf)).pages:
        writer.add_page(page)
    writer.encrypt(user_password="khóa", algorithm="AES-256")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_scans_report_ocr_facts_and_unread_files_say_why(tmp_path: Path) -> None:
    secret = dataclasses.replace(by_key("tb-snv"), secrecy="Mật")
    files = {
        "scan-mat.pdf": scan_pdf(make_pdf(secret), STYLES[4], seed=5),
        "scan.png": scan_image(pdf_bytes("cv-bnv"), "PNG", STYLES[1]),
        "khoa.pdf": _encrypted(pdf_bytes("cv-bnv")),
        "text.pdf": pdf_bytes("cv-bnv"),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    got = _check(*(tmp_path / n for n in files))

    mat = got["scan-mat.pdf"]
    assert mat["facts"]["secrecy"] == "Mật" and mat["facts"]["sources"]["secrecy"] == "ocr"
    assert (mat["facts"]["number"], mat["facts"]["notation"]) == ("12", "TB-SNV")
    assert (mat["verdict"], mat["reason"]) == ("unsigned", None)
    png = got["scan.png"]
    assert (png["detected_type"], png["facts"]["notation"]) == ("image", "BNV-VP")
    assert png["facts"]["sources"]["notation"] == "ocr"
    locked = got["khoa.pdf"]
    assert (locked["verdict"], locked["reason"]) == ("unreadable", "encrypted")
    assert locked["facts"]["secrecy"] is None and "unreadable:encrypted" in locked["defects"]
    assert (got["text.pdf"]["verdict"], got["text.pdf"]["reason"]) == ("unsigned", None)
    assert got["text.pdf"]["facts"]["sources"]["notation"] == "text"


def test_doc_rtf_and_odt_give_the_same_facts_as_docx(tmp_path: Path) -> None:
    keys = ["ct-ttg-khan", "cv-bnv", "nd-cp", "tb-snv", "qd-ubnd"]
    for key in keys:
        (tmp_path / f"{key}.docx").write_bytes(docx_bytes(key))
    sources = [str(tmp_path / f"{k}.docx") for k in keys]
    for fmt in ("doc", "rtf", "odt"):
        subprocess.run(
            ["soffice", "--headless", f"-env:UserInstallation=file://{tmp_path}/lo",
             "--convert-to", fmt, "--outdir", str(tmp_path), *sources],
            check=True, capture_output=True, timeout=240,
        )  # fmt: skip
    paths = [tmp_path / f"{k}.{fmt}" for k in keys for fmt in ("doc", "rtf", "odt")]
    got = _check(*paths)
    facts = ("kind", "number", "notation", "issuer", "date", "urgency", "secrecy", "signer")
    for key in keys:
        truth = by_key(key).truth()
        for fmt in ("doc", "rtf", "odt"):
            report = got[f"{key}.{fmt}"]
            assert report["detected_type"] == fmt
            assert report["reason"] is None
            for f in facts:
                assert report["facts"][f] == truth[f], (key, fmt, f)
            assert report["facts"]["sources"]["number"] == "text"
