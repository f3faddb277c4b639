"""Duplicates (DESIGN §2, §6; issue 16 item 3): a client that sends again after a lost `250`
gets `250` again, the copy is stored and logged as a duplicate of the first, and the agency
receives the message once. Real SMTP clients against the real listener, the real pipeline and
delivery service, an aiosmtpd sink as the agency's server."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from config import Settings
from gateway.cli import main as cli
from gateway.delivery.service import DeliveryService
from gateway.smtp import SmtpListener
from store.db import Database
from store.messages import NewMessage, insert_message, store_message
from store.models import Event, Message
from tests.delivery.support import Sink, add_agency, make_raw, start_sink
from tests.pipeline.pipe_support import events_of, running, wait_for
from tests.smtp.clients import send

AGENCY = "000.00.00.G09"
INBOX = "vbden@moj.test"
SENDER = "vanthu@tayninh.gov.vn"


@dataclass
class Gateway:
    listener: SmtpListener
    sink: Sink
    db: Database

    async def send(self, raw: bytes, mail_from: str = SENDER) -> int:
        """One SMTP session; the id the 250 names."""
        _, reply = await send(self.listener.relay_port, [INBOX], raw, mail_from=mail_from)
        assert reply.code == 250, reply
        return int(reply.text.rsplit(" ", 1)[1])

    async def delivered(self, n: int, within: float = 30.0) -> list[bytes]:
        """Wait until the agency's server has `n` messages, then a moment for any extra one."""
        deadline = asyncio.get_running_loop().time() + within
        while len(self.sink.recorder.accepted()) < n:
            assert asyncio.get_running_loop().time() < deadline, (
                f"{len(self.sink.recorder.accepted())} of {n} delivered"
            )
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # a second copy on its way would arrive by now
        return [g.content for g in self.sink.recorder.accepted()]


def _settings(settings: Settings, notices: Sink, window: str) -> Settings:
    s = settings.model_copy(deep=True)
    s.gateway.duplicate_window = window  # type: ignore[assignment]
    s.gateway.claim_timeout = "5s"  # type: ignore[assignment]
    d = s.delivery
    d.retry_schedule = ["1s"]  # type: ignore[list-item]
    d.poll_interval = "1s"  # type: ignore[assignment]
    d.connect_timeout = "2s"  # type: ignore[assignment]
    d.command_timeout = "5s"  # type: ignore[assignment]
    d.smarthost = notices.hostport  # receipts to the sender go elsewhere
    d.require_tls = False
    return s


@pytest.fixture
async def start(settings: Settings, db: Database) -> AsyncIterator[object]:
    stack: list[object] = []

    async def go(window: str = "7d") -> Gateway:
        agency_sink = await start_sink()
        notices = await start_sink()
        stack.extend([agency_sink, notices])
        s = _settings(settings, notices, window)
        await add_agency(db, AGENCY, INBOX, route=agency_sink.route)
        listener = SmtpListener(s, db)
        await listener.start()
        stack.append(listener)
        delivery = DeliveryService(s, db)
        await delivery.start()
        stack.append(delivery)
        pipeline = running(s, db, poll_interval=1.0)
        await pipeline.__aenter__()
        stack.append(pipeline)
        return Gateway(listener, agency_sink, db)

    yield go
    for thing in reversed(stack):
        if hasattr(thing, "__aexit__"):
            await thing.__aexit__(None, None, None)  # type: ignore[attr-defined]
        elif isinstance(thing, Sink):
            await thing.close()
        else:
            await thing.stop()  # type: ignore[attr-defined]


async def _message(db: Database, message_id: int) -> Message:
    async with db.sessions() as s:
        return (await s.scalars(select(Message).where(Message.id == message_id))).one()


async def _raw(db: Database, message_id: int) -> bytes:
    async with db.sessions() as s:
        return (await s.scalars(select(Message.raw).where(Message.id == message_id))).one()


