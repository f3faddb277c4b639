"""Accepting a message: stored byte for byte with its envelope and facts, then 250."""

from __future__ import annotations

from gateway.smtp import SmtpListener
from store.db import Database
from tests.smtp.clients import events_for, plain_message, send, stored


async def test_plain_message_is_stored_then_acknowledged(gw: SmtpListener, db: Database) -> None:
    data = plain_message(subject="=?utf-8?b?Q8O0bmcgdsSDbg==?=", msgid="m1@a.test")
    refused, reply = await send(gw.relay_port, ["vanban@localhost"], data)
    assert refused == {}
    assert reply.code == 250
    assert reply.text.startswith("2.0.0 Ok: queued as ")
    rows = await stored(db)
    assert len(rows) == 1
    m = rows[0]
    assert reply.text.endswith(str(m.id))
    assert m.state == "received" and m.source == "smtp" and m.peer == "127.0.0.1"
    assert m.mail_from == "sender@a.test" and m.rcpt_to == ["vanban@localhost"]
    assert m.subject == "Công văn" and m.header_message_id == "<m1@a.test>"
    assert m.raw == data
    ev = await events_for(db, m.id)
    assert [e.kind for e in ev] == ["received"]
    assert ev[0].detail["listener"] == "relay"
