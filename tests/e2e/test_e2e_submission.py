"""Issue 6 end to end: staff submit documents, the gateway routes, forwards and reports back.

A real `edocgw serve` (subprocess) on the test's PostgreSQL; swaks submits over the
submission listener with STARTTLS and AUTH PLAIN; aiosmtpd sinks on loopback play the two
agencies' mail servers and the sender's own server (`[delivery] smarthost`, where receipts
go). Receipts are signed with a certificate of the test PKI and verified with `signing/`.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.delivery.trace import edocgw_id
from signing import TrustStore, verify_smime_message
from store.agencies import AgencyIn
from store.db import Database
from store.users import add_user
from tests.delivery.support import Sink, wait_until
from tests.e2e.harness import (
    HOSTNAME,
    PROCESSING,
    SENDER,
    TRACE_HEADERS,
    add_agency,
    deliveries,
    document_mail,
    dot_stuffed,
    message_documents,
    messages,
    parse,
    relay_send,
    split_trace,
)
from tests.smtp.clients import swaks_can_tls
from tests.support.corpus import by_key, pdf_bytes
from tests.support.pki import Pki, sign_pdf

LAMDONG = "000.00.00.H36"
MOF = "000.00.00.G10"
SUBMITTER, PASSWORD = "vanthu", "mat-khau-van-thu-2024"
QUIET = 3.0  # seconds of silence that prove nothing else leaves (idle forwarding takes < 1 s)


async def two_agencies(db: Database, sinks) -> tuple[Sink, Sink]:  # noqa: ANN001
    """The addressees of corpus document `bc-stc`: its "Kính gửi" and its "Nơi nhận"."""
    lamdong, mof = await sinks(), await sinks()
    await add_agency(
        db,
        AgencyIn(
            LAMDONG, "Ủy ban nhân dân tỉnh Lâm Đồng", "vanban@lamdong.gov.vn",
            aliases=["UBND tỉnh Lâm Đồng"], domains=["lamdong.gov.vn"],
            route=lamdong.route, tls="none",
        ),
    )  # fmt: skip
    await add_agency(
        db,
        AgencyIn(
            MOF, "Bộ Tài chính", "vanban@mof.gov.vn",
            domains=["mof.gov.vn"], route=mof.route, tls="none",
        ),
    )  # fmt: skip
    return lamdong, mof


async def swaks_submit(port: int, raw: bytes, tmp_path: Path) -> int:
    """Submit `raw` with swaks (STARTTLS, AUTH PLAIN); returns the gateway's queue id."""
    assert await asyncio.to_thread(swaks_can_tls), "swaks cannot do TLS: install libnet-ssleay-perl"
    data = tmp_path / "swaks-data.eml"
    data.write_bytes(dot_stuffed(raw))
    proc = await asyncio.create_subprocess_exec(
        "swaks", "--server", "127.0.0.1", "--port", str(port),
        "--tls", "--auth", "PLAIN", "--auth-user", SUBMITTER, "--auth-password", PASSWORD,
        "--helo", "pc-vanthu.tayninh.gov.vn", "--from", SENDER, "--to", PROCESSING,
        "--data", str(data), "--no-data-fixup", "--timeout", "30s",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    assert re.search(r"^<~  235 ", text, re.M), f"AUTH inside TLS succeeded:\n{text}"
    m = re.search(r"^<~  250 2\.0\.0 Ok: queued as (\d+)", text, re.M)
    assert m, f"no queue id in the swaks transcript:\n{text}"
    return int(m.group(1))


def common_name(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def notice_kind(raw: bytes) -> str:
    return str(parse(raw)["X-Edocgw-Notice"])


def notice_parts(raw: bytes) -> tuple[str, dict]:
    """(Vietnamese text, JSON receipt) of a notice."""
    text, payload = "", {}
    for part in parse(raw).walk():
        if part.get_content_type() == "text/plain":
            text = part.get_content()
        elif part.get_content_type() == "application/json":
            payload = json.loads(part.get_content())
    return text, payload


async def test_signed_pdf_reaches_two_agencies_and_the_sender_gets_signed_receipts(
    db: Database, gateway, sinks, sender_sink: Sink, pki: Pki, trust: TrustStore, tmp_path: Path
):
    lamdong, mof = await two_agencies(db, sinks)
    async with db.transaction() as s:
        await add_user(s, SUBMITTER, PASSWORD, ["submit"])
    gw = await gateway()
    doc = by_key("bc-stc")  # Kính gửi: UBND tỉnh Lâm Đồng; Nơi nhận: Bộ Tài chính
    pdf = sign_pdf(pdf_bytes("bc-stc"), pki.signer("person"))
    raw = document_mail(f"Báo cáo số {doc.printed_number}", pdf, doc.filename("pdf"))

    queued = await swaks_submit(gw.submission_port, raw, tmp_path)

    async def all_arrived() -> bool:
        return len(lamdong.got) >= 1 and len(mof.got) >= 1 and len(sender_sink.got) >= 3

    await wait_until(all_arrived, 60, "both agencies and three receipts")
    await asyncio.sleep(1.0)  # anything extra would arrive now
    (msg,) = await messages(db)
    assert msg.id == queued
    assert msg.raw == raw, "stored byte for byte as swaks sent it"
    assert (msg.auth_user, msg.state, msg.verdict) == (SUBMITTER, "processed", "valid")

    xid = edocgw_id(msg.id, HOSTNAME)
    for sink, rcpt in ((lamdong, "vanban@lamdong.gov.vn"), (mof, "vanban@mof.gov.vn")):
        (got,) = sink.got
        assert got.rcpt_tos == [rcpt] and got.mail_from == SENDER
        assert split_trace(got.content, msg.raw) == TRACE_HEADERS
        assert got.header("X-Edocgw-Id") == xid
        verdicts = str(got.header("Authentication-Results"))
        assert "x-edocgw-signature=valid (documents: 1 valid)" in verdicts
    dl = await deliveries(db, msg.id)
    assert sorted((d.agency_code, d.state) for d in dl) == [
        (MOF, "delivered"),
        (LAMDONG, "delivered"),
    ]

    kinds = sorted(notice_kind(g.content) for g in sender_sink.got)
    assert kinds == ["accepted", "delivered", "delivered"]
    delivered_to = set()
    for g in sender_sink.got:
        assert g.rcpt_tos == [SENDER]
        assert parse(g.content)["X-Edocgw-Ref"] == xid
        (report,) = verify_smime_message(g.content, trust)
        assert report.verdict == "valid", report.detail
        assert report.signer_cn == common_name(pki.signer("agency").cert)
        text, payload = notice_parts(g.content)
        assert payload["x_edocgw_id"] == xid and payload["documents"][0]["verdict"] == "valid"
        assert doc.printed_number in text
        if payload["kind"] == "delivered":
            delivered_to.add(payload["detail"]["recipient"])
    assert delivered_to == {"vanban@lamdong.gov.vn", "vanban@mof.gov.vn"}


async def test_secrecy_marked_document_is_quarantined_and_nothing_leaves(
    db: Database, gateway, sinks, sender_sink: Sink, pki: Pki
):
    lamdong, mof = await two_agencies(db, sinks)
    gw = await gateway()
    doc = by_key("qc-bqp-mat")  # printed "MẬT"
    pdf = sign_pdf(pdf_bytes("qc-bqp-mat"), pki.signer("person"))
    # Addressed by code to both agencies: without the mark it would be forwarded to them.
    raw = document_mail(
        f"[{LAMDONG}] [{MOF}] Quy chế số {doc.printed_number}", pdf, doc.filename("pdf")
    )
    await relay_send(gw.relay_port, raw)

    async def told() -> bool:
        return len(sender_sink.got) >= 1

    await wait_until(told, 60, "the notice to the sender")
    await asyncio.sleep(QUIET)
    (msg,) = await messages(db)
    assert msg.state == "quarantined"
    assert lamdong.got == [] and mof.got == [], "a secrecy-marked document never leaves"
    assert await deliveries(db, msg.id) == []
    (notice,) = sender_sink.got
    assert notice_kind(notice.content) == "quarantined"
    text, payload = notice_parts(notice.content)
    assert "29/2018/QH14" in text and "mật (Mật)" in text, text
    assert payload["kind"] == "quarantined"
    assert b"application/pdf" not in notice.content, "the notice does not carry the document"
    (document,) = await message_documents(db, msg.id)
    assert document.secrecy == "Mật"


async def test_tampered_signature_is_held(
    db: Database, gateway, sinks, sender_sink: Sink, pki: Pki
):
    lamdong, mof = await two_agencies(db, sinks)
    gw = await gateway(policy={"invalid_signature": "hold"})
    doc = by_key("bc-stc")
    pdf = sign_pdf(pdf_bytes("bc-stc"), pki.signer("person"))
    at = pdf.index(b"/CreationDate (D:") + len(b"/CreationDate (D:")
    tampered = pdf[:at] + (b"1" if pdf[at : at + 1] != b"1" else b"2") + pdf[at + 1 :]
    raw = document_mail(f"Báo cáo số {doc.printed_number}", tampered, doc.filename("pdf"))
    await relay_send(gw.relay_port, raw)

    async def told() -> bool:
        return len(sender_sink.got) >= 1

    await wait_until(told, 60, "the notice to the sender")
    await asyncio.sleep(QUIET)
    (msg,) = await messages(db)
    assert (msg.state, msg.verdict) == ("held", "invalid")
    assert lamdong.got == [] and mof.got == []
    # Routed but held: an admin's release would send it to both agencies.
    dl = await deliveries(db, msg.id)
    assert sorted((d.agency_code, d.state) for d in dl) == [(MOF, "held"), (LAMDONG, "held")]
    (document,) = await message_documents(db, msg.id)
    assert document.verdict == "invalid"
    (notice,) = sender_sink.got
    assert notice_kind(notice.content) == "held"
    text, _ = notice_parts(notice.content)
    assert "chữ ký số không đạt (invalid)" in text, text