async def test_same_bytes_twice_from_two_concurrent_clients_is_delivered_once(
    start: object, db: Database
) -> None:
    gw: Gateway = await start()  # type: ignore[operator]
    raw = make_raw(to=INBOX)
    ids = sorted(await asyncio.gather(gw.send(raw), gw.send(raw)))  # both get 250
    assert len(set(ids)) == 2
    got = await gw.delivered(1)
    assert len(got) == 1 and got[0].endswith(raw)
    rows = await wait_for(db, ids, {"processed", "duplicate"})
    originals = [i for i in ids if rows[i].state == "processed"]
    copies = [i for i in ids if rows[i].state == "duplicate"]
    assert len(originals) == 1 and len(copies) == 1
    assert rows[copies[0]].duplicate_of == originals[0]
    assert rows[originals[0]].duplicate_of is None
    kinds = [(e.kind, e.detail) for e in await events_of(db, copies[0])]
    assert kinds[0][0] == "received"
    assert kinds[1] == ("duplicate", {"duplicate_of": originals[0], "by": ["msgid", "sha256"]})
    assert len(kinds) == 2  # not parsed, not routed, no receipt: stored and logged only


async def test_five_concurrent_copies_end_with_one_delivery(start: object, db: Database) -> None:
    gw: Gateway = await start()  # type: ignore[operator]
    raw = make_raw(to=INBOX, subject="Thông báo khẩn: năm bản gửi cùng lúc")
    ids = await asyncio.gather(*(gw.send(raw) for _ in range(5)))
    assert len(await gw.delivered(1)) == 1
    rows = await wait_for(db, ids, {"processed", "duplicate"})
    (original,) = [i for i in ids if rows[i].state == "processed"]
    assert sorted(rows[i].duplicate_of for i in ids if i != original) == [original] * 4


async def test_resent_copy_with_another_received_line_is_a_duplicate(
    start: object, db: Database
) -> None:
    """What a relay's retry looks like: the same message with one more trace header."""
    gw: Gateway = await start()  # type: ignore[operator]
    raw = make_raw(to=INBOX, message_id="<cv-15-ubnd@tayninh.gov.vn>")
    first = await gw.send(raw)
    assert len(await gw.delivered(1)) == 1
    again = (
        b"Received: from mx2.tayninh.gov.vn by relay.tayninh.gov.vn; Fri, 4 Dec 2026 17:30 +0700\r\n"
        + raw
    )
    second = await gw.send(again)
    assert len(await gw.delivered(1)) == 1
    row = (await wait_for(db, [second], {"duplicate"}))[second]
    assert row.duplicate_of == first
    dup = [e for e in await events_of(db, second) if e.kind == "duplicate"]
    assert dup[0].detail == {"duplicate_of": first, "by": ["msgid"]}
    assert await _raw(db, second) == again  # the copy is kept byte for byte


async def test_same_message_id_from_another_sender_is_not_a_duplicate(
    start: object, db: Database
) -> None:
    gw: Gateway = await start()  # type: ignore[operator]
    a = make_raw(to=INBOX, message_id="<shared@example.test>", sender=SENDER)
    b = make_raw(to=INBOX, message_id="<shared@example.test>", sender="vanthu@hanoi.gov.vn")
    ids = [await gw.send(a), await gw.send(b, mail_from="vanthu@hanoi.gov.vn")]
    assert len(await gw.delivered(2)) == 2
    rows = await wait_for(db, ids, {"processed"})
    assert [rows[i].duplicate_of for i in ids] == [None, None]


async def test_outside_the_window_is_delivered_again(start: object, db: Database) -> None:
    gw: Gateway = await start("4s")  # type: ignore[operator]
    raw = make_raw(to=INBOX)
    t0 = asyncio.get_running_loop().time()
    first = await gw.send(raw)
    assert len(await gw.delivered(1)) == 1
    await asyncio.sleep(max(0.0, t0 + 4.5 - asyncio.get_running_loop().time()))
    second = await gw.send(raw)  # the window has passed: a new original
    third = await gw.send(raw)  # ... which starts a new window: this one is its duplicate
    assert len(await gw.delivered(2)) == 2
    rows = await wait_for(db, [first, second, third], {"processed", "duplicate"})
    assert [rows[i].state for i in (first, second, third)] == [
        "processed",
        "processed",
        "duplicate",
    ]
    assert rows[second].duplicate_of is None
    assert rows[third].duplicate_of == second


