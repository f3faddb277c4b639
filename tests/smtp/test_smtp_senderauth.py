"""Issue 14 at the SMTP door: SPF, DKIM and DMARC on mail from untrusted clients.

A real listener, a real DNS server on loopback publishing SPF, DKIM and DMARC records, and
smtplib as the client. The client connects from 127.0.0.1, so `relay_networks` is set to
127.0.0.2/32 to make it an outside, unauthenticated client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from config import Settings
from store.db import Database
from store.models import Message
from tests.smtp.clients import send, stored
from tests.smtp.conftest import StartGateway
from tests.support.dns import LoopbackDns, start_dns
from tests.support.senderauth import DkimKey, mail, make_key

GOV = "chinhphu.gov.vn"  # p=reject, SPF allows 127.0.0.1, signs with RSA
QUAR = "quarantine.test"  # p=quarantine, SPF allows nobody
LOOSE = "loose.test"  # no DMARC record at all
ED = "ed.test"  # p=reject, signs with Ed25519, strict DKIM alignment
EVIL = "evil.test"  # SPF allows 127.0.0.1 (the attacker's own domain)
RCPT = ["vanban@localhost"]
BROKEN_SIGNATURE = (
    f"DKIM-Signature: v=1; a=rsa-sha256; d={GOV}; s=nope; h=from; bh=AAAA; b=AAAA\r\n"
)

KEYS = {
    GOV: make_key(GOV, "s2026"),
    QUAR: make_key(QUAR, "q1"),
    ED: make_key(ED, "ed", kind="ed25519"),
}


def records(keys: dict[str, DkimKey]) -> dict[str, list[str]]:
    txt = {
        GOV: ["v=spf1 ip4:127.0.0.1 -all"],
        f"_dmarc.{GOV}": ["v=DMARC1; p=reject; rua=mailto:dmarc@chinhphu.gov.vn"],
        QUAR: ["v=spf1 -all"],
        f"_dmarc.{QUAR}": ["v=DMARC1; p=quarantine"],
        LOOSE: ["v=spf1 ?all"],
        ED: ["v=spf1 -all"],
        f"_dmarc.{ED}": ["v=DMARC1; p=reject; adkim=s"],
        EVIL: ["v=spf1 ip4:127.0.0.0/8 -all"],
    }
    for k in keys.values():
        txt[k.record_name] = [k.record]
    return txt


@pytest.fixture
async def dns_server() -> AsyncIterator[LoopbackDns]:
    server = await start_dns({}, records(KEYS))
    yield server
    server.close()


@pytest.fixture
def untrusted(settings: Settings, dns_server: LoopbackDns) -> Settings:
    settings.smtp.relay_networks = ["127.0.0.2/32"]  # type: ignore[list-item]
    settings.authentication.inbound = True
    settings.delivery.dns_servers = [f"127.0.0.1:{dns_server.port}"]
    return settings


async def _auth(db: Database) -> list[dict]:
    async with db.transaction() as s:
        rows = (await s.execute(select(Message.auth_results).order_by(Message.id))).all()
    return [r[0] for r in rows]


async def test_genuine_signed_mail_passes_and_results_are_stored(
    untrusted: Settings, db: Database, start_gateway: StartGateway
) -> None:
    gw = await start_gateway()
    raw = KEYS[GOV].sign(mail(f"Văn phòng Chính phủ <vanthu@{GOV}>"))
    refused, reply = await send(gw.relay_port, RCPT, raw, mail_from=f"vanthu@{GOV}")
    assert (refused, reply.code) == ({}, 250), reply
    (auth,) = await _auth(db)
    assert (auth["spf"], auth["dmarc"], auth["from_domain"]) == ("pass", "pass", GOV)
    assert [(d["result"], d["domain"], d["selector"]) for d in auth["dkim"]] == [
        ("pass", GOV, "s2026")
    ]
    assert auth["dmarc_policy"] == "reject" and auth["action"] == "forward"


async def test_spoofed_from_with_unaligned_envelope_sender_is_refused(
    untrusted: Settings, db: Database, start_gateway: StartGateway
) -> None:
    gw = await start_gateway()
    # SPF passes for the attacker's own domain, but it is not the From domain
    raw = mail(f"Văn phòng Chính phủ <vanthu@{GOV}>")
    _, reply = await send(gw.relay_port, RCPT, raw, mail_from=f"x@{EVIL}")
    assert reply.code == 550 and reply.text.startswith("5.7.1"), reply
    assert GOV in reply.text and "reject" in reply.text
    # signed by the attacker's domain: DKIM passes, still not aligned
    evil_key = make_key(EVIL, "k")
    _, reply = await send(gw.relay_port, RCPT, evil_key.sign(raw), mail_from=f"x@{EVIL}")
    assert reply.code == 550
    assert await stored(db) == []


async def test_a_body_changed_after_signing_fails_dkim(
    untrusted: Settings, db: Database, start_gateway: StartGateway
) -> None:
    gw = await start_gateway()
    signed = KEYS[GOV].sign(mail(f"vanthu@{GOV}", body="Số tiền: 100.000 đồng.\r\n"))
    tampered = signed.replace(b"100.000", b"900.000")
    # sent through a third party's server, so SPF cannot save it
    _, reply = await send(gw.relay_port, RCPT, tampered, mail_from=f"bounce@{LOOSE}")
    assert reply.code == 550 and "DMARC" in reply.text
    # the same mail from a domain without DMARC is accepted, with the failure on record
    signed = KEYS[QUAR].sign(mail(f"a@{QUAR}", body="Số tiền: 100.000 đồng.\r\n"))
    untrusted.authentication.dmarc_fail = "forward"
    gw = await start_gateway()
    _, reply = await send(
        gw.relay_port, RCPT, signed.replace(b"100.000", b"900.000"), mail_from=f"a@{QUAR}"
    )
    assert reply.code == 250
    (auth,) = await _auth(db)
    assert auth["dkim"][0]["result"] == "fail" and auth["spf"] == "fail"
    assert auth["dmarc"] == "fail" and auth["action"] == "forward"


async def test_dns_down_answers_451_not_a_pass(
    untrusted: Settings, db: Database, start_gateway: StartGateway, dns_server: LoopbackDns
) -> None:
    untrusted.authentication.timeout = 2  # type: ignore[assignment]
    dns_server.close()  # nothing answers on that port any more
    gw = await start_gateway()
    raw = KEYS[GOV].sign(mail(f"vanthu@{GOV}"))
    _, reply = await send(gw.relay_port, RCPT, raw, mail_from=f"vanthu@{GOV}")
    assert reply.code == 451 and reply.text.startswith("4.7.0"), reply
    assert await stored(db) == []


async def test_dmarc_policy_and_dmarc_fail_setting(
    untrusted: Settings, db: Database, start_gateway: StartGateway
) -> None:
    spoof = mail(f"vanthu@{GOV}")
    quarantined = mail(f"a@{QUAR}")
    untrusted.authentication.dmarc_fail = "hold"
    gw = await start_gateway()
    for raw in (spoof, quarantined):
        _, reply = await send(gw.relay_port, RCPT, raw, mail_from=f"x@{EVIL}")
        assert reply.code == 250
    untrusted.authentication.dmarc_fail = "reject"
    gw = await start_gateway()
    _, reply = await send(gw.relay_port, RCPT, quarantined, mail_from=f"x@{EVIL}")
    assert reply.code == 250  # p=quarantine holds, it is never refused
    assert [(a["dmarc"], a["dmarc_policy"], a["action"]) for a in await _auth(db)] == [
        ("fail", "reject", "hold"),
        ("fail", "quarantine", "hold"),
        ("fail", "quarantine", "hold"),
    ]


async def test_alignment_shapes(
    untrusted: Settings, db: Database, start_gateway: StartGateway
) -> None:
    gw = await start_gateway()
    cases = [
        # relaxed alignment: a subdomain's From, the organisational domain's record and key
        (KEYS[GOV].sign(mail(f"vp@vanphong.{GOV}")), f"bounce@{LOOSE}", 250),
        # Ed25519 signature (RFC 8463), strictly aligned
        (KEYS[ED].sign(mail(f"a@{ED}")), f"a@{ED}", 250),
        # adkim=s: the same key cannot vouch for a subdomain
        (KEYS[ED].sign(mail(f"a@sub.{ED}")), f"a@sub.{ED}", 550),
        # two signatures, a broken one first: one aligned pass is enough
        (
            KEYS[GOV].sign(mail(f"vanthu@{GOV}", extra_headers=BROKEN_SIGNATURE)),
            f"bounce@{LOOSE}",
            250,
        ),
        # a domain without DMARC: SPF fails, accepted (nothing asks to refuse it)
        (mail(f"a@{LOOSE}"), f"a@{QUAR}", 250),
        # the null sender: SPF checks the HELO name, DMARC still needs alignment
        (mail(f"vanthu@{GOV}"), "", 550),
    ]
    got = []
    for raw, sender, _ in cases:
        _, reply = await send(gw.relay_port, RCPT, raw, mail_from=sender)
        got.append(reply.code)
    assert got == [c[2] for c in cases]
    auths = await _auth(db)
    assert [a["dmarc"] for a in auths] == ["pass", "pass", "pass", "none"]
    # dkimpy's signature is prepended, so it is the top one; the broken one has no key
    assert [d["result"] for d in auths[2]["dkim"]] == ["pass", "permerror"]


async def test_trusted_clients_are_not_checked(
    settings: Settings, db: Database, start_gateway: StartGateway, dns_server: LoopbackDns
) -> None:
    settings.authentication.inbound = True
    settings.delivery.dns_servers = [f"127.0.0.1:{dns_server.port}"]
    gw = await start_gateway()  # 127.0.0.0/8 is in relay_networks by default
    _, reply = await send(gw.relay_port, RCPT, mail(f"vanthu@{GOV}"), mail_from=f"x@{EVIL}")
    assert reply.code == 250
    assert await _auth(db) == [None]
    assert sum(dns_server.asked.values()) == 0
