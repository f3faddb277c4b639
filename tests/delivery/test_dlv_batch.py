"""Delivery in batches: one-statement claims and outcomes, batched receipts, kept sessions."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select, update

from gateway.delivery.connections import Connections
from gateway.delivery.smtp import Target, Timeouts, TlsContexts
from gateway.delivery.trace import edocgw_id
from gateway.notices.receipts import NoticeRequest, queue_notices
from store import deliveries as repo
from store.models import Delivery, Event, Message
from tests.delivery.support import (
    Recorder,
    add_agency,
    delivery,
    events,
    make_raw,
    put_message,
    send_kept,
    start_sink,
    state_is,
    wait_until,
)

AGENCY = "000.00.00.H53"
INBOX = "vanthu@stttt.tayninh.gov.vn"
SENDER = "vanthu@tayninh.gov.vn"
LEASE = dt.timedelta(minutes=1)


@pytest.mark.parametrize("alone", [False, True], ids=["in-transaction", "alone"])
async def test_claim_brings_what_sending_needs_and_outcomes_are_fenced(db, settings, alone):
    await add_agency(db, AGENCY, INBOX, "smtp://127.0.0.1:2525")
    raw = make_raw(subject="Lô")
    m1, (d1,) = await put_message(db, raw, [(INBOX, AGENCY, 0)])
    _, (d2,) = await put_message(db, make_raw(), [("a@other.gov.vn", None, 1)])
    async with db.transaction() as s:
        claimed = await repo.claim_due(s, worker="w1", lease=LEASE, limit=10)
    assert [c.id for c in claimed] == [d2, d1], "most urgent first"
    c1 = claimed[1]
    assert (c1.raw, c1.doc_verdicts, c1.route, c1.message_id) == (
        raw,
        (),
        "smtp://127.0.0.1:2525",
        m1,
    )
    assert (await delivery(db, d1)).state == "sending"

    async with db.transaction() as s:  # d2's lease ran out and another worker took it
        await s.execute(update(Delivery).where(Delivery.id == d2).values(claimed_by="w2"))
    rows = [
        repo.DeliveredRow(
            id=c.id,
            attempts=1,
            code=250,
            reply="ok",
            destination=c.destination,
            events=(("attempt", {"n": 1}), ("delivered", {"n": 2})),
        )
        for c in claimed
    ]
    # as the service records them: in a transaction with receipts, else alone on its pool
    if alone:
        done = await repo.record_delivered(await db.direct(), "w1", rows)
    else:
        async with db.transaction() as s:
            done = await repo.record_delivered(s, "w1", rows)
    assert done == {d1}
    one, two = await delivery(db, d1), await delivery(db, d2)
    assert (one.state, one.attempts, one.claimed_by, one.delivered_at is not None) == (
        "delivered",
        1,
        None,
        True,
    )
    assert (two.state, two.claimed_by) == ("sending", "w2"), "a lost claim is left alone"
    assert [e.kind for e in await events(db, delivery_id=d1)] == ["attempt", "delivered"]
    assert await events(db, delivery_id=d2) == []


async def test_a_big_message_is_read_apart_from_its_claim(db, settings):
    big = make_raw(body="x" * (repo.INLINE_RAW + 10))
    _, (d,) = await put_message(db, big, [(INBOX, None, 0)])
    async with db.transaction() as s:
        (c,) = await repo.claim_due(s, worker="w1", lease=LEASE, limit=5)
    assert c.id == d and c.raw is None


async def test_queue_notices_matches_one_by_one(db, settings):
    await add_agency(db, "000.00.00.H99", "vanthu@tayninh.gov.vn")  # the sender is an agency
    a, _ = await put_message(db, make_raw(), [(INBOX, AGENCY, 0)])
    null, _ = await put_message(db, make_raw(), [], mail_from="")
    b, _ = await put_message(db, make_raw(), [(INBOX, AGENCY, 0)], subject="Báo cáo 3/BC-UBND")
    with pytest.raises(ValueError, match="unknown receipt kind"):
        async with db.transaction() as s:
            await queue_notices(s, settings, [NoticeRequest(a, "nonsense", {})])

    async with db.transaction() as s:
        ids = await queue_notices(
            s,
            settings,
            [
                NoticeRequest(a, "accepted", {}),
                NoticeRequest(null, "accepted", {}),
                NoticeRequest(b, "delivered", {"recipient": INBOX}),
                NoticeRequest(a, "held", {"reason": "thử"}),
            ],
        )
    assert ids[1] is None and None not in (ids[0], ids[2], ids[3])
    assert len(set(ids) - {None}) == 3
    for original, notice_id, kind in ((a, ids[0], "accepted"), (b, ids[2], "delivered")):
        async with db.transaction() as s:
            notice = await s.get(Message, notice_id)
            raw = (await s.execute(select(Message.raw).where(Message.id == notice_id))).scalar_one()
            (nd,) = (
                await s.scalars(select(Delivery).where(Delivery.message_id == notice_id))
            ).all()
            evs = (
                await s.scalars(
                    select(Event).where(Event.message_id == notice_id).order_by(Event.id)
                )
            ).all()
        assert (notice.source, notice.state, notice.mail_from, notice.rcpt_to) == (
            "internal",
            "processed",
            "",
            [SENDER],
        )
        assert (nd.recipient, nd.agency_code, nd.state) == (SENDER, "000.00.00.H99", "queued")
        assert [e.kind for e in evs] == ["received", "routed"]
        assert evs[0].detail["about"] == original and evs[0].detail["notice"] == f"receipt/{kind}"
        assert evs[1].detail["destinations"] == [
            {"delivery_id": nd.id, "recipient": SENDER, "agency": "000.00.00.H99"}
        ]
        assert edocgw_id(original, settings.gateway.hostname).encode() in raw
    sent = [e for e in await events(db, message_id=a) if e.kind == "receipt_sent"]
    assert [e.detail["notice"] for e in sent] == ["receipt/accepted", "receipt/held"]
    assert [e.detail["notice_message"] for e in sent] == [ids[0], ids[3]]


@pytest.mark.parametrize("receipts", [True, False], ids=["receipts", "no-receipts"])
async def test_one_session_carries_a_burst_to_one_destination(db, dsettings, run_service, receipts):
    """Each delivery of a burst is sent once and recorded once with its events, whether the
    batch's record is a transaction (receipts on) or its one statement alone (off)."""
    dsettings.receipts.enabled = receipts
    dest = await start_sink()
    await add_agency(db, AGENCY, INBOX, dest.route)
    ids = [
        (await put_message(db, make_raw(subject=f"Lô {i}"), [(INBOX, AGENCY, 0)]))[1][0]
        for i in range(12)
    ]
    dsettings.delivery.concurrency_per_destination = 1
    svc = await run_service(dsettings)

    async def all_delivered() -> bool:
        return all([await state_is(db, d, "delivered") for d in ids])

    await wait_until(all_delivered, 15, "the burst")
    assert len(dest.got) == 12, "each delivered exactly once"
    for d in ids:
        assert [e.kind for e in await events(db, delivery_id=d)] == ["attempt", "delivered"]
        assert (await delivery(db, d)).attempts == 1
    assert len(set(dest.recorder.peers)) < 12, "sessions were reused"
    assert svc.connections.reused > 0
    await svc.stop()
    await dest.close()