async def test_two_transactions_committing_together_make_one_original(db: Database) -> None:
    """Two sessions insert the same message inside open transactions: the second waits on
    the first's key, and once it commits sees it, whatever the order of the ids."""
    m = NewMessage(
        source="imap",
        peer="acc/INBOX/7",
        raw=make_raw(to=INBOX),
        mail_from=SENDER,
        header_message_id="<x@tayninh.gov.vn>",
    )
    s1 = db.sessions()
    s2 = db.sessions()
    try:
        await s1.begin()
        first = await store_message(s1, m)
        await s2.begin()
        second_task = asyncio.create_task(store_message(s2, m))
        await asyncio.sleep(0.5)
        assert not second_task.done()  # waiting for the first transaction's key
        await s1.commit()
        second = await asyncio.wait_for(second_task, 10)
        await s2.commit()
    finally:
        await s1.close()
        await s2.close()
    assert first.duplicate_of is None
    assert second.duplicate_of == first.id


async def test_a_rolled_back_first_copy_leaves_the_second_the_original(db: Database) -> None:
    m = NewMessage(source="smtp", peer="127.0.0.1", raw=make_raw(to=INBOX), mail_from=SENDER)
    s1 = db.sessions()
    try:
        await s1.begin()
        await store_message(s1, m)
        task = asyncio.create_task(_insert_alone(db, m))
        await asyncio.sleep(0.3)
        await s1.rollback()
    finally:
        await s1.close()
    stored_id = await asyncio.wait_for(task, 10)
    assert (await _message(db, stored_id)).state == "received"


async def _insert_alone(db: Database, m: NewMessage) -> int:
    async with db.transaction() as s:
        return await insert_message(s, m)


async def test_no_duplicates_when_the_window_is_zero(db: Database) -> None:
    m = NewMessage(source="smtp", peer="127.0.0.1", raw=make_raw(to=INBOX), mail_from=SENDER)
    async with db.transaction() as s:
        a = await store_message(s, m, duplicate_window=dt.timedelta(0))
        b = await store_message(s, m, duplicate_window=dt.timedelta(0))
    assert (a.duplicate_of, b.duplicate_of) == (None, None)
    async with db.sessions() as s:
        kinds = (await s.scalars(select(Event.kind).order_by(Event.id))).all()
    assert kinds == ["received", "received"]


async def test_log_and_show_name_the_first_copy(
    db: Database, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    m = NewMessage(
        source="smtp",
        peer="127.0.0.1",
        raw=make_raw(to=INBOX),
        mail_from=SENDER,
        subject="Công văn số 15",
    )
    async with db.transaction() as s:
        first = await store_message(s, m)
        second = await store_message(s, m)
    config = tmp_path / "edocgw.toml"
    config.write_text(
        f'[gateway]\ndata_dir = "{tmp_path / "var"}"\n'
        f'[database]\nurl = "{settings.database.url}"\n'
        '[logging]\nformat = "text"\nlevel = "WARNING"\n',
        encoding="utf-8",
    )
    capsys.readouterr()
    assert await asyncio.to_thread(cli.main, ["log", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.lstrip().startswith(str(second.id))]
    assert f"duplicate of {first.id}" in line
    assert await asyncio.to_thread(cli.main, ["show", str(second.id), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"Duplicate of: {first.id}" in out
    assert "duplicate" in out.splitlines()[0]
    assert (
        await asyncio.to_thread(cli.main, ["log", "--state", "duplicate", "--config", str(config)])
        == 0
    )
    out = capsys.readouterr().out
    assert str(second.id) in out and f"\n{first.id} " not in out
