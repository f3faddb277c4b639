"""LMTP delivery (`lmtp://host:port` agency routes) against a real Dovecot LMTP server.

The delivery service speaks LHLO instead of EHLO, upgrades with STARTTLS when offered (and
verifies the certificate under policy `verify`), and maps Dovecot's per-recipient replies like
SMTP ones: 250 → delivered, a 550 for an unknown mailbox → bounced with a DSN to the sender.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from config import Settings
from gateway.delivery.route import MxResolver, RouteInput, resolve
from gateway.delivery.service import DeliveryService
from gateway.delivery.smtp import Target
from store.agencies import AgencyError, AgencyIn
from store.db import Database
from store.deliveries import destination_key
from tests.delivery.support import Sink, delivery, make_raw, put_message, state_is, wait_until
from tests.e2e.harness import add_agency, parse
from tests.support.dovecot import Dovecot

MAILBOX = "vanthu@sxd.tayninh.gov.vn"
UNKNOWN = "khongco@sxd.tayninh.gov.vn"


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    dc = Dovecot(users={MAILBOX: "mat-khau-imap"}, lmtp=True).start()
    yield dc
    dc.close()


@pytest.fixture
async def service(
    db: Database, settings: Settings, sender_sink: Sink, dovecot: Dovecot
) -> AsyncIterator[DeliveryService]:
    d = settings.delivery
    d.retry_schedule = ["1s"]  # type: ignore[list-item]
    d.poll_interval = "1s"  # type: ignore[assignment]
    d.connect_timeout = "5s"  # type: ignore[assignment]
    d.command_timeout = "10s"  # type: ignore[assignment]
    d.smarthost = sender_sink.hostport  # DSNs and notices go to the sender's server
    d.require_tls = False
    d.tls_ca_file = str(dovecot.cert_path)  # so policy `verify` can verify Dovecot's cert
    svc = DeliveryService(settings, db)
    yield svc
    await svc.stop()


@pytest.mark.parametrize(
    "route", ["lmtp://127.0.0.1:24", "lmtp://mail.sxd.tayninh.gov.vn:2424", "lmtp://[::1]:24"]
)
async def test_lmtp_route_is_accepted_and_resolves_to_an_lmtp_target(route: str):
    AgencyIn("000.00.45.H53", "Sở Xây dựng", MAILBOX, route=route).validate()
    (target,) = await resolve(
        RouteInput(MAILBOX, route, "verify"),
        smarthost="",
        require_tls=True,
        dns_lifetime=1,
        mx=MxResolver(),  # not asked: an agency route names its next hop
    )  # type: ignore[misc]
    assert isinstance(target, Target) and target.lmtp
    assert destination_key(route, MAILBOX) == route  # paused and limited as one next hop


@pytest.mark.parametrize("route", ["lmtp://127.0.0.1", "lmtps://127.0.0.1:24", "lmtp://a b:24"])
def test_malformed_lmtp_route_is_refused_with_a_reason(route: str):
    with pytest.raises(AgencyError, match="expected mx, smtp://host:port or lmtp://host:port"):
        AgencyIn("000.00.45.H53", "Sở Xây dựng", MAILBOX, route=route).validate()


async def test_delivers_over_lmtp_with_verified_starttls_and_bounces_an_unknown_mailbox(
    db: Database, service: DeliveryService, dovecot: Dovecot, sender_sink: Sink
):
    route = f"lmtp://127.0.0.1:{dovecot.lmtp_port}"
    await add_agency(
        db,
        AgencyIn(
            "000.00.45.H53", "Sở Xây dựng tỉnh Tây Ninh", MAILBOX,
            domains=["sxd.tayninh.gov.vn"], route=route, tls="verify",
        ),
    )  # fmt: skip
    raw = make_raw(subject="Công văn số 21/SNV-VP", message_id="<lmtp-21@snv.tayninh.gov.vn>")
    _, (ok_id, bad_id) = await put_message(
        db, raw, [(MAILBOX, "000.00.45.H53", 0), (UNKNOWN, "000.00.45.H53", 0)]
    )
    await service.start()

    async def settled() -> bool:
        return await state_is(db, ok_id, "delivered") and await state_is(db, bad_id, "bounced")

    await wait_until(settled, 30, "one delivered, one bounced")
    ok, bad = await delivery(db, ok_id), await delivery(db, bad_id)
    assert (ok.last_reply_code, ok.attempts) == (250, 1)
    assert (bad.last_reply_code, bad.attempts) == (550, 1)
    assert "5.1.1" in (bad.last_reply or "") and "RCPT TO" in (bad.last_reply or "")

    (stored,) = [
        m for m in await asyncio.to_thread(dovecot.messages, MAILBOX) if m.raw.endswith(raw)
    ]
    got = parse(stored.raw)
    assert "with LMTPS" in str(got["Received"]) and got["X-Edocgw-Id"]

    async def dsn_arrived() -> bool:
        return any("multipart/report" in (g.header("Content-Type") or "") for g in sender_sink.got)

    await wait_until(dsn_arrived, 30, "the DSN to the sender")
    dsn = next(g for g in sender_sink.got if "multipart/report" in str(g.header("Content-Type")))
    status = next(
        p.as_bytes().decode()
        for p in dsn.message.walk()
        if p.get_content_type() == "message/delivery-status"
    )
    assert f"Final-Recipient: rfc822; {UNKNOWN}" in status and "Status: 5.1.1" in status
