"""A claim takes messages by count and by size: oldest first, while the messages before the
next one total under the budget, so a worker never holds many heavy messages waiting on one
batch, and small mail still comes many to a claim. Real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select

from store.db import Database
from store.models import Message
from store.results import claim_received
from tests.pipeline.pipe_support import make_mail, submit

RELAY = ["ai.do@example.org"]
LEASE = dt.timedelta(seconds=60)
KB = 1024


def mail(n: int, size: int) -> bytes:
    return make_mail(f"Thư số {n}", body="x" * size, to=RELAY[0])


async def _claim(db: Database, worker: str, **kw: int) -> list[int]:
    async with db.transaction() as s:
        got = await claim_received(
            s, worker=worker, lease=LEASE, limit=kw.pop("limit", 32), inline_max=0, **kw
        )
    return [m.id for m in got]


async def _sizes(db: Database, ids: list[int]) -> dict[int, int]:
    async with db.sessions() as s:
        rows = (await s.execute(select(Message.id, Message.size).where(Message.id.in_(ids)))).all()
    return dict(rows)


async def test_heavy_messages_come_a_few_to_a_claim_light_ones_many(db: Database) -> None:
    heavy = [await submit(db, mail(i, 16 * KB), RELAY) for i in range(10)]
    light = [await submit(db, mail(100 + i, 200), RELAY) for i in range(40)]
    sizes = await _sizes(db, heavy + light)

    first = await _claim(db, "w1", max_bytes=64 * KB)
    # oldest first, and the ones before the last one taken total under the budget
    assert first == heavy[: len(first)]
    assert sum(sizes[i] for i in first[:-1]) < 64 * KB <= sum(sizes[i] for i in first)
    assert 3 <= len(first) <= 4

    claims = [first]
    while more := await _claim(db, "w1", max_bytes=64 * KB):
        claims.append(more)
    # in order, none left out or taken twice, each claim within the budget and the count
    assert [i for c in claims for i in c] == heavy + light
    for c in claims:
        assert len(c) <= 32 and sum(sizes[i] for i in c[:-1]) < 64 * KB
    # the light ones come many to a claim: there the count is the limit, not the budget
    assert max(len(c) for c in claims) == 32


async def test_one_message_bigger_than_the_budget_is_still_taken(db: Database) -> None:
    big = await submit(db, mail(1, 300 * KB), RELAY)
    after = await submit(db, mail(2, 200), RELAY)
    assert await _claim(db, "w1", max_bytes=64 * KB) == [big]
    assert await _claim(db, "w1", max_bytes=64 * KB) == [after]


async def test_weight_cap_counts_big_ones_at_most_the_cap(db: Database) -> None:
    big = [await submit(db, mail(i, 200 * KB), RELAY) for i in range(8)]
    # each counts as 64 KB: the ones before the last taken stay under 256 KB, so four
    assert await _claim(db, "w1", max_bytes=256 * KB, weight_max=64 * KB) == big[:4]
    # counted at their size, the one before the second is already 200 KB: two
    assert await _claim(db, "w1", max_bytes=256 * KB) == big[4:6]


async def test_concurrent_claims_with_a_budget_never_share_a_message(db: Database) -> None:
    ids = [await submit(db, mail(i, 8 * KB), RELAY) for i in range(60)]
    claimed: list[int] = []

    async def worker(name: str) -> None:
        while True:
            got = await _claim(db, name, max_bytes=40 * KB)
            if not got:
                return
            claimed.extend(got)

    await asyncio.gather(*(worker(f"w{i}") for i in range(4)))
    assert sorted(claimed) == sorted(ids)  # every one taken, none twice
