"""The DATA path: bytes stored exactly as sent, dot-unstuffing, and no smuggling."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from config import Settings
from gateway.smtp import SmtpListener
from gateway.smtp.commit import Committer
from store.db import Database
from store.messages import NewMessage, insert_message
from tests.smtp.clients import events_for, raw_session, send, stored, stored_raw
from tests.smtp.conftest import StartGateway

# 8-bit UTF-8 and Latin-1 bytes, CRLF line ends, lines that start with dots, a long line.
ORIGINAL = (
    b"From: =?utf-8?b?VsSDbiB0aMawIA==?= <vanthu@a.test>\r\n"
    b"To: vanban@localhost\r\n"
    b"Subject: =?utf-8?q?C=C3=B4ng_v=C4=83n_s=E1=BB=91_15?=\r\n"
    b"Message-ID: <exact-1@a.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n" + "Kính gửi: UBND tỉnh Tây Ninh\r\n".encode() + b".leading dot\r\n"
    b"..two leading dots\r\n"
    b".\tdot and tab\r\n"
    b"latin-1 byte \xe9 and NUL-free 8-bit \xff\r\n" + b"x" * 2500 + b"\r\n"
    b"last line\r\n"
)


def stuff(data: bytes) -> bytes:
    """Dot-stuffing as a client does it (lines end with CRLF)."""
    out = b"\r\n" + data
    return out.replace(b"\r\n.", b"\r\n..")[2:]


async def test_raw_bytes_round_trip_byte_identical(gw: SmtpListener, db: Database) -> None:
    replies = await asyncio.to_thread(
        raw_session,
        gw.relay_port,
        [
            b"EHLO client.test\r\n",
            b"MAIL FROM:<vanthu@a.test> BODY=8BITMIME\r\n",
            b"RCPT TO:<vanban@localhost>\r\n",
            b"DATA\r\n",
            stuff(ORIGINAL) + b".\r\n",
            b"QUIT\r\n",
        ],
    )
    assert [r.code for r in replies] == [220, 250, 250, 250, 354, 250, 221]
    assert await stored_raw(db) == [ORIGINAL]
    (m,) = await stored(db)
    assert m.subject == "Công văn số 15" and m.header_message_id == "<exact-1@a.test>"
    assert m.size == len(ORIGINAL)
    assert m.sha256 == NewMessage(source="smtp", peer="", raw=ORIGINAL).sha256


async def test_smtplib_8bit_round_trip_byte_identical(gw: SmtpListener, db: Database) -> None:
    refused, reply = await send(gw.relay_port, ["vanban@localhost"], ORIGINAL)
    assert reply.code == 250
    assert await stored_raw(db) == [ORIGINAL]


async def test_smtputf8_addresses_and_headers_stored_exactly(
    gw: SmtpListener, db: Database
) -> None:
    data = (
        "From: Người gửi <người.gửi@ví-dụ.vn>\r\n"
        "To: vanban@localhost\r\n"
        "Subject: Công văn số 15/UBND-VP về việc họp\r\n"
        "\r\n"
        "Nội dung bằng tiếng Việt.\r\n"
    ).encode()
    refused, reply = await send(
        gw.relay_port,
        ["vanban@localhost"],
        data,
        mail_from="người.gửi@ví-dụ.vn",
        mail_options=["SMTPUTF8", "BODY=8BITMIME"],
    )
    assert refused == {} and reply.code == 250
    (m,) = await stored(db)
    assert m.raw == data
    assert m.mail_from == "người.gửi@ví-dụ.vn"
    assert m.subject == "Công văn số 15/UBND-VP về việc họp"
    assert m.header_from == "Người gửi <người.gửi@ví-dụ.vn>"


async def test_empty_and_headerless_bodies(gw: SmtpListener, db: Database) -> None:
    for body in (b"", b"no header block at all\r\n", b".\r\n".join([b"", b""])):
        replies = await asyncio.to_thread(
            raw_session,
            gw.relay_port,
            [b"HELO c\r\n", b"MAIL FROM:<a@a.test>\r\n", b"RCPT TO:<vanban@localhost>\r\n",
             b"DATA\r\n", stuff(body) + b".\r\n"],
        )  # fmt: skip
        assert replies[-1].code == 250, replies
    assert await stored_raw(db) == [b"", b"no header block at all\r\n", b".\r\n"]


SMUGGLE = (
    b"MAIL FROM:<evil@x.test>\r\n"
    b"RCPT TO:<victim@foreign.test>\r\n"
    b"DATA\r\n"
    b"Subject: smuggled\r\n\r\nsmuggled body\r\n"
)


@pytest.mark.parametrize(
    "fake_end",
    [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r", b"\n.\r\n\n", b"\r\n\x00.\r\n"],
    ids=["LF.LF", "CRLF.LF", "LF.CRLF", "CR.CRLF", "CRLF.CR", "LF.CRLF-LF", "CRLF-NUL.CRLF"],
)
async def test_smuggling_attempt_does_not_split_the_message(
    settings: Settings, db: Database, start_gateway: StartGateway, fake_end: bytes
) -> None:
    settings.smtp.relay_networks = ["10.99.0.0/16"]  # type: ignore[list-item]
    gw = await start_gateway()
    body = b"Subject: one\r\n\r\nfirst part" + fake_end + SMUGGLE
    replies = await asyncio.to_thread(
        raw_session,
        gw.relay_port,
        [
            b"EHLO client.test\r\n",
            b"MAIL FROM:<a@a.test>\r\n",
            b"RCPT TO:<vanban@localhost>\r\n",
            b"DATA\r\n",
            body + b".\r\n",  # the only real end of data
            b"QUIT\r\n",
        ],
    )
    # exactly one answer to the whole body, then QUIT: no command was read from inside it
    assert [r.code for r in replies] == [220, 250, 250, 250, 354, 250, 221]
    # what was sent, with the transparency dot of CRLF-started lines removed
    assert await stored_raw(db) == [(b"\r\n" + body).replace(b"\r\n.", b"\r\n")[2:]]
    (m,) = await stored(db)
    assert m.rcpt_to == ["vanban@localhost"]


async def test_command_after_end_of_data_in_same_packet_is_answered(
    gw: SmtpListener, db: Database
) -> None:
    replies = await asyncio.to_thread(
        raw_session,
        gw.relay_port,
        [
            b"EHLO client.test\r\n",
            b"MAIL FROM:<a@a.test>\r\n",
            b"RCPT TO:<vanban@localhost>\r\n",
            b"DATA\r\n",
            (b"Subject: x\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n", 3),
        ],
    )
    assert [r.code for r in replies] == [220, 250, 250, 250, 354, 250, 250, 221]
    assert await stored_raw(db) == [b"Subject: x\r\n\r\nbody\r\n"]


async def test_big_message_in_many_chunks(gw: SmtpListener, db: Database) -> None:
    line = b"QmFzZTY0IGxpbmUgb2YgYW4gYXR0YWNobWVudA0KQmFzZTY0IGxpbmUgb2YgYW4gYXR0YWNo\r\n"
    data = b"Subject: big\r\n\r\n" + line * 40_000 + b".end\r\n"  # ~3 MB
    refused, reply = await send(gw.relay_port, ["vanban@localhost"], data)
    assert reply.code == 250
    assert await stored_raw(db) == [data]


async def test_big_and_small_messages_committed_together_keep_their_bytes(db: Database) -> None:
    """Messages over 1 MB travel to PostgreSQL by COPY, not as a parameter (memory): in one
    group commit with small ones, each row gets its own bytes, and a big message sent again
    is still found a duplicate."""
    import os

    def msg(n: int, size: int) -> NewMessage:
        body = os.urandom(size // 2).hex().encode()
        return NewMessage(
            source="smtp", peer="127.0.0.1", mail_from=f"s{n}@a.test",
            rcpt_to=["vanban@localhost"], raw=f"Subject: {n}\r\n\r\n".encode() + body,
        )  # fmt: skip

    msgs = [msg(0, 100), msg(1, 3_000_000), msg(2, 2_000), msg(3, 1_500_000), msg(4, 10)]
    committer = Committer(db, max_batch_bytes=64 * 1024 * 1024)
    await committer.start()
    try:
        ids = await asyncio.gather(*(committer.commit(m) for m in msgs))
        again = await committer.commit(msgs[1])
    finally:
        await committer.close()
    rows = {m.id: m for m in await stored(db)}
    for i, m in zip(ids, msgs, strict=True):
        assert rows[i].raw == m.raw and rows[i].size == len(m.raw) and rows[i].state == "received"
    assert rows[again].raw == msgs[1].raw
    assert rows[again].state == "duplicate" and rows[again].duplicate_of == ids[1]


async def test_batch_insert_matches_store_insert_message(db: Database) -> None:
    """The committer's one-statement batch writes what `insert_message` writes (duplicate
    detection off: the same messages are stored twice on purpose)."""
    off = dt.timedelta(0)
    msgs = [
        NewMessage(
            source="smtp",
            peer="127.0.0.1",
            raw=f"Subject: {n}\r\n\r\nthân bài {n}\r\n".encode(),
            mail_from="a@a.test" if n else "",
            rcpt_to=["vanban@localhost", "x@b.test"][: n + 1],
            auth_user="staff" if n else None,
            header_message_id=f"<{n}@a.test>",
            header_from="Người gửi <a@a.test>",
            subject=f"Chủ đề {n}",
            detail={"listener": "relay", "helo": "c", "tls": bool(n)},
        )
        for n in range(2)
    ]
    async with db.transaction() as s:
        ref_ids = [await insert_message(s, m, duplicate_window=off) for m in msgs]
    committer = Committer(db, duplicate_window=off)
    await committer.start()
    try:
        new_ids = await asyncio.gather(*(committer.commit(m) for m in msgs))
    finally:
        await committer.close()
    rows = {m.id: m for m in await stored(db)}
    skip = {"id", "received_at", "updated_at"}
    for ref, new in zip(ref_ids, new_ids, strict=True):
        a, b = rows[ref], rows[new]
        cols = [c.key for c in a.__table__.columns if c.key not in skip]
        assert {c: getattr(a, c) for c in cols} == {c: getattr(b, c) for c in cols}
        ea, eb = await events_for(db, ref), await events_for(db, new)
        assert [(e.kind, e.detail) for e in ea] == [(e.kind, e.detail) for e in eb]


async def test_concurrent_sessions_each_get_their_own_committed_id(
    gw: SmtpListener, db: Database
) -> None:
    async def one(n: int) -> int:
        _, reply = await send(
            gw.relay_port, ["vanban@localhost"], f"Subject: {n}\r\n\r\n{n}\r\n".encode()
        )
        assert reply.code == 250
        return int(reply.text.rsplit(" ", 1)[1])

    ids = await asyncio.gather(*(one(n) for n in range(20)))
    rows = {m.id: m for m in await stored(db)}
    assert sorted(ids) == sorted(rows)
    for n, msg_id in enumerate(ids):
        assert rows[msg_id].subject == str(n)
