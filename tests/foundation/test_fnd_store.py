"""The store on a real PostgreSQL: migrations, atomic inserts, claims and the event chain."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select, text

from store.claims import claim, release
from store.db import Database
from store.events import append_event, seal_events, verify_chain
from store.messages import NewMessage, insert_message
from store.models import Event, Message


async def test_migrations_from_empty_then_nothing_more(pg_server):
    name = await pg_server.create_empty_database()
    db = Database.connect(pg_server.url_for(name), pool_size=2)
    try:
        assert await db.upgrade() == ["0001"] or (await db.upgrade()) == []
        async with db.transaction() as s:
            tables = set(
                (
                    await s.execute(
                        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                    )
                ).scalars()
            )
            schema_before = (
                await s.execute(
                    text(
                        "SELECT string_agg(table_name || '.' || column_name || ':' || data_type, ',' "
                        "ORDER BY table_name, column_name) FROM information_schema.columns "
                        "WHERE table_schema = 'public'"
                    )
                )
            ).scalar_one()
        assert {
            "messages",
            "documents",
            "signatures",
            "agencies",
            "deliveries",
            "events",
            "users",
            "imap_state",
            "alembic_version",
        } <= tables
        assert await db.upgrade() == []  # a second upgrade changes nothing
        async with db.transaction() as s:
            schema_after = (
                await s.execute(
                    text(
                        "SELECT string_agg(table_name || '.' || column_name || ':' || data_type, ',' "
                        "ORDER BY table_name, column_name) FROM information_schema.columns "
                        "WHERE table_schema = 'public'"
                    )
                )
            ).scalar_one()
        assert schema_after == schema_before
    finally:
        await db.close()
        await pg_server.drop_database(name)


def _msg(i: int = 0) -> NewMessage:
    raw = f"From: a@b.gov.vn\r\nSubject: Thông báo {i}\r\n\r\nNội dung\r\n".encode()
    return NewMessage(
        source="smtp",
        peer="127.0.0.1",
        raw=raw,
        mail_from="a@b.gov.vn",
        rcpt_to=["vanban@localhost"],
        subject=f"Thông báo {i}",
    )


async def _counts(db: Database) -> tuple[int, int]:
    async with db.transaction() as s:
        m = (await s.execute(select(func.count()).select_from(Message))).scalar_one()
        e = (await s.execute(select(func.count()).select_from(Event))).scalar_one()
    return m, e


async def test_message_and_event_commit_together(db):
    async with db.transaction() as s:
        mid = await insert_message(s, _msg())
    async with db.transaction() as s:
        row = await s.get(Message, mid)
        assert row is not None and row.state == "received"
        raw = (await s.execute(select(Message.raw).where(Message.id == mid))).scalar_one()
        assert raw == _msg().raw and row.size == len(raw) and row.sha256 == _msg().sha256
        kinds = (await s.execute(select(Event.kind).where(Event.message_id == mid))).scalars().all()
    assert kinds == ["received"]


async def test_failure_half_way_leaves_neither(db):
    with pytest.raises(Exception, match="division by zero"):
        async with db.transaction() as s:
            await insert_message(s, _msg())
            await s.execute(text("SELECT 1/0"))  # the database fails after the insert
    assert await _counts(db) == (0, 0)


async def test_notify_is_sent_only_on_commit(db):
    import asyncpg

    from store.db import CHANNEL_RECEIVED, asyncpg_dsn

    got: list[str] = []
    conn = await asyncpg.connect(asyncpg_dsn(db.url))
    await conn.add_listener(CHANNEL_RECEIVED, lambda *a: got.append(a[3]))
    try:
        with pytest.raises(RuntimeError):
            async with db.transaction() as s:
                await insert_message(s, _msg(1))
                raise RuntimeError("abort")
        async with db.transaction() as s:
            mid = await insert_message(s, _msg(2))
        for _ in range(50):
            if got:
                break
            await asyncio.sleep(0.02)
        assert got == [str(mid)]
    finally:
        await conn.close()


async def _insert_many(db: Database, n: int) -> list[int]:
    ids = []
    async with db.transaction() as s:
        for i in range(n):
            ids.append(await insert_message(s, _msg(i)))
    return ids


async def test_concurrent_claimers_never_share_a_row(db):
    ids = await _insert_many(db, 40)
    lease = dt.timedelta(minutes=5)

    async def claimer(name: str) -> list[int]:
        got: list[int] = []
        while True:
            async with db.transaction() as s:
                batch = await claim(
                    s,
                    Message,
                    worker=name,
                    lease=lease,
                    limit=3,
                    where=[Message.state == "received"],
                    order_by=[Message.received_at],
                )
                await asyncio.sleep(0.01)  # hold the row locks a moment, as real work would
            if not batch:
                return got
            got.extend(batch)

    results = await asyncio.gather(*(claimer(f"w{i}") for i in range(4)))
    flat = [x for r in results for x in r]
    assert sorted(flat) == sorted(ids)  # every row claimed ...
    assert len(flat) == len(set(flat))  # ... by exactly one claimer
    assert sum(1 for r in results if r) >= 2  # and the work really was shared


async def test_expired_claim_returns_its_row_and_release_frees_it(db):
    ids = await _insert_many(db, 2)
    async with db.transaction() as s:
        got = await claim(
            s,
            Message,
            worker="dead",
            lease=dt.timedelta(seconds=1),
            limit=1,
            where=[Message.state == "received"],
        )
    assert got == ids[:1]
    async with db.transaction() as s:  # the live claim hides the row from others
        assert (
            await claim(
                s,
                Message,
                worker="b",
                lease=dt.timedelta(minutes=5),
                limit=5,
                where=[Message.state == "received"],
            )
            == ids[1:]
        )
    await asyncio.sleep(1.2)
    async with db.transaction() as s:  # the dead worker's lease ran out
        assert (
            await claim(
                s,
                Message,
                worker="c",
                lease=dt.timedelta(minutes=5),
                limit=5,
                where=[Message.state == "received"],
            )
            == ids[:1]
        )
        await release(s, Message, ids, "c")
    async with db.transaction() as s:
        assert (
            await claim(
                s,
                Message,
                worker="d",
                lease=dt.timedelta(minutes=5),
                limit=5,
                where=[Message.state == "received"],
            )
            == ids[:1]
        )


async def _chain_of(db: Database, n: int) -> list[int]:
    async with db.transaction() as s:
        for i in range(n):
            await append_event(
                s, "attempt", message_id=i + 1, detail={"reply": f"250 ok {i}", "vi": "Đã gửi"}
            )
    async with db.transaction() as s:
        assert await seal_events(s) == n
    async with db.transaction() as s:
        return list((await s.execute(select(Event.id).order_by(Event.chain_seq))).scalars())


async def test_event_chain_verifies_when_untouched(db):
    await _chain_of(db, 25)
    async with db.transaction() as s:
        await append_event(s, "delivered", message_id=99)  # one not sealed yet
    async with db.transaction() as s:
        report = await verify_chain(s, batch=7)  # batches smaller than the chain
    assert report.ok and report.checked == 25 and report.unsealed == 1


async def test_event_chain_names_an_edited_row(db):
    ids = await _chain_of(db, 10)
    async with db.transaction() as s:
        await s.execute(
            text(
                "UPDATE events SET detail = jsonb_set(detail, '{reply}', '\"550 forged\"') WHERE id = :i"
            ),
            {"i": ids[6]},
        )
    async with db.transaction() as s:
        report = await verify_chain(s)
    assert not report.ok and report.broken_event_id == ids[6]
    assert "changed" in report.reason and report.checked == 6


async def test_event_chain_names_a_deleted_row(db):
    ids = await _chain_of(db, 10)
    async with db.transaction() as s:
        await s.execute(text("DELETE FROM events WHERE id = :i"), {"i": ids[3]})
    async with db.transaction() as s:
        report = await verify_chain(s)
    assert not report.ok and report.broken_event_id == ids[4] and "missing" in report.reason


async def test_sealing_continues_the_chain_across_batches(db):
    await _chain_of(db, 5)
    await _chain_of(db, 5)
    async with db.transaction() as s:
        report = await verify_chain(s)
    assert report.ok and report.checked == 10
