"""The relay matrix of DESIGN §3: nothing foreign is relayed without permission."""

from __future__ import annotations

import asyncio

from config import Settings
from gateway.smtp import SmtpListener
from store.agencies import AgencyIn, upsert_agency
from store.db import Database
from tests.smtp.clients import RawClient, Reply, rcpt_reply, send, stored
from tests.smtp.conftest import StartGateway

AGENCY_DOMAIN = "tayninh.gov.vn"

# (RCPT argument as sent, expected reply code and enhanced status) for a client that is neither
# in relay_networks nor authenticated.
UNTRUSTED = [
    ("<vanban@localhost>", "250 2.1.5"),  # processing address
    ("<VANBAN@LOCALHOST>", "250 2.1.5"),  # upper case
    ("<vanban@localhost.>", "250 2.1.5"),  # trailing dot
    ('<"vanban"@localhost>', "250 2.1.5"),  # quoted, but only quoting
    ("<postmaster@localhost>", "250 2.1.5"),
    ("<vanthu@tayninh.gov.vn>", "250 2.1.5"),  # an agency's inbox
    ("<anyone@TayNinh.Gov.VN.>", "250 2.1.5"),  # any address at an agency domain
    ("<@foreign.test:vanban@localhost>", "250 2.1.5"),  # source route dropped: local in the end
    ("<nobody@localhost>", "550 5.1.1"),  # unknown local recipient
    ("<someone@foreign.test>", "550 5.7.1"),
    ("<someone@FOREIGN.TEST.>", "550 5.7.1"),
    ("<user%foreign.test@localhost>", "550 5.1.1"),  # % hack
    ("<foreign.test!user@localhost>", "550 5.1.1"),  # ! path
    ('<"user@foreign.test"@localhost>', "550 5.1.1"),  # quoted local part hiding an @
    ("<user%foreign.test@tayninh.gov.vn>", "550 5.7.1"),
    ("<foreign.test!user@tayninh.gov.vn>", "550 5.7.1"),
    ('<"user@foreign.test"@tayninh.gov.vn>', "550 5.7.1"),
    ("<@localhost:user@foreign.test>", "550 5.7.1"),  # source route to a foreign address
    ("<@tayninh.gov.vn,@localhost:user@foreign.test>", "550 5.7.1"),
    ("<user@[10.0.0.1]>", "550 5.7.1"),  # address literal
]


async def _add_agency(db: Database) -> None:
    async with db.transaction() as s:
        await upsert_agency(
            s,
            AgencyIn(
                code="000.00.00.H53",
                name="UBND tỉnh Tây Ninh",
                address="vanthu@tayninh.gov.vn",
                domains=[AGENCY_DOMAIN],
            ),
        )


async def test_untrusted_client_reaches_only_local_recipients(
    settings: Settings, db: Database, start_gateway: StartGateway
) -> None:
    settings.smtp.relay_networks = ["10.99.0.0/16"]  # type: ignore[list-item]  # not 127.0.0.1
    await _add_agency(db)
    gw = await start_gateway()
    wrong = []
    for rcpt, expected in UNTRUSTED:
        reply = await rcpt_reply(gw.relay_port, rcpt)
        if f"{reply.code} {reply.text}"[:9] != expected:
            wrong.append((rcpt, expected, reply))
    assert wrong == []


async def test_untrusted_null_sender_is_treated_alike(
    settings: Settings, db: Database, start_gateway: StartGateway
) -> None:
    settings.smtp.relay_networks = ["10.99.0.0/16"]  # type: ignore[list-item]
    gw = await start_gateway()
    assert (await rcpt_reply(gw.relay_port, "<x@foreign.test>", mail_from="<>")).code == 550
    refused, reply = await send(gw.relay_port, ["vanban@localhost"], mail_from="")
    assert refused == {} and reply.code == 250
    (m,) = await stored(db)
    assert m.mail_from == ""  # the null sender: no receipts, never bounced


async def test_a_whole_refused_transaction_stores_nothing(
    settings: Settings, db: Database, start_gateway: StartGateway
) -> None:
    settings.smtp.relay_networks = ["10.99.0.0/16"]  # type: ignore[list-item]
    gw = await start_gateway()
    refused, reply = await send(gw.relay_port, ["a@foreign.test", "b@foreign.test"])
    assert {r.code for r in refused.values()} == {550} and reply.code == 0
    refused, reply = await send(gw.relay_port, ["a@foreign.test", "vanban@localhost"])
    assert list(refused) == ["a@foreign.test"] and reply.code == 250
    (m,) = await stored(db)
    assert m.rcpt_to == ["vanban@localhost"]  # the foreign one was never taken


