"""`edocgw check --json` and the pipeline judge the same mail the same way: the same
documents, the same detached-signature pairing, the same verdicts (both build on
mailparse.plan; before, they paired by different rules)."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy import select

from store.db import Database
from store.models import Document, Signature
from tests.pipeline.pipe_support import make_mail, submit, wait_for
from tests.support.cli import edocgw
from tests.support.corpus import by_key, docx_bytes, make_edxml, pdf_bytes
from tests.support.pki import Pki, make_smime_mail, sign_cms, sign_pdf

PDF = "application/pdf"
OCTET = "application/octet-stream"


def _mails(pki: Pki) -> dict[str, bytes]:
    doc, other = pdf_bytes("cv-bnv"), pdf_bytes("ct-ttg-khan")
    person, agency = pki.signer("person"), pki.signer("agency")
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("hs.pdf", doc)
        z.writestr("hs.pdf.p7s", sign_cms(doc, agency))
    pkg = make_edxml(
        by_key("cv-bnv"),
        to_codes=("000.00.00.G09",),
        attachments=(("kem.pdf", doc), ("kem.pdf.sig", sign_cms(doc, person))),
    )
    return {
        "p7s-by-name.eml": make_mail(
            "Công văn",
            [
                ("cv.pdf", doc, PDF),
                ("CV.pdf.p7s", sign_cms(doc, person), OCTET),
                ("bc.pdf", other, PDF),
                ("bc.pdf.p7s", sign_cms(doc, person), OCTET),  # signs other bytes: invalid
                ("mo.pdf.p7s", sign_cms(doc, person), OCTET),  # its PDF is missing
            ],
        ),
        "sig-by-stem.eml": make_mail(
            "Quyết định",
            [
                ("qd.pdf", doc, PDF),
                ("qd.sig", sign_cms(doc, agency), OCTET),
                ("tt.pdf", sign_pdf(doc, person), PDF),
                ("tt.docx", docx_bytes("cv-bnv"), OCTET),
                ("tt.sig", sign_cms(doc, agency), OCTET),  # two "tt.*": not paired
                ("hs.zip", zipped.getvalue(), "application/zip"),
            ],
        ),
        "p7m.eml": make_mail(
            "Công văn",
            [
                ("05_BNV-VP.pdf.p7m", sign_cms(doc, agency, detached=False), OCTET),
                ("pem.pdf.p7m", sign_cms(other, person, detached=False, pem=True), OCTET),
            ],
        ),
        "smime.eml": make_smime_mail("Kính gửi Bộ Tư pháp.\nNội dung kiểm thử.", person),
        "edxml.eml": make_mail("Văn bản điện tử", [("vb.edxml", pkg, "application/xml")]),
    }


def _flatten(reports: list[dict[str, Any]], out: dict[str, tuple[str, str, list[str]]]) -> None:
    for r in reports:
        out[r["file"]] = (r["detected_type"], r["verdict"], [s["format"] for s in r["signatures"]])
        _flatten(r["attachments"], out)


async def _stored(db: Database, message_id: int) -> tuple[dict[str, tuple[str, str]], list[str]]:
    async with db.sessions() as s:
        docs = (await s.scalars(select(Document).where(Document.message_id == message_id))).all()
        smime = (
            await s.scalars(
                select(Signature.verdict).where(
                    Signature.message_id == message_id, Signature.document_id.is_(None)
                )
            )
        ).all()
    return {d.filename or d.part_path: (d.detected_type, d.verdict or "") for d in docs}, list(
        smime
    )


async def test_check_and_pipeline_pair_and_judge_alike(
    pipeline_factory: Any, db: Database, agencies: None, pki: Pki, tmp_path: Path
) -> None:
    mails = _mails(pki)
    for name, raw in mails.items():
        (tmp_path / name).write_bytes(raw)
    trust = [a for p in pki.anchors for a in ("--trust", str(p))]
    trust += [a for p in pki.crls for a in ("--crl", str(p))]
    r = await asyncio.to_thread(
        edocgw, "check", "--json", *trust, *(str(tmp_path / n) for n in mails), timeout=180
    )
    assert r.code == 0, r.err
    checked = {Path(f["file"]).name: f for f in json.loads(r.out)["files"]}

    async with pipeline_factory():
        ids = {name: await submit(db, raw) for name, raw in mails.items()}
        await wait_for(db, list(ids.values()), {"processed", "held", "quarantined"}, 120)

    for name, mid in ids.items():
        flat: dict[str, tuple[str, str, list[str]]] = {}
        _flatten(checked[name]["attachments"], flat)
        stored, smime = await _stored(db, mid)
        assert {f: (t, v) for f, (t, v, _) in flat.items()} == stored, name
        assert [s["verdict"] for s in checked[name]["signatures"]] == smime, name

    flat = {}
    for report in checked.values():
        _flatten(report["attachments"], flat)
    # the pairing itself: a detached signature is reported on the document it signs
    assert flat["cv.pdf"] == ("pdf", "valid", ["cms"])  # CV.pdf.p7s, by name (case folded)
    assert flat["CV.pdf.p7s"] == ("cms", "valid", [])
    assert flat["bc.pdf"] == ("pdf", "invalid", ["cms"])
    assert flat["mo.pdf.p7s"][1:] == ("malformed", ["cms"])  # nothing to check it against
    assert flat["qd.pdf"] == ("pdf", "valid", ["cms"])  # qd.sig, by stem
    assert flat["tt.pdf"] == ("pdf", "valid", ["pdf"])  # its own signature only
    assert flat["tt.sig"][1:] == ("malformed", ["cms"])  # tt.pdf or tt.docx: a guess, unpaired
    assert flat["hs.pdf"] == ("pdf", "valid", ["cms"])  # inside the ZIP
    assert flat["kem.pdf"] == ("pdf", "valid", ["cms"])  # inside the edXML package
    # an enveloping .p7m: its content is covered by its signature
    assert flat["05_BNV-VP.pdf"] == ("pdf", "valid", [])
    assert flat["pem.pdf"][:2] == ("pdf", "valid")
    assert checked["smime.eml"]["verdict"] == "valid"
