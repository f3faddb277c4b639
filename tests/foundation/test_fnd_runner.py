"""The runner base class every stage runs on, on a real database: it claims committed work,
wakes on NOTIFY, takes over work whose claim expired, gives work back when stopped, and backs
off after errors without dying."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

from gateway.runner import Runner
from store.db import CHANNEL_RECEIVED, Database, asyncpg_dsn
from store.messages import NewMessage, insert_message
from store.models import Message
from store.results import (
    ClaimedMessage,
    MessageResult,
    claim_received,
    release_unfinished,
    write_batch,
)


class Marker(Runner[ClaimedMessage]):
    """Claims `received` messages the way the pipeline does and marks them `processed`
    (or, with `block`, holds them until stopped)."""

    name = "marker"
    channel = CHANNEL_RECEIVED

    def __init__(self, db: Database, worker: str, *, lease: float = 30, block: bool = False):
        super().__init__()
        self.db = db
        self.dsn = asyncpg_dsn(db.url)
        self.worker_id = worker
        self.lease = dt.timedelta(seconds=lease)
        self.block = block
        self.poll_interval = 30.0
        self.handled: list[int] = []
        self.claimed = asyncio.Event()

    async def claim(self, worker: str) -> Sequence[ClaimedMessage]:
        async with self.db.transaction() as s:
            return await claim_received(
                s, worker=worker, lease=self.lease, limit=10, inline_max=1 << 20
            )

    async def handle(self, worker: str, batch: Sequence[ClaimedMessage]) -> None:
        self.handled += [m.id for m in batch]
        self.claimed.set()
        if self.block:
            await asyncio.Event().wait()  # until stop() cancels it
        async with self.db.transaction() as s:
            written = await write_batch(
                s, worker, [MessageResult(m.id, "processed", None, None) for m in batch]
            )
        for m in batch:
            if m.id in written:
                self.finished(worker, m)

    async def release(self, worker: str, unfinished: Sequence[ClaimedMessage]) -> None:
        async with self.db.transaction() as s:
            for m in unfinished:
                await release_unfinished(s, m.id, worker)


async def _insert(db: Database, n: int = 1) -> list[int]:
    ids = []
    async with db.transaction() as s:
        for i in range(n):
            ids.append(
                await insert_message(
                    s, NewMessage(source="smtp", peer="127.0.0.1", raw=b"Subject: %d\r\n\r\nx" % i)
                )
            )
    return ids


async def _row(db: Database, mid: int) -> Message:
    async with db.sessions() as s:
        row = await s.get(Message, mid)
        assert row is not None
        return row


async def _until(cond, within: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(within):
        while not await cond():  # noqa: ASYNC110 - the state changes in the database
            await asyncio.sleep(0.05)


async def test_a_notify_wakes_an_idle_runner_long_before_the_poll(db: Database) -> None:
    r = Marker(db, "w1")
    await r.start()
    try:
        await asyncio.sleep(0.3)  # idle, waiting for a NOTIFY (the poll is 30 s)
        (mid,) = await _insert(db)

        async def done() -> bool:
            return (await _row(db, mid)).state == "processed"

        await _until(done, within=10)  # well inside the 30 s poll: it was the NOTIFY
        row = await _row(db, mid)
        assert row.claimed_by is None and row.attempts == 1
        assert r.alive()
    finally:
        await r.stop()
    assert not r.alive()


async def test_stop_gives_back_what_it_held_and_another_runner_takes_it(db: Database) -> None:
    ids = await _insert(db, 3)
    a = Marker(db, "a", block=True)
    a.stop_grace = 0.2
    await a.start()
    await asyncio.wait_for(a.claimed.wait(), 20)
    assert sorted(a.handled) == ids
    await a.stop()
    for mid in ids:
        row = await _row(db, mid)
        # released at once, and the interrupted attempt does not count against the message
        assert row.state == "received" and row.claimed_by is None and row.attempts == 0
    b = Marker(db, "b")
    await b.start()
    try:

        async def all_done() -> bool:
            return all([(await _row(db, m)).state == "processed" for m in ids])

        await _until(all_done)
    finally:
        await b.stop()
    assert sorted(b.handled) == ids


async def test_work_of_a_runner_that_died_returns_when_its_claim_expires(db: Database) -> None:
    (mid,) = await _insert(db)
    async with db.transaction() as s:  # a worker claims it and dies without a word
        claimed = await claim_received(
            s, worker="dead", lease=dt.timedelta(seconds=1), limit=10, inline_max=0
        )
    assert [m.id for m in claimed] == [mid]
    r = Marker(db, "alive")
    r.poll_interval = 0.2
    await r.start()
    try:

        async def done() -> bool:
            return (await _row(db, mid)).state == "processed"

        await _until(done)
    finally:
        await r.stop()
    assert r.handled == [mid]
    assert (await _row(db, mid)).attempts == 2  # the dead worker's attempt counted


class Flaky(Marker):
    """Its claim fails the first `failures` times (as when the database is away)."""

    def __init__(self, db: Database, failures: int) -> None:
        super().__init__(db, "flaky")
        self.failures = failures
        self.waits: list[float] = []
        self.backoff_initial = 0.05
        self.backoff_max = 0.2

    async def claim(self, worker: str) -> Sequence[ClaimedMessage]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database away")
        return await super().claim(worker)

    async def failed(self, worker: str, error: BaseException, wait: float) -> None:
        self.waits.append(wait)


async def test_errors_back_off_doubling_to_a_cap_and_the_runner_keeps_going(db: Database) -> None:
    (mid,) = await _insert(db)
    r = Flaky(db, failures=5)
    await r.start()
    try:

        async def done() -> bool:
            return (await _row(db, mid)).state == "processed"

        await _until(done)
        assert r.alive()
    finally:
        await r.stop()
    assert r.waits == [0.05, 0.1, 0.2, 0.2, 0.2]
    assert r.handled == [mid]


async def test_an_error_while_handling_keeps_the_worker_and_the_claim_expires(
    db: Database,
) -> None:
    (mid,) = await _insert(db)

    class Broken(Marker):
        calls = 0

        async def handle(self, worker: str, batch: Sequence[ClaimedMessage]) -> None:
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("a bug")
            await super().handle(worker, batch)

    r = Broken(db, "b", lease=1)
    r.backoff_initial = 0.05
    r.poll_interval = 0.2
    await r.start()
    try:

        async def done() -> bool:
            return (await _row(db, mid)).state == "processed"

        await _until(done)
    finally:
        await r.stop()
    assert r.calls == 2 and (await _row(db, mid)).attempts == 2


async def test_work_announced_during_a_batch_is_claimed_without_asking_how_long_to_wait(
    db: Database,
) -> None:
    """A worker that goes idle with a NOTIFY already in hand claims again at once: the wait's
    length (for the delivery, a query for the next retry due) is not asked for."""

    class Counting(Marker):
        def __init__(self) -> None:
            super().__init__(db, "w1")
            self.log: list[str] = []
            self.second: int | None = None

        def more_waiting(self, batch: Sequence[ClaimedMessage]) -> bool:
            return False  # as the delivery after a batch smaller than its claim

        async def idle_timeout(self) -> float:
            self.log.append("asked")
            return await super().idle_timeout()

        async def handle(self, worker: str, batch: Sequence[ClaimedMessage]) -> None:
            self.log += [f"handled {m.id}" for m in batch]
            if self.second is None:
                # another message, announced while this batch is handled
                self.second = await _insert_one(db, b"Subject: second\r\n\r\nx")
                assert self.waker is not None
                event = self.waker._events[CHANNEL_RECEIVED]

                async def announced() -> bool:
                    return event.is_set()

                await _until(announced, within=10)
            await super().handle(worker, batch)

    r = Counting()
    await r.start()
    try:

        async def idle() -> bool:
            return "asked" in r.log

        await _until(idle, within=10)  # nothing there yet: idle, waiting for a NOTIFY
        first = await _insert_one(db, b"Subject: first\r\n\r\nx")

        async def both() -> bool:
            return r.second is not None and f"handled {r.second}" in r.log

        await _until(both, within=10)
    finally:
        await r.stop()
    after_first = r.log[r.log.index(f"handled {first}") :]
    assert after_first[:2] == [f"handled {first}", f"handled {r.second}"], r.log


async def _insert_one(db: Database, raw: bytes) -> int:
    async with db.transaction() as s:
        return await insert_message(s, NewMessage(source="smtp", peer="127.0.0.1", raw=raw))
