"""Batches: many messages per claim and per write, and batch-mates of a bad message unharmed."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select, update

from config import Settings
from gateway.notices.receipts import NoticeRequest, queue_notices
from gateway.pipeline.analyse import AnalysisFailed, ContentAnalysis, analyse_content, analyse_many
from store.db import CHANNEL_DELIVERIES, Database, asyncpg_dsn
from store.models import Delivery, Document, Event, Message
from store.results import DeliveryRow, DocumentRow, MessageResult, write_batch
from tests.pipeline.pipe_support import (
    PROCESSED_EVENTS,
    events_of,
    make_mail,
    running,
    submit,
    wait_for,
)
from tests.support.pki import make_pdf

RELAY = ["ai.do@example.org"]


def plain(n: int, marker: str = "") -> bytes:
    return make_mail(f"Thư số {n} {marker}", body=f"Nội dung {n} {marker}", to=RELAY[0])


async def _count(db: Database, stmt: Any) -> int:
    async with db.sessions() as s:
        return int((await s.execute(stmt)).scalar_one())


async def test_a_backlog_is_processed_in_batches_each_message_complete(
    pipe_settings: Settings, db: Database
) -> None:
    """40 waiting messages, batches of up to 16: every message gets its own events in order,
    its delivery, and a NOTIFY naming it."""
    ids = [await submit(db, plain(i), RELAY) for i in range(40)]
    listener = await asyncpg.connect(asyncpg_dsn(db.url))
    woken: list[str] = []
    await listener.add_listener(CHANNEL_DELIVERIES, lambda *a: woken.append(a[3]))
    try:
        async with running(pipe_settings, db, batch_size=16, notice=False) as p:
            msgs = await wait_for(db, ids, {"processed", "failed"}, within=30)
        assert p.processed == 40
        await asyncio.sleep(0.2)  # the last notifications reach the listener
    finally:
        await listener.close()
    assert {(m.state, m.attempts, m.claimed_by) for m in msgs.values()} == {("processed", 1, None)}
    for mid in ids:
        assert [e.kind for e in await events_of(db, mid)] == PROCESSED_EVENTS
    assert await _count(db, select(func.count()).where(Delivery.message_id.in_(ids))) == 40
    assert sorted(int(x) for x in woken) == sorted(ids)


@pytest.mark.parametrize("alone", [False, True], ids=["in-transaction", "alone"])
async def test_write_batch_writes_only_messages_still_claimed_by_the_writer(
    db: Database, alone: bool
) -> None:
    """Fenced by the statement itself: the same in a transaction (with notices to queue) and
    alone on the process's own pool (gateway/pipeline/writer.py)."""
    mine, lost = await submit(db, plain(1), RELAY), await submit(db, plain(2), RELAY)
    async with db.transaction() as s:
        await s.execute(update(Message).where(Message.id == mine).values(claimed_by="w"))
        await s.execute(update(Message).where(Message.id == lost).values(claimed_by="other"))

    def result(mid: int) -> MessageResult:
        return MessageResult(
            mid,
            "processed",
            "unsigned",
            None,
            documents=[DocumentRow("1", "pdf", 3, "ab" * 32, filename="a.pdf")],
            deliveries=[DeliveryRow("a@example.org", None)],
            events=[("parsed", {"documents": 1})],
        )

    if alone:
        written = await write_batch(await db.direct(), "w", [result(mine), result(lost)])
    else:
        async with db.transaction() as s:
            written = await write_batch(s, "w", [result(mine), result(lost)])
    assert list(written) == [mine] and len(written[mine]) == 1
    async with db.sessions() as s:
        states = dict((await s.execute(select(Message.id, Message.state))).all())
        docs = (await s.execute(select(Document.message_id))).scalars().all()
        kinds = (
            await s.execute(select(Event.message_id, Event.kind).where(Event.kind != "received"))
        ).all()
    assert states == {mine: "processed", lost: "received"}
    assert docs == [mine]
    assert kinds == [(mine, "parsed")]


