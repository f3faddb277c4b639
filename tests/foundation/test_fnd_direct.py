"""The workers' claims and next-due look-up on the process's own asyncpg pool (store/direct.py)
give what the same statements give through a session: the same rows, JSON as dicts, lists
expanded, and each claim committed on its own. Real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import insert, text, update

from store import deliveries as repo
from store.db import Database, asyncpg_dsn
from store.direct import open_pool
from store.models import Delivery, Message
from store.results import claim_received
from tests.delivery.support import add_agency, put_message
from tests.pipeline.pipe_support import make_mail, submit

AGENCY = "000.00.00.H99"
INBOX = "vanban@dich.gov.vn"
LEASE = dt.timedelta(seconds=60)
AUTH = {"spf": "pass", "dkim": [{"d": "tayninh.gov.vn", "result": "pass"}], "dmarc": None}


async def test_a_delivery_claim_reads_the_same_through_the_pool_as_through_a_session(
    db: Database,
) -> None:
    await add_agency(db, AGENCY, INBOX, "smtp://127.0.0.1:2525")
    mid, (d1,) = await put_message(db, make_mail("Công văn số 7/UBND-VP"), [(INBOX, AGENCY, 1)])
    _, (d2,) = await put_message(db, make_mail("Báo cáo"), [("b@other.gov.vn", None, 0)])
    async with db.transaction() as s:
        await s.execute(update(Message).where(Message.id == mid).values(auth_results=AUTH))

    direct = await repo.claim_due(await db.direct(), worker="w1", lease=LEASE, limit=10)
    # committed on its own: another connection sees the claim at once
    async with db.sessions() as s:
        held = {d.id: d.claimed_by for d in (await s.get(Delivery, d1), await s.get(Delivery, d2))}
    assert held == {d1: "w1", d2: "w1"}

    async with db.transaction() as s:
        assert await repo.release_claims(s, None, "w1") == 2
    async with db.transaction() as s:
        through_session = await repo.claim_due(s, worker="w1", lease=LEASE, limit=10)

    assert [d.id for d in direct] == [d1, d2], "most urgent first"
    assert direct == through_session
    assert direct[0].auth_results == AUTH and direct[0].route == "smtp://127.0.0.1:2525"
    assert direct[0].raw is not None and direct[0].doc_verdicts == ()
    # a message whose bytes the caller holds already is not read again
    async with db.transaction() as s:
        await repo.release_claims(s, None, "w1")
    cached = await repo.claim_due(
        await db.direct(), worker="w2", lease=LEASE, limit=10, cached=[mid]
    )
    assert {d.id: d.raw is None for d in cached} == {d1: True, d2: False}


async def test_a_pipeline_claim_through_the_pool_counts_an_attempt_and_keeps_the_budget(
    db: Database,
) -> None:
    relay = ["ai.do@example.org"]
    ids = [
        await submit(db, make_mail(f"Thư {i}", body="x" * 20_000, to=relay[0]), relay)
        for i in range(5)
    ]
    pool = await db.direct()
    first = await claim_received(
        pool, worker="w1", lease=LEASE, limit=32, inline_max=1 << 20, max_bytes=64 * 1024
    )
    assert [m.id for m in first] == ids[:4]  # three before the last total under 64 KB
    assert all(m.attempts == 1 and m.raw is not None and m.rcpt_to == relay for m in first)
    rest = await claim_received(pool, worker="w2", lease=LEASE, limit=32, inline_max=0)
    assert [(m.id, m.raw) for m in rest] == [(ids[4], None)]
    assert await claim_received(pool, worker="w3", lease=LEASE, limit=32, inline_max=0) == []


async def test_concurrent_claims_through_the_pool_never_take_a_row_twice(db: Database) -> None:
    relay = ["ai.do@example.org"]
    ids = [await submit(db, make_mail(f"Thư {i}"), relay) for i in range(40)]
    pool = await db.direct()

    async def worker(name: str) -> list[int]:
        got: list[int] = []
        while batch := await claim_received(pool, worker=name, lease=LEASE, limit=3, inline_max=0):
            got += [m.id for m in batch]
        return got

    taken = await asyncio.gather(*(worker(f"w{n}") for n in range(4)))
    assert sorted(i for t in taken for i in t) == ids


async def test_the_next_due_look_up_is_the_same_through_the_pool(db: Database) -> None:
    assert await repo.next_due_at(await db.direct()) is None
    _, (d,) = await put_message(db, make_mail("Giấy mời"), [(INBOX, None, 0)])
    due = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    async with db.transaction() as s:
        await s.execute(
            update(Delivery).where(Delivery.id == d).values(state="deferred", next_attempt_at=due)
        )
        assert await repo.next_due_at(s) == due
    assert await repo.next_due_at(await db.direct()) == due


async def test_the_claims_keep_one_plan_as_the_tables_grow(db: Database) -> None:
    """Each connection prepares the claims once; after five plans made for the values,
    PostgreSQL keeps the generic plan while it costs less than those did on average. With
    the state as a parameter, the generic plan took any state to match a share of the rows
    and grew dearer as finished mail filled the tables, so PostgreSQL planned the claims
    afresh at nearly every call (issue 17). With the state in the text, the generic plan
    reads that few rows are `received` or due, and is kept."""
    await add_agency(db, AGENCY, INBOX, "smtp://127.0.0.1:2525")
    pool = await open_pool(asyncpg_dsn(db.url), max_size=1, seconds=10)  # one connection

    async def work(times: int) -> None:
        for _ in range(times):
            await claim_received(pool, worker="w1", lease=LEASE, limit=32, inline_max=0)
            await repo.claim_due(pool, worker="w1", lease=LEASE, limit=10)
            await repo.next_due_at(pool)

    try:
        await work(8)  # a new gateway: empty tables
        raw = make_mail("Công văn số 7/UBND-VP")
        async with db.transaction() as s:
            done = (
                await s.execute(
                    insert(Message).returning(Message.id),
                    [
                        {
                            "source": "smtp",
                            "peer": "127.0.0.1",
                            "mail_from": "vanthu@tayninh.gov.vn",
                            "rcpt_to": [INBOX],
                            "size": len(raw),
                            "sha256": f"{i:064x}",
                            "raw": raw,
                            "state": "processed",
                        }
                        for i in range(2000)
                    ],
                )
            ).scalars()
            await s.execute(
                insert(Delivery),
                [
                    {
                        "message_id": m,
                        "recipient": INBOX,
                        "agency_code": AGENCY,
                        "state": "delivered",
                    }
                    for m in done
                ],
            )
        async with db.transaction() as s:  # as autovacuum does when a table has grown
            await s.execute(text("ANALYZE messages"))
            await s.execute(text("ANALYZE deliveries"))
        await work(8)
        plans = await pool.fetch(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
        )
    finally:
        await pool.close()
    found = {
        what: [(p["generic_plans"], p["custom_plans"]) for p in plans if mark in p["statement"]]
        for what, mark in (
            ("pipeline claim", "UPDATE messages SET attempts"),
            ("delivery claim", "UPDATE deliveries SET state"),
            ("next due", "min(deliveries.next_attempt_at)"),
        )
    }
    # five plans made for the values, then the generic one, also once the tables have grown
    assert found == {what: [(11, 5)] for what in found}


async def test_closing_the_database_closes_its_pool(db_url: str) -> None:
    db = Database.connect(db_url, pool_size=1)
    pool = await db.direct()
    assert await db.direct() is pool
    await db.close()
    assert pool.is_closing()