class _KeepsServer(Recorder):
    """A sink recorder that remembers the server side of the last session."""

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
        self.server = server
        return await super().handle_DATA(server, session, envelope)


async def test_a_session_the_server_closed_while_kept_costs_nothing(db):
    rec = _KeepsServer()
    sink = await start_sink(rec)
    pool = Connections(idle=30)
    target = Target("127.0.0.1", sink.port, "none")
    timeouts = Timeouts(2, 5)
    contexts = await asyncio.to_thread(TlsContexts)
    pool.want("k")
    pool.want("k")  # another delivery in hand: the session is kept

    async def send(n: int) -> str:
        r = await send_kept(
            pool, target, contexts, timeouts, sender=SENDER, recipient=INBOX, subject=f"Thư {n}"
        )
        return r.outcome

    assert await send(1) == "delivered"
    assert await send(2) == "delivered"
    assert (pool.opened, pool.reused) == (1, 1)
    # The server ends the kept session as its idle timeout does (aiosmtpd closes the
    # transport), here at a moment the test chooses, not after a time a busy machine may miss.
    rec.server.transport.close()
    await asyncio.sleep(0.3)
    assert await send(3) == "delivered"
    assert pool.opened == 2 and len(rec.got) == 3, "sent once, on a fresh session"
    pool.unwant("k")
    pool.unwant("k")
    assert await send(4) == "delivered"  # nobody else waits: closed after use
    await pool.close(timeouts)
    assert len(rec.got) == 4
    await sink.close()