async def test_write_batch_stores_nul_characters_as_replacement_characters(db: Database) -> None:
    """Whatever reaches the batch write with a NUL in it (a filename, a fact, a defect, an
    event's detail) is stored with U+FFFD: PostgreSQL text and jsonb refuse NUL."""
    mid = await submit(db, plain(1), RELAY)
    async with db.transaction() as s:
        await s.execute(update(Message).where(Message.id == mid).values(claimed_by="w"))
    doc = DocumentRow(
        "1",
        "pdf",
        3,
        "ab" * 32,
        filename="a\x00.pdf",
        facts={"subject": "về\x00việc"},
        defects=["odd\x00"],
    )
    result = MessageResult(
        mid, "processed", "unsigned", None, documents=[doc], events=[("parsed", {"k": "v\x00"})]
    )
    assert list(await write_batch(await db.direct(), "w", [result])) == [mid]
    async with db.sessions() as s:
        row = (await s.execute(select(Document).where(Document.message_id == mid))).scalar_one()
        detail = (
            await s.execute(
                select(Event.detail).where(Event.message_id == mid, Event.kind == "parsed")
            )
        ).scalar_one()
    assert (row.filename, row.subject, row.defects) == (
        "a\ufffd.pdf",
        "về\ufffdviệc",
        ["odd\ufffd"],
    )
    assert detail == {"k": "v\ufffd"}


async def test_a_message_the_database_refuses_does_not_fail_its_batch_mates(
    pipe_settings: Settings, db: Database
) -> None:
    """A size beyond bigint cannot be stored: that message's batch write fails, the batch is
    written again one by one, and only the bad message is retried (then failed)."""

    from tests.pipeline.pipe_support import huge_size

    doc = [("12_TB-SNV.pdf", make_pdf("Thông báo 12/TB-SNV"), "application/pdf")]
    bad = await submit(db, make_mail("HUGE-SIZE", doc, body="HUGE-SIZE", to=RELAY[0]), RELAY)
    good = [await submit(db, make_mail(f"Thư {i}", doc, to=RELAY[0]), RELAY) for i in range(5)]
    async with running(pipe_settings, db, analyser=huge_size, batch_size=10, notice=False):
        msgs = await wait_for(db, [bad, *good], {"processed", "failed"}, within=30)
    assert {(msgs[i].state, msgs[i].attempts) for i in good} == {("processed", 1)}
    assert (msgs[bad].state, msgs[bad].attempts) == ("failed", 3)
    assert (msgs[bad].error or "").startswith("DBAPIError: ")
    assert "SELECT" not in (msgs[bad].error or "")  # one line, not the statement
    assert await _count(db, select(func.count()).where(Document.message_id == bad)) == 0


async def test_nul_characters_from_the_mail_are_stored_as_replacement_characters(
    pipe_settings: Settings, db: Database
) -> None:
    """PostgreSQL text and jsonb refuse NUL; an RFC 2231 filename with %00 must not make the
    message fail."""
    raw = (
        "From: vanthu@tayninh.gov.vn\r\nTo: ai.do@example.org\r\nSubject: =?utf-8?q?a=00b?=\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
        "--XX\r\nContent-Type: text/plain\r\n\r\nKính gửi\r\n--XX\r\n"
        "Content-Type: application/pdf\r\n"
        "Content-Disposition: attachment; filename*=utf-8''bad%00name.pdf\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        # a readable unsigned PDF (one that says %PDF- but cannot be read is malformed, held)
        + base64.encodebytes(make_pdf("Công văn")).decode().replace("\n", "\r\n")
        + "\r\n--XX--\r\n"
    ).encode()
    mid = await submit(db, raw, RELAY)
    pipe_settings.policy.unreadable = "forward"  # the stub PDF has no page to read
    async with running(pipe_settings, db):
        msg = (await wait_for(db, [mid], {"processed", "failed"}))[mid]
    assert (msg.state, msg.error) == ("processed", None)
    async with db.sessions() as s:
        (name,) = (
            await s.scalars(select(Document.filename).where(Document.message_id == mid))
        ).all()
    assert name == "bad\ufffdname.pdf"
    classified = next(e for e in await events_of(db, mid) if e.kind == "classified")
    assert classified.detail["documents"][0]["filename"] == "bad\ufffdname.pdf"


