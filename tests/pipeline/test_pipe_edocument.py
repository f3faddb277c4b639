"""The Decree 30 e-document check in the gateway: stored per document, in the `verified`
event whatever the policy, and `[policy] non_conformant` deciding forward or hold."""

from __future__ import annotations

from sqlalchemy import select

from config import Settings
from config.settings import PolicySettings
from gateway.pipeline.policy import DocumentCheck, decide, describe
from store.db import Database
from store.models import Document
from tests.pipeline.pipe_support import events_of, make_mail, running, submit, wait_for
from tests.support.corpus import pdf_bytes
from tests.support.pki import Pki, sign_cms, sign_pdf

PDF = "application/pdf"
P7S = "application/pkcs7-signature"
P7M = "application/octet-stream"  # as mail clients often label a .p7m
SUBJECT = "[000.00.00.G09] Quyết định 45/QĐ-UBND"


async def _document(db: Database, message_id: int) -> Document:
    async with db.sessions() as s:
        q = select(Document).where(Document.message_id == message_id)
        (doc,) = (await s.scalars(q)).all()
        return doc


def test_policy_non_conformant_forward_or_hold() -> None:
    problems = ("no_organisation_signature",)
    doc = DocumentCheck("qd.pdf", "pdf", "valid", kind="Quyết định", e_document_problems=problems)
    forward = decide([doc], PolicySettings())
    assert forward.action == "forward"
    assert forward.reasons == ["non_conformant:no_organisation_signature:qd.pdf"]
    held = decide([doc], PolicySettings(non_conformant="hold"))
    assert (held.action, held.reasons) == ("hold", forward.reasons)
    assert "Nghị định 30/2020/NĐ-CP" in describe(held.reasons)
    conformant = DocumentCheck("qd.pdf", "pdf", "valid", kind="Quyết định", e_document_problems=())
    assert decide([conformant], PolicySettings(non_conformant="hold")).reasons == []
    logo = DocumentCheck("logo.png", "image", "unsigned", e_document_problems=None)
    assert decide([logo], PolicySettings(non_conformant="hold")).action == "forward"


async def test_conformant_document_is_stored_and_forwarded(
    pipe_settings: Settings, db: Database, agencies: None, pki: Pki
) -> None:
    pipe_settings.policy.non_conformant = "hold"
    qd = pdf_bytes("qd-ubnd")
    proper = sign_pdf(sign_pdf(qd, pki.signer("chairman")), pki.signer("seal_rsa"))
    raw = make_mail(SUBJECT, [("45_QD-UBND.pdf", proper, PDF)])
    async with running(pipe_settings, db):
        mid = await submit(db, raw)
        msg = (await wait_for(db, [mid], {"processed", "held", "failed"}, within=30))[mid]
    assert (msg.state, msg.verdict) == ("processed", "valid"), msg.error
    doc = await _document(db, mid)
    assert doc.e_document == {
        "conformant": True,
        "personal_signer": "Phạm Văn Hùng",
        "organisation_signer": "ỦY BAN NHÂN DÂN TỈNH TÂY NINH",
        "problems": [],
    }
    verified = next(e for e in await events_of(db, mid) if e.kind == "verified")
    assert verified.detail["e_documents"] == {doc.part_path: {"conformant": True, "problems": []}}


async def test_non_conformant_document_forwarded_but_flagged(
    pipe_settings: Settings, db: Database, agencies: None, pki: Pki
) -> None:
    person_only = sign_pdf(pdf_bytes("qd-ubnd"), pki.signer("chairman"))
    raw = make_mail(SUBJECT, [("45_QD-UBND.pdf", person_only, PDF)])
    async with running(pipe_settings, db):
        mid = await submit(db, raw)
        msg = (await wait_for(db, [mid], {"processed", "held", "failed"}, within=30))[mid]
    assert msg.state == "processed", msg.error  # the default is forward
    doc = await _document(db, mid)
    assert doc.e_document["problems"] == ["no_organisation_signature"]
    verified = next(e for e in await events_of(db, mid) if e.kind == "verified")
    assert verified.detail["e_documents"][doc.part_path] == {
        "conformant": False,
        "problems": ["no_organisation_signature"],
    }


async def test_non_conformant_document_held_when_configured(
    pipe_settings: Settings, db: Database, agencies: None, pki: Pki
) -> None:
    pipe_settings.policy.non_conformant = "hold"
    wrong_seal = sign_pdf(
        sign_pdf(pdf_bytes("qd-ubnd"), pki.signer("chairman")), pki.signer("other_seal")
    )
    raw = make_mail(SUBJECT, [("45_QD-UBND.pdf", wrong_seal, PDF)])
    async with running(pipe_settings, db):
        mid = await submit(db, raw)
        msg = (await wait_for(db, [mid], {"processed", "held", "failed"}, within=30))[mid]
    assert (msg.state, msg.verdict) == ("held", "valid")
    held = next(e for e in await events_of(db, mid) if e.kind == "held")
    assert held.detail["reasons"] == ["non_conformant:organisation_not_issuer:45_QD-UBND.pdf"]
    assert "organisation_not_issuer" in held.detail["reason"]


async def test_enveloping_and_detached_signatures_count_for_the_document(
    pipe_settings: Settings, db: Database, agencies: None, pki: Pki
) -> None:
    """Same rule as `edocgw check`: a .p7m's or a .p7s's signatures sign the document."""
    qd = pdf_bytes("qd-ubnd")
    raw = make_mail(
        SUBJECT,
        [
            ("45_QD-UBND.pdf", qd, PDF),
            ("45_QD-UBND.pdf.p7s", sign_cms(qd, pki.signer("chairman")), P7S),
            ("46_QD-UBND.pdf.p7m", sign_cms(qd, pki.signer("seal_rsa"), detached=False), P7M),
        ],
    )
    async with running(pipe_settings, db):
        mid = await submit(db, raw)
        msg = (await wait_for(db, [mid], {"processed", "held", "failed"}, within=30))[mid]
    held = [e.detail for e in await events_of(db, mid) if e.kind == "held"]
    assert msg.state == "processed", held
    async with db.sessions() as s:
        docs = {
            d.filename: d
            for d in (await s.scalars(select(Document).where(Document.message_id == mid))).all()
        }
    assert docs["45_QD-UBND.pdf"].e_document["problems"] == ["no_organisation_signature"]
    assert docs["46_QD-UBND.pdf"].e_document["problems"] == ["no_personal_signature"]
    assert docs["45_QD-UBND.pdf.p7s"].e_document is None  # a signature file