async def test_retries_falling_due_do_not_starve_mail_that_waited_longer(db, settings):
    """A destination that keeps failing: its old deliveries fall due again every few seconds.
    Claims go by how long a delivery has been due, so never-tried mail behind them still goes."""
    await add_agency(db, AGENCY, INBOX, "smtp://127.0.0.1:2525")
    now = dt.datetime.now(dt.UTC)
    _, retried = await put_message(
        db, make_raw(subject="cũ"), [(f"r{i}@down.gov.vn", None, 0) for i in range(10)]
    )
    _, fresh = await put_message(
        db, make_raw(subject="mới"), [(f"f{i}@ok.gov.vn", None, 0) for i in range(10)]
    )
    async with db.transaction() as s:
        # the retried ones are an hour old but were just deferred again and are due now;
        # the fresh ones arrived 30 s ago and were never tried
        await s.execute(
            update(Delivery)
            .where(Delivery.id.in_(retried))
            .values(
                state="deferred",
                attempts=20,
                created_at=now - dt.timedelta(hours=1),
                next_attempt_at=now - dt.timedelta(seconds=1),
            )
        )
        await s.execute(
            update(Delivery)
            .where(Delivery.id.in_(fresh))
            .values(
                created_at=now - dt.timedelta(seconds=30),
                next_attempt_at=now - dt.timedelta(seconds=30),
            )
        )
    async with db.transaction() as s:
        claimed = await repo.claim_due(s, worker="w1", lease=LEASE, limit=10)
    assert sorted(c.id for c in claimed) == sorted(fresh)


async def test_an_idle_worker_waits_for_the_earliest_due_or_stranded_delivery(db, settings):
    """The next look is when a deferred delivery falls due or a dead worker's claim ends,
    whichever is first; a delivery to a paused destination does not count."""
    from store.models import Destination

    now = dt.datetime.now(dt.UTC)
    async with db.transaction() as s:
        assert await repo.next_due_at(s) is None
    _, (later, paused, stranded) = await put_message(
        db,
        make_raw(subject="chờ"),
        [("a@ok.gov.vn", None, 0), ("b@down.gov.vn", None, 0), ("c@ok.gov.vn", None, 0)],
    )
    async with db.transaction() as s:
        for did, state, due in (
            (later, "deferred", now + dt.timedelta(minutes=10)),
            (paused, "deferred", now + dt.timedelta(minutes=1)),
        ):
            await s.execute(
                update(Delivery).where(Delivery.id == did).values(state=state, next_attempt_at=due)
            )
        await s.execute(
            update(Delivery)
            .where(Delivery.id == stranded)
            .values(state="sending", claimed_by="gone", claimed_until=now + dt.timedelta(minutes=5))
        )
        s.add(Destination(key="down.gov.vn", paused_until=now + dt.timedelta(hours=1)))
    async with db.transaction() as s:
        due = await repo.next_due_at(s)
    assert due is not None and abs(due - (now + dt.timedelta(minutes=5))) < dt.timedelta(seconds=1)
    async with db.transaction() as s:
        await s.execute(update(Delivery).where(Delivery.id == stranded).values(state="delivered"))
    async with db.transaction() as s:
        due = await repo.next_due_at(s)
    assert due is not None and abs(due - (now + dt.timedelta(minutes=10))) < dt.timedelta(seconds=1)