async def test_client_in_relay_networks_may_send_anywhere(gw: SmtpListener, db: Database) -> None:
    # default relay_networks 127.0.0.0/8 includes the test client
    assert (await rcpt_reply(gw.relay_port, "<someone@foreign.test>")).code == 250
    assert (await rcpt_reply(gw.relay_port, "<user%x.test@foreign.test>")).code == 250
    # but an unknown address at a local domain is unknown for everyone
    reply = await rcpt_reply(gw.relay_port, "<nobody@localhost>")
    assert (reply.code, reply.text[:5]) == (550, "5.1.1")
    refused, reply = await send(gw.relay_port, ["someone@foreign.test"])
    assert reply.code == 250
    assert (await stored(db))[0].rcpt_to == ["someone@foreign.test"]


async def test_processing_addresses_and_local_domains_come_from_config(
    settings: Settings, start_gateway: StartGateway
) -> None:
    settings.smtp.relay_networks = ["10.99.0.0/16"]  # type: ignore[list-item]
    settings.gateway.processing_addresses = ["tiepnhan@gw.test.gov.vn"]
    settings.gateway.local_domains = ["gw.test.gov.vn"]
    gw = await start_gateway()
    assert (await rcpt_reply(gw.relay_port, "<TiepNhan@gw.test.gov.vn>")).code == 250
    assert (await rcpt_reply(gw.relay_port, "<vanban@localhost>")).code == 550
    reply = await rcpt_reply(gw.relay_port, "<other@gw.test.gov.vn>")
    assert (reply.code, reply.text[:5]) == (550, "5.1.1")


# (MAIL FROM argument, RCPT TO argument, expected reply to RCPT) from a client in
# relay_networks, which may send anywhere: look-alikes of '@' and '.' still never pass.
INTERNATIONAL = [
    ("<a@a.test>", "<vanban@localhost\uff20foreign.test>", "553 5.1.3"),  # full-width @
    ("<a@a.test> SMTPUTF8", "<vanban@localhost\uff20foreign.test>", "553 5.1.3"),
    ("<a@a.test> SMTPUTF8", "<vanban\ufe6blocalhost@foreign.test>", "553 5.1.3"),  # small @
    ("<a@a.test>", "<người.nhận@tayninh.gov.vn>", "553 5.6.7"),  # non-ASCII without SMTPUTF8
    ("<a@a.test> SMTPUTF8", "<người.nhận@tayninh.gov.vn>", "250 2.1.5"),
    ("<a@a.test> SMTPUTF8", "<a@bücher.test>", "250 2.1.5"),  # valid IDNA
    ("<a@a.test> SMTPUTF8", "<a@bücher\uff0etest>", "553 5.1.2"),  # full-width dot
    ("<a@a.test> SMTPUTF8", "<a@bücher\u3002test>", "553 5.1.2"),  # ideographic full stop
    ("<a@a.test> SMTPUTF8", "<a@-bücher.test>", "553 5.1.2"),  # not valid IDNA
]


def _mail_rcpt(port: int, mail_from: str, rcpt: str | None) -> Reply:
    """EHLO, `MAIL FROM:` and (if given) `RCPT TO:` sent as UTF-8 bytes, exactly as written;
    the reply to the last command sent."""
    client = RawClient(port)
    try:
        client.reply()  # banner
        client.send(b"EHLO client.test\r\n")
        client.reply()
        client.send(f"MAIL FROM:{mail_from}\r\n".encode())
        reply = client.reply()
        if rcpt is None or reply.code != 250:
            return reply
        client.send(f"RCPT TO:{rcpt}\r\n".encode())
        return client.reply()
    finally:
        client.close()


async def test_look_alikes_of_at_and_dot_are_refused(gw: SmtpListener, db: Database) -> None:
    await _add_agency(db)
    wrong = []
    for mail_from, rcpt, expected in INTERNATIONAL:
        reply = await asyncio.to_thread(_mail_rcpt, gw.relay_port, mail_from, rcpt)
        if f"{reply.code} {reply.text}"[:9] != expected:
            wrong.append((mail_from, rcpt, expected, reply))
    assert wrong == []


async def test_a_sender_with_a_look_alike_at_is_refused(gw: SmtpListener) -> None:
    mail_from = "<vanthu\uff20chinhphu.gov.vn@a.test> SMTPUTF8"
    reply = await asyncio.to_thread(_mail_rcpt, gw.relay_port, mail_from, None)
    assert (reply.code, reply.text[:5]) == (553, "5.1.3")
