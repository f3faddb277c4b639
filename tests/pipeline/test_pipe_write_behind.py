"""Write-behind: a worker prepares its next batch while the last one is written, and a stop
waits for the write in flight instead of giving back messages whose results are on their way."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from config import Settings
from gateway.notices.receipts import NoticeRequest
from store.db import Database
from tests.pipeline.pipe_support import (
    PROCESSED_EVENTS,
    events_of,
    make_mail,
    running,
    submit,
    wait_for,
)
from tests.pipeline.test_pipe_workers import Recorder

RELAY = ["ai.do@example.org"]


class HeldWrite:
    """A notices function that holds the first batch's write transaction open until told."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.go_on = asyncio.Event()
        self.calls = 0

    async def __call__(
        self, session: Any, settings: Settings, items: Sequence[NoticeRequest]
    ) -> None:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            await self.go_on.wait()


def letter(n: int) -> bytes:
    return make_mail(f"Công văn số {n}", body=f"Nội dung {n}", to=RELAY[0])


async def test_the_next_batch_is_analysed_while_the_last_one_is_written(
    pipe_settings: Settings, db: Database
) -> None:
    held, rec = HeldWrite(), Recorder()
    async with running(
        pipe_settings, db, analyser=rec, notice=held, workers=1, analysis_threads=True
    ):
        first = await submit(db, letter(1), RELAY)
        await asyncio.wait_for(held.entered.wait(), 20)
        second = await submit(db, letter(2), RELAY)
        for _ in range(400):  # the one worker takes the second letter meanwhile
            if second in rec.calls:
                break
            await asyncio.sleep(0.05)
        assert rec.calls == [first, second]
        msgs = await wait_for(db, [first], {"received", "processed"})
        assert msgs[first].state == "received"  # its write is still open
        held.go_on.set()
        msgs = await wait_for(db, [first, second], {"processed"})
    assert [(m.attempts, m.claimed_by) for m in msgs.values()] == [(1, None), (1, None)]
    for mid in (first, second):
        assert [e.kind for e in await events_of(db, mid)] == PROCESSED_EVENTS


async def test_a_stop_waits_for_the_write_in_flight(pipe_settings: Settings, db: Database) -> None:
    held = HeldWrite()
    async with running(pipe_settings, db, notice=held, workers=1) as p:
        mid = await submit(db, letter(1), RELAY)
        await asyncio.wait_for(held.entered.wait(), 20)
        stopping = asyncio.create_task(p.stop())
        await asyncio.sleep(0.3)
        assert not stopping.done()  # the stop waits for the write
        held.go_on.set()
        await asyncio.wait_for(stopping, 20)
        assert not p.holding() and p.processed == 1
    msg = (await wait_for(db, [mid], {"processed"}, within=1))[mid]
    assert (msg.attempts, msg.claimed_by, msg.claimed_until) == (1, None, None)


async def test_a_failed_attempt_is_taken_again_without_waiting_for_the_poll(
    pipe_settings: Settings, db: Database
) -> None:
    """The failure is written behind, after the worker looked for work and found none: the
    write itself wakes the worker, so a retry due at once does not wait for the slow poll."""
    rec = Recorder(poison=b"POISON")
    async with running(
        pipe_settings, db, analyser=rec, poll_interval=600.0, workers=1, analysis_threads=True
    ):
        bad = await submit(db, make_mail("POISON", body="POISON", to=RELAY[0]), RELAY)
        msgs = await wait_for(db, [bad], {"failed"}, within=30)
    assert (msgs[bad].state, msgs[bad].attempts) == ("failed", 3)
    assert rec.calls == [bad, bad, bad]
