"""Issue 6: real Postfix relays an agency's mail through the gateway into a real Dovecot mailbox.

client → Postfix (loopback, `relayhost` = the gateway's relay listener) → `edocgw serve`
(envelope routing to the agency that owns the recipient's domain) → LMTP into Dovecot (agency
route `lmtp://127.0.0.1:<port>`, STARTTLS offered and used under policy `may`) → read back
over IMAP and compared with what the client sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from gateway.delivery.trace import edocgw_id
from signing import TrustStore, verify_document
from store.agencies import AgencyIn
from store.db import Database
from tests.delivery.support import Sink, wait_until
from tests.e2e.harness import (
    HOSTNAME,
    TRACE_HEADERS,
    add_agency,
    deliveries,
    document_mail,
    messages,
    parse,
    split_trace,
)
from tests.support.corpus import by_key, pdf_bytes
from tests.support.dovecot import Dovecot
from tests.support.pki import Pki, sign_pdf
from tests.support.postfix import Postfix

MAILBOX = "vanthu@sxd.tayninh.gov.vn"  # Sở Xây dựng tỉnh Tây Ninh
SENDER = "vanthu@snv.tayninh.gov.vn"  # Sở Nội vụ, through its own Postfix
DOVECOT_HEADERS = ["Return-Path", "Delivered-To", "Received"]


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    dc = Dovecot(users={MAILBOX: "mat-khau-imap"}, lmtp=True).start()
    yield dc
    dc.close()


async def test_postfix_relays_through_the_gateway_into_dovecot_over_lmtp(
    db: Database, gateway, dovecot: Dovecot, sender_sink: Sink, pki: Pki, trust: TrustStore
):
    await add_agency(
        db,
        AgencyIn(
            "000.00.45.H53", "Sở Xây dựng tỉnh Tây Ninh", MAILBOX,
            domains=["sxd.tayninh.gov.vn"], route=f"lmtp://127.0.0.1:{dovecot.lmtp_port}",
            tls="may",
        ),
    )  # fmt: skip
    gw = await gateway()
    doc = by_key("tb-snv")
    pdf = sign_pdf(pdf_bytes("tb-snv"), pki.signer("agency"))
    raw = document_mail(
        f"Thông báo số {doc.printed_number}", pdf, doc.filename("pdf"), sender=SENDER, to=MAILBOX
    )
    postfix = Postfix(relayhost=f"127.0.0.1:{gw.relay_port}")
    await asyncio.to_thread(postfix.start)
    try:
        reply = await asyncio.to_thread(postfix.send, SENDER, [MAILBOX], raw)
        assert "queued as" in reply
        await asyncio.to_thread(postfix.wait_empty, 30)
        assert "relay=127.0.0.1[127.0.0.1]" in postfix.log_text()
    finally:
        await asyncio.to_thread(postfix.close)

    async def in_mailbox() -> bool:
        return bool(await asyncio.to_thread(dovecot.messages, MAILBOX))

    await wait_until(in_mailbox, 60, "the message in Dovecot", step=0.2)

    async def delivered() -> bool:
        # Dovecot has the message once its LMTP reply is sent; the gateway records the reply
        # a moment later: wait for the delivery log, not only the mailbox.
        rows = [d for m in await messages(db) for d in await deliveries(db, m.id)]
        return bool(rows) and all(d.state == "delivered" for d in rows)

    await wait_until(delivered, 60, "the delivery recorded as delivered", step=0.2)
    (stored,) = await messages(db)
    # What the gateway took from Postfix: Postfix's Received line, then the client's bytes.
    assert split_trace(stored.raw, raw) == ["Received"]
    assert b"by postfix.test.gov.vn (Postfix)" in stored.raw.split(b"\r\n\r\n", 1)[0]
    assert (stored.mail_from, stored.rcpt_to, stored.state) == (SENDER, [MAILBOX], "processed")
    (dl,) = await deliveries(db, stored.id)
    assert (dl.agency_code, dl.state, dl.last_reply_code) == ("000.00.45.H53", "delivered", 250)
    assert "Saved" in (dl.last_reply or ""), "Dovecot's LMTP reply for the recipient"

    (imap,) = await asyncio.to_thread(dovecot.messages, MAILBOX)
    assert imap.raw.endswith(raw), "the client's bytes, unchanged, in the mailbox"
    assert split_trace(imap.raw, stored.raw) == DOVECOT_HEADERS + TRACE_HEADERS
    got = parse(imap.raw)
    assert got["X-Edocgw-Id"] == edocgw_id(stored.id, HOSTNAME)
    assert got["Delivered-To"] == MAILBOX
    assert "with LMTPS" in str(got["Received"]), "STARTTLS after LHLO"
    (att,) = list(got.iter_attachments())
    (report,) = verify_document(att.get_content(), "pdf", att.get_filename(), trust)
    assert report.verdict == "valid", report.detail

    async def receipts() -> bool:
        return len(sender_sink.got) >= 2

    await wait_until(receipts, 30, "the acceptance and delivery receipts")
    kinds = sorted(str(parse(g.content)["X-Edocgw-Notice"]) for g in sender_sink.got)
    assert kinds == ["accepted", "delivered"]