async def test_a_failing_receipt_does_not_lose_results_or_the_other_receipts(
    pipe_settings: Settings, db: Database
) -> None:
    bad = await submit(db, plain(0, "NO-RECEIPT"), RELAY)
    good = [await submit(db, plain(i), RELAY) for i in range(1, 4)]

    async def notice(s: Any, settings: Settings, items: list[NoticeRequest]) -> Any:
        if any(it.message_id == bad for it in items):
            raise RuntimeError("receipts are broken for this one")
        return await queue_notices(s, settings, items)

    async with running(pipe_settings, db, notice=notice, batch_size=10):
        msgs = await wait_for(db, [bad, *good], {"processed", "failed"})
    assert {(m.state, m.attempts) for m in msgs.values()} == {("processed", 1)}
    for mid in [bad, *good]:
        receipts = [
            e.detail["notice"] for e in await events_of(db, mid) if e.kind == "receipt_sent"
        ]
        assert receipts == ([] if mid == bad else ["receipt/accepted"]), mid


async def test_a_big_message_is_read_and_processed_on_its_own(
    pipe_settings: Settings, db: Database
) -> None:
    """Bigger than what comes with the claim (256 KiB): read alone, stored like any other."""
    data = bytes(range(256)) * 1600  # 400 KiB, not text
    big = await submit(
        db, make_mail("Tài liệu lớn", [("du-lieu.bin", data, "application/octet-stream")]), RELAY
    )
    small = [await submit(db, plain(i), RELAY) for i in range(3)]
    async with running(pipe_settings, db, notice=False):
        msgs = await wait_for(db, [big, *small], {"processed", "failed"})
    assert {m.state for m in msgs.values()} == {"processed"}
    # it went to the analysis process as a spool file, removed once analysed
    assert list((Path(pipe_settings.gateway.data_dir) / "spool").iterdir()) == []
    async with db.sessions() as s:
        (doc,) = (await s.scalars(select(Document).where(Document.message_id == big))).all()
    assert (doc.filename, doc.size, doc.sha256) == (
        "du-lieu.bin",
        len(data),
        hashlib.sha256(data).hexdigest(),
    )


async def test_a_parse_process_dying_in_a_batch_spares_the_others(
    pipe_settings: Settings, db: Database
) -> None:
    """The whole batch is analysed in one call to the parse process; when it dies, each
    message is analysed again alone, so the others are processed on their first attempt."""
    from tests.pipeline.pipe_support import dying_analyser

    pipe_settings.gateway.parse_processes = 1
    bad = await submit(db, plain(0, "DIE-NOW"), RELAY)
    good = [await submit(db, plain(i), RELAY) for i in range(1, 4)]
    async with running(pipe_settings, db, analyser=dying_analyser, workers=1, notice=False):
        msgs = await wait_for(db, [bad, *good], {"processed", "failed"}, within=60)
    assert {(msgs[i].state, msgs[i].attempts) for i in good} == {("processed", 1)}
    assert (msgs[bad].state, msgs[bad].attempts) == ("failed", 3)
    assert msgs[bad].error == "the analysis process died (exit code 3) on this message"


def test_analyse_many_keeps_a_failure_with_its_own_message(tmp_path: Path) -> None:
    def analyser(raw: bytes, spool: Path) -> ContentAnalysis:
        if raw == b"boom":
            raise ValueError("cannot read this")
        return analyse_content(raw, spool)

    out = analyse_many(
        analyser,
        [(plain(1), tmp_path / "a"), (b"boom", tmp_path / "b"), (plain(2), tmp_path / "c")],
    )
    assert [type(x).__name__ for x in out] == [
        "ContentAnalysis",
        "AnalysisFailed",
        "ContentAnalysis",
    ]
    assert isinstance(out[1], AnalysisFailed) and str(out[1]) == "ValueError: cannot read this"
    assert out[0].subject.startswith("Thư số 1") and out[2].subject.startswith("Thư số 2")
