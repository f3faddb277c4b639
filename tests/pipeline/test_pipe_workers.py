"""Workers: claims, leases, wake-ups, poison messages, shutdown, and idempotent results."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from sqlalchemy import func, select, text, update

from config import Settings
from gateway.pipeline.analyse import ContentAnalysis, analyse_content
from store.db import Database
from store.models import Delivery, Document, Event, Message
from store.results import DeliveryRow, MessageResult, claim_received, write_batch
from tests.pipeline.pipe_support import events_of, make_mail, running, submit, wait_for

RELAY = ["ai.do@example.org"]


class Recorder:
    """The real analyser, noting which message each call was for (from its spool dir name).
    It shares its notes with the test, so it runs with `analysis_threads=True`."""

    def __init__(self, poison: bytes | None = None) -> None:
        self.calls: list[int] = []
        self.poison = poison
        self._lock = threading.Lock()

    def __call__(self, raw: bytes, spool: Path) -> ContentAnalysis:
        with self._lock:
            self.calls.append(int(spool.name.split("-")[0]))
        if self.poison is not None and self.poison in raw:
            raise RuntimeError("stage exploded on this input")
        return analyse_content(raw, spool)


def plain(n: int, marker: str = "") -> bytes:
    return make_mail(f"Thư số {n} {marker}", body=f"Nội dung {n} {marker}", to=RELAY[0])


async def test_poison_message_fails_after_three_attempts_and_others_flow(
    pipe_settings: Settings, db: Database
) -> None:
    rec = Recorder(poison=b"POISON")
    async with running(pipe_settings, db, analyser=rec, analysis_threads=True):
        bad = await submit(db, plain(0, "POISON"), RELAY)
        good = [await submit(db, plain(i), RELAY) for i in range(1, 6)]
        msgs = await wait_for(db, [bad, *good], {"processed", "failed"})
    assert {msgs[i].state for i in good} == {"processed"}
    assert (msgs[bad].state, msgs[bad].attempts) == ("failed", 3)
    assert msgs[bad].error == "RuntimeError: stage exploded on this input"
    assert rec.calls.count(bad) == 3
    failed = [e for e in await events_of(db, bad) if e.kind == "failed"]
    assert len(failed) == 1 and failed[0].detail["attempts"] == 3


async def test_two_pipelines_never_process_the_same_message(
    pipe_settings: Settings, db: Database
) -> None:
    rec = Recorder()
    ids = [await submit(db, plain(i), RELAY) for i in range(40)]
    async with running(pipe_settings, db, analyser=rec, analysis_threads=True) as p1:
        async with running(pipe_settings, db, analyser=rec, workers=3, analysis_threads=True) as p2:
            msgs = await wait_for(db, ids, {"processed", "failed"}, within=30)
    assert {m.state for m in msgs.values()} == {"processed"}
    assert sorted(rec.calls) == sorted(ids)  # each message analysed exactly once
    assert p1.processed + p2.processed == 40
    async with db.sessions() as s:
        parsed = (
            await s.execute(
                select(Event.message_id, func.count())
                .where(Event.kind == "parsed")
                .group_by(Event.message_id)
            )
        ).all()
        deliveries = (
            await s.execute(select(func.count()).where(Delivery.message_id.in_(ids)))
        ).scalar_one()
    assert sorted(m for m, n in parsed if n == 1) == sorted(ids)
    assert deliveries == 40


async def test_expired_claim_returns_the_message(pipe_settings: Settings, db: Database) -> None:
    mid = await submit(db, plain(1), RELAY)
    async with db.transaction() as s:  # a worker that claims it (as workers do) and dies
        import datetime as dt

        claimed = await claim_received(
            s, worker="dead", lease=dt.timedelta(seconds=1.5), limit=1, inline_max=0
        )
        assert [m.id for m in claimed] == [mid]
    async with db.sessions() as s:
        lease_end = (await s.get(Message, mid)).claimed_until
    assert lease_end is not None
    async with running(pipe_settings, db, poll_interval=0.2):
        msg = (await wait_for(db, [mid], {"processed", "failed"}, within=10))[mid]
    assert (msg.state, msg.attempts, msg.claimed_by) == ("processed", 2, None)
    # Not taken from the dead worker while its lease held: everything the live worker wrote
    # is stamped after the lease's end (by the database's clock, so a slow start under load
    # cannot make this pass or fail by chance).
    worked = [e for e in await events_of(db, mid) if e.kind != "received"]
    assert worked and min(e.at for e in worked) >= lease_end, [(e.kind, e.at) for e in worked]


async def test_notify_wakes_the_pipeline_well_under_a_second(
    pipe_settings: Settings, db: Database
) -> None:
    async with running(pipe_settings, db, poll_interval=60):
        await asyncio.sleep(1.0)  # LISTEN is up; from here only NOTIFY can wake the workers
        latencies = []
        for i in range(3):
            t0 = time.monotonic()
            mid = await submit(db, plain(i), RELAY)
            await wait_for(db, [mid], {"processed"}, within=5)
            latencies.append(time.monotonic() - t0)
    assert max(latencies) < 1.0, latencies


async def test_message_a_worker_died_on_three_times_is_failed_unprocessed(
    pipe_settings: Settings, db: Database
) -> None:
    rec = Recorder()
    mid = await submit(db, plain(1), RELAY)
    async with db.transaction() as s:
        await s.execute(
            update(Message)
            .where(Message.id == mid)
            .values(
                attempts=3,
                claimed_by="dead",
                claimed_until=func.now() - text("interval '1 second'"),
                error="MemoryError: earlier",
            )
        )
    async with running(pipe_settings, db, analyser=rec, analysis_threads=True):
        msg = (await wait_for(db, [mid], {"failed", "processed"}))[mid]
    assert (msg.state, msg.error) == ("failed", "MemoryError: earlier")
    assert rec.calls == []


async def test_stop_gives_back_unfinished_work_without_counting_it(
    pipe_settings: Settings, db: Database
) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(raw: bytes, spool: Path) -> ContentAnalysis:
        entered.set()
        release.wait(10)
        return analyse_content(raw, spool)

    mid = await submit(db, plain(1), RELAY)
    try:
        async with running(pipe_settings, db, analyser=slow, stop_grace=0.2, analysis_threads=True):
            assert await asyncio.to_thread(entered.wait, 10)
    finally:
        release.set()
    async with db.sessions() as s:
        msg = await s.get(Message, mid)
    assert (msg.state, msg.attempts, msg.claimed_by, msg.claimed_until) == (
        "received",
        0,
        None,
        None,
    )
    async with running(pipe_settings, db):
        msg = (await wait_for(db, [mid], {"processed"}))[mid]
    assert msg.attempts == 1


async def test_results_of_a_worker_that_lost_its_claim_are_dropped(
    pipe_settings: Settings, db: Database
) -> None:
    """While a worker analyses a message, its claim passes to another worker (it expired):
    the first worker's results are not written, and the message stays the other's."""
    entered, go_on = threading.Event(), threading.Event()

    def slow(raw: bytes, spool: Path) -> ContentAnalysis:
        entered.set()
        go_on.wait(10)
        return analyse_content(raw, spool)

    mid = await submit(db, plain(1), RELAY)
    try:
        async with running(pipe_settings, db, analyser=slow, workers=1, analysis_threads=True) as p:
            assert await asyncio.to_thread(entered.wait, 10)
            async with db.transaction() as s:
                await s.execute(
                    update(Message)
                    .where(Message.id == mid)
                    .values(
                        claimed_by="other", claimed_until=func.now() + text("interval '1 hour'")
                    )
                )
            go_on.set()
            for _ in range(200):  # the worker finishes its batch and goes idle
                if not p.holding():
                    break
                await asyncio.sleep(0.05)
            assert not p.holding() and p.processed == 0
    finally:
        go_on.set()
    async with db.sessions() as s:
        msg = await s.get(Message, mid)
        docs = (await s.execute(select(func.count()).select_from(Document))).scalar_one()
    assert (msg.state, msg.claimed_by, docs) == ("received", "other", 0)
    assert [e.kind for e in await events_of(db, mid)] == ["received"]


async def test_writing_results_twice_makes_one_delivery_per_recipient(db: Database) -> None:
    mid = await submit(db, plain(1), RELAY)
    result = MessageResult(
        mid,
        "processed",
        "unsigned",
        None,
        deliveries=[DeliveryRow("a@example.org", None), DeliveryRow("b@example.org", None)],
    )
    for _ in range(2):
        async with db.transaction() as s:
            await s.execute(update(Message).values(claimed_by="w", state="received"))
            assert mid in await write_batch(s, "w", [result])
    async with db.sessions() as s:
        rows = (await s.scalars(select(Delivery.recipient).order_by(Delivery.recipient))).all()
    assert rows == ["a@example.org", "b@example.org"]


async def test_pipeline_is_part_of_serve(pipe_settings: Settings, db: Database) -> None:
    from gateway.app import build_components

    names = [c.name for c in build_components(pipe_settings, db)]
    assert "pipeline" in names


async def test_parse_processes_survive_a_process_dying_on_a_message(
    pipe_settings: Settings, db: Database
) -> None:
    from tests.pipeline.pipe_support import dying_analyser
    from tests.support.corpus import pdf_bytes

    pipe_settings.gateway.parse_processes = 1
    doc = [("12_TB-SNV.pdf", pdf_bytes("tb-snv"), "application/pdf")]
    async with running(pipe_settings, db, analyser=dying_analyser, workers=1):
        first = await submit(db, make_mail("Thông báo", doc, to=RELAY[0]), RELAY)
        await wait_for(db, [first], {"processed"}, within=30)
        bad = await submit(db, plain(1, "DIE-NOW"), RELAY)
        after = await submit(db, make_mail("Thông báo 2", doc, to=RELAY[0]), RELAY)
        msgs = await wait_for(db, [bad, after], {"processed", "failed"}, within=60)
    assert (msgs[bad].state, msgs[bad].attempts) == ("failed", 3)
    assert msgs[bad].error == "the analysis process died (exit code 3) on this message"
    assert msgs[after].state == "processed"
    async with db.sessions() as s:
        kinds = (await s.scalars(select(Document.kind).where(Document.message_id == after))).all()
    assert kinds == ["Thông báo"]  # classified in the parse process


async def test_idle_pipeline_stops_promptly(pipe_settings: Settings, db: Database) -> None:
    """Every idle worker wakes for stop(), not only the one that saw the poke."""
    from gateway.pipeline import Pipeline

    p = Pipeline(
        pipe_settings, db, poll_interval=3600, stop_grace=3600, workers=4, warm_verifier=False
    )
    await p.start()
    await asyncio.sleep(0.3)
    # Outcome, not speed: an idle worker that missed the stop would sleep out its hour-long
    # poll and grace; the generous limit only turns such a hang into a failure.
    await asyncio.wait_for(p.stop(), 120)
