"""Pacing (`[smtp] in_flow_delay`): a new transaction's MAIL FROM answer is held while a
pipeline is taking work and is behind (more waits than its next claims should find, the oldest
for longer than `in_flow_lag`), never refused, never held past the delay, and nobody is held
when no pipeline takes work, when little enough waits for its next claims, or when the backlog
cannot be read."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from sqlalchemy import text

from config import Settings
from gateway import metrics
from gateway.smtp import SmtpListener
from gateway.smtp.inflow import REFRESH, InFlow
from store.db import Database
from tests.smtp.clients import plain_message, send, stored
from tests.smtp.conftest import StartGateway
from tests.support.pg import PgServer


async def _backlog(db: Database, settings: Settings, *, claim_age: float | None) -> list[int]:
    """Two stored messages: the older claimed `claim_age` seconds ago (None: not claimed),
    the newer unclaimed and waiting for 5 s."""
    ids = sorted(m.id for m in await stored(db))
    assert len(ids) >= 2
    async with db.transaction() as s:
        await s.execute(
            text("UPDATE messages SET received_at = now() - interval '6 s' WHERE id = :i"),
            {"i": ids[0]},
        )
        await s.execute(
            text("UPDATE messages SET received_at = now() - interval '5 s' WHERE id = :i"),
            {"i": ids[1]},
        )
    if claim_age is not None:
        await _claimed(db, settings, ids[0], claim_age)
    await asyncio.sleep(2 * REFRESH)  # the listener's last reading is out of date
    return ids


async def _two_messages(gw: SmtpListener) -> None:
    for _ in range(2):
        data = plain_message(msgid=f"{uuid.uuid4().hex}@a.test")
        refused, reply = await send(gw.relay_port, ["vanban@localhost"], data)
        assert refused == {} and reply.code == 250


async def _more_waiting(db: Database, like: int, n: int, size: int = 1000) -> None:
    """*n* more messages like *like*, waiting 4 s, each of *size* bytes as a claim counts."""
    async with db.transaction() as s:
        await s.execute(
            text(
                "INSERT INTO messages (received_at, source, peer, size, sha256, raw) "
                "SELECT now() - interval '4 s', source, peer, :size, sha256, raw "
                "FROM messages, generate_series(1, :n) WHERE id = :i"
            ),
            {"i": like, "n": n, "size": size},
        )
    await asyncio.sleep(2 * REFRESH)


async def _claimed(db: Database, settings: Settings, message_id: int, age: float = 0.0) -> None:
    """*message_id* claimed by a pipeline *age* seconds ago (0: just now, it is taking work)."""
    lease = settings.gateway.claim_timeout.total_seconds()
    async with db.transaction() as s:
        await s.execute(
            text(
                "UPDATE messages SET claimed_by = 'pipe-test', "
                "claimed_until = now() + make_interval(secs => :s) WHERE id = :i"
            ),
            {"s": lease - age, "i": message_id},
        )
    await asyncio.sleep(2 * REFRESH)


def _held_count() -> float:
    return metrics.INFLOW_HELD._value.get()


async def _behind(
    settings: Settings, db: Database, start_gateway: StartGateway, delay: float
) -> tuple[SmtpListener, list[int]]:
    """A gateway with `in_flow_delay` = *delay* seconds whose pipeline (one worker, which
    takes 32 messages a claim) is behind: it took the oldest message just now, and 33 more
    wait, the oldest of them for 5 s."""
    settings.smtp.in_flow_delay = dt.timedelta(seconds=delay)
    settings.gateway.pipeline_workers = 1
    gw = await start_gateway()
    await _two_messages(gw)
    ids = await _backlog(db, settings, claim_age=0.0)
    await _more_waiting(db, ids[1], 32)
    await _claimed(db, settings, ids[0])
    assert gw.inflow is not None
    return gw, ids


async def test_new_mail_waits_while_the_pipeline_is_behind(
    settings: Settings, db: Database, start_gateway: StartGateway
) -> None:
    gw, _ = await _behind(settings, db, start_gateway, 0.5)
    assert gw.inflow is not None
    held = await asyncio.wait_for(gw.inflow.wait(), 30)
    assert held >= 0.5  # held for the whole delay: the backlog did not move
    before = _held_count()
    data = plain_message(msgid="third@a.test")
    refused, reply = await send(gw.relay_port, ["vanban@localhost"], data)
    assert refused == {} and reply.code == 250  # held, then accepted: never refused
    assert _held_count() == before + 1
    assert len(await stored(db)) == 2 + 32 + 1


async def test_the_hold_ends_when_the_pipeline_catches_up(
    settings: Settings, db: Database, start_gateway: StartGateway
) -> None:
    gw, ids = await _behind(settings, db, start_gateway, 60)
    assert gw.inflow is not None
    waiting = asyncio.create_task(gw.inflow.wait())
    await asyncio.sleep(0.3)
    assert not waiting.done()
    async with db.transaction() as s:  # the pipeline takes the oldest waiting messages
        await s.execute(
            text(
                "UPDATE messages SET state = 'processed' WHERE id IN "
                "(SELECT id FROM messages WHERE state = 'received' AND id <> :i "
                "ORDER BY received_at LIMIT 2)"
            ),
            {"i": ids[0]},
        )
    held = await asyncio.wait_for(waiting, 30)
    # 31 wait now, fewer than the worker's next claim takes; not the end of the "taking"
    # window (2 s after the claim), which would also end the hold
    assert 0.3 <= held < 1.5


async def test_nobody_waits_for_a_pipeline_that_is_not_taking_work(
    settings: Settings, db: Database, start_gateway: StartGateway
) -> None:
    gw = await start_gateway()
    await _two_messages(gw)
    assert gw.inflow is not None
    # A backlog and no claims at all (no pipeline runs), then a claim 10 s old (a pipeline
    # busy on one long message): waiting would not help, so nobody is held.
    await _backlog(db, settings, claim_age=None)
    assert await gw.inflow.wait() == 0.0
    await _backlog(db, settings, claim_age=10.0)
    assert await gw.inflow.wait() == 0.0


async def test_nobody_waits_when_the_pipeline_keeps_up(
    settings: Settings, db: Database, start_gateway: StartGateway
) -> None:
    # "just arrived" below must stay within the lag however slow the machine is today
    settings.smtp.in_flow_lag = dt.timedelta(seconds=3)
    gw = await start_gateway()
    assert gw.inflow is not None
    assert await gw.inflow.wait() == 0.0  # nothing stored at all
    await _two_messages(gw)
    ids = await _backlog(db, settings, claim_age=0.0)
    async with db.transaction() as s:  # both taken: nothing waits for the pipeline
        await s.execute(
            text("UPDATE messages SET claimed_until = now() + interval '5 min' WHERE id = :i"),
            {"i": ids[1]},
        )
    await asyncio.sleep(2 * REFRESH)
    assert await gw.inflow.wait() == 0.0
    async with db.transaction() as s:  # one just arrived and unclaimed: within in_flow_lag
        await s.execute(
            text("UPDATE messages SET claimed_until = NULL, received_at = now() WHERE id = :i"),
            {"i": ids[1]},
        )
    await asyncio.sleep(2 * REFRESH)
    assert await gw.inflow.wait() == 0.0


async def test_nobody_waits_while_little_enough_waits_for_the_next_claims(
    settings: Settings, db: Database, start_gateway: StartGateway
) -> None:
    """A pipeline that claims in batches leaves mail waiting for a batch's length even when
    it keeps up: nobody is held until more waits than its workers take in one claim each
    (32 a claim), or more bytes than 32 KB a worker with each message counted up to 16 KB:
    with two workers, four signed letters of 16 KB, or four big ones."""
    settings.smtp.in_flow_delay = dt.timedelta(seconds=0.5)
    settings.gateway.pipeline_workers = 2
    gw = await start_gateway()
    await _two_messages(gw)
    ids = await _backlog(db, settings, claim_age=0.0)  # one waits, for 5 s
    assert gw.inflow is not None
    await _more_waiting(db, ids[1], 63)  # 64 wait, under 64 KB: the next claims take them
    await _claimed(db, settings, ids[0])
    assert await gw.inflow.wait() == 0.0
    await _more_waiting(db, ids[1], 1)  # 65 wait
    await _claimed(db, settings, ids[0])
    assert await asyncio.wait_for(gw.inflow.wait(), 30) >= 0.5
    await _only_waiting(db, keep=ids)  # back to one small one waiting
    await _more_waiting(db, ids[1], 3, size=16 * 1024)
    await _claimed(db, settings, ids[0])
    # a small one and three signed letters of 16 KB are within 2 x 32 KB: not held
    assert await gw.inflow.wait() == 0.0
    await _more_waiting(db, ids[1], 1, size=16 * 1024)  # a fourth: over
    await _claimed(db, settings, ids[0])
    assert await asyncio.wait_for(gw.inflow.wait(), 30) >= 0.5
    await _only_waiting(db, keep=ids)
    await _more_waiting(db, ids[1], 3, size=10 * 1024 * 1024)
    await _claimed(db, settings, ids[0])
    assert await gw.inflow.wait() == 0.0  # big ones count as 16 KB each: as the signed ones
    await _more_waiting(db, ids[1], 1, size=10 * 1024 * 1024)
    await _claimed(db, settings, ids[0])
    assert await asyncio.wait_for(gw.inflow.wait(), 30) >= 0.5


async def _only_waiting(db: Database, keep: list[int]) -> None:
    """Every message but the two of *keep* (one claimed, one small one waiting) processed."""
    async with db.transaction() as s:
        await s.execute(
            text(
                "UPDATE messages SET state = 'processed' WHERE state = 'received' "
                "AND id NOT IN (:a, :b)"
            ),
            {"a": keep[0], "b": keep[1]},
        )


async def test_zero_delay_turns_pacing_off(
    settings: Settings, db: Database, start_gateway: StartGateway
) -> None:
    gw, _ = await _behind(settings, db, start_gateway, 0)
    assert gw.inflow is not None and not gw.inflow.enabled
    assert await gw.inflow.wait() == 0.0
    refused, reply = await send(gw.relay_port, ["vanban@localhost"])
    assert refused == {} and reply.code == 250


async def test_an_unreadable_backlog_holds_nobody(settings: Settings, pg_server: PgServer) -> None:
    missing = Database.connect(pg_server.url_for("edocgw_no_such_database"))
    inflow = InFlow(settings, missing)
    try:
        assert await asyncio.wait_for(inflow.wait(), 30) == 0.0
        assert await asyncio.wait_for(inflow.wait(), 30) == 0.0  # no new try within a second
    finally:
        await inflow.close()
        await missing.close()
