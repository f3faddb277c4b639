"""A send that outlives the claim's lease: the running delivery keeps its claim renewed, so a
second delivery service on the same database never sends the same row again. A send whose
database connections die meanwhile is still recorded, not sent again when the lease ends."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
import pytest
from sqlalchemy import select, text

from gateway.delivery.service import DeliveryService
from store.db import Database, asyncpg_dsn
from store.models import Delivery
from tests.delivery.support import (
    Recorder,
    add_agency,
    events,
    make_raw,
    put_message,
    start_sink,
    state_is,
    wait_until,
)
from tests.support.pg import LateClose

AGENCY = "000.00.00.H53"
INBOX = "vanban@stttt.tayninh.gov.vn"


async def test_a_send_longer_than_the_lease_is_not_taken_by_another_service(
    db, dsettings, run_service
):
    dsettings.gateway.claim_timeout = "1s"  # type: ignore[assignment]
    dest = await start_sink(Recorder(delay=3.0))  # the server answers DATA after 3 leases
    await add_agency(db, AGENCY, INBOX, dest.route)
    _, (d_id,) = await put_message(db, make_raw(), [(INBOX, AGENCY, 0)])

    await run_service(dsettings)
    await wait_until(lambda: _sending(db, d_id), 15, "the first service sending")
    await run_service(dsettings)  # polls every second while the first one waits for DATA
    await wait_until(lambda: state_is(db, d_id, "delivered"), 20, "delivered")

    assert len(dest.got) == 1
    async with db.sessions() as s:
        row = (await s.execute(select(Delivery).where(Delivery.id == d_id))).scalar_one()
    assert (row.state, row.attempts, row.claimed_by) == ("delivered", 1, None)
    await dest.close()


async def _sending(db, d_id: int) -> bool:
    async with db.sessions() as s:
        row = (await s.execute(select(Delivery).where(Delivery.id == d_id))).scalar_one()
    return row.claimed_by is not None


@dataclass
class _DropsConnections(Recorder):
    """Before its first 250, cuts the gateway's pooled database connections (what a
    PostgreSQL restart does to them while a send is in flight). Its LISTEN connection is
    spared: when that one drops, the service looks for work at once on a dead pooled
    connection, and the pool is fresh before the delivery is recorded."""

    db_url: str = ""
    dropped: int = 0

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
        if not self.dropped:
            conn = await asyncpg.connect(asyncpg_dsn(self.db_url), timeout=10)
            try:
                pids = await conn.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND query NOT ILIKE 'LISTEN%'"
                )
                for row in pids:
                    await conn.fetchval("SELECT pg_terminate_backend($1)", row["pid"])
                for _ in range(200):  # gone, not only signalled: the 250 comes after
                    alive = await conn.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])",
                        [r["pid"] for r in pids],
                    )
                    if not alive:
                        break
                    await asyncio.sleep(0.02)
                self.dropped = len(pids)
            finally:
                await conn.close()
        return await super().handle_DATA(server, session, envelope)


async def test_a_send_whose_database_connections_died_is_recorded_not_sent_again(
    db, db_url, dsettings, run_service
):
    dsettings.gateway.claim_timeout = "2s"  # type: ignore[assignment]
    rec = _DropsConnections(db_url=db_url)
    dest = await start_sink(rec)
    await add_agency(db, AGENCY, INBOX, dest.route)
    _, (d_id,) = await put_message(db, make_raw(), [(INBOX, AGENCY, 0)])

    await run_service(dsettings)
    await wait_until(lambda: _delivered(db_url, d_id), 15, "delivered")
    assert rec.dropped > 0, "the sink cut the gateway's connections"
    await asyncio.sleep(3)  # past the lease: an unrecorded send would go out again now

    assert len(dest.got) == 1, "sent once"
    assert [e.kind for e in await events(db, delivery_id=d_id)] == ["attempt", "delivered"]
    await dest.close()


@dataclass
class _CutsOne(Recorder):
    """Before its 250, terminates one given database backend and waits until it is gone
    (and, through a `LateClose`, until the gateway has read the server's FATAL message)."""

    db_url: str = ""
    victim: int = 0
    proxy: LateClose | None = None

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
        conn = await asyncpg.connect(asyncpg_dsn(self.db_url), timeout=10)
        try:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", self.victim)
            for _ in range(200):
                q = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1"
                if not await conn.fetchval(q, self.victim):
                    break
                await asyncio.sleep(0.02)
        finally:
            await conn.close()
        if self.proxy is not None:
            await wait_until(self.proxy.closed_by_server, 10, "the server's close")
            await asyncio.sleep(0.2)  # the gateway, in this loop, reads the FATAL passed on
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize("close", ["prompt", "late"])
@pytest.mark.parametrize("receipts", [True, False], ids=["receipts", "no-receipts"])
async def test_the_recorder_meets_the_dead_connection_and_writes_again_on_a_fresh_one(
    db, db_url, dsettings, receipts, close
):
    """The same as above, made certain: the connection the record goes out on is the only
    one of its pool, never pinged, and the sink cuts it before its 250, so the recorder's
    first write is the one on the connection the server cut. With receipts, the record is a
    transaction on the SQLAlchemy pool; without, one statement on the process's own asyncpg
    pool, the one the claim just used. A late close: the gateway has read the terminated
    backend's FATAL message but not yet the socket's close, so the connection still looks
    open while asyncpg can no longer speak on it (a CI run met this by chance)."""
    dsettings.receipts.enabled = receipts
    proxy = await LateClose.start(db_url) if close == "late" else None
    rec = _CutsOne(db_url=db_url, proxy=proxy)
    dest = await start_sink(rec)
    await add_agency(db, AGENCY, INBOX, dest.route)
    _, (d_id,) = await put_message(db, make_raw(), [(INBOX, AGENCY, 0)])
    own = Database.connect(proxy.url if proxy else db_url, pool_size=1, ping_idle=3600.0)
    svc = DeliveryService(dsettings, own)
    try:
        await svc.setup()
        if receipts:
            async with own.autocommit() as s:
                pid = (await s.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        else:
            pid = await (await own.direct()).fetchval("SELECT pg_backend_pid()")
        rec.victim = int(pid)
        claimed = await svc.claim("w")
        assert [d.id for d in claimed] == [d_id]
        await svc.handle("w", claimed)
        await svc.settle()  # the send and its record have finished
        assert await _delivered(db_url, d_id), "recorded on a fresh connection"
        assert len(dest.got) == 1
        kinds = [e.kind for e in await events(db, delivery_id=d_id)]
        assert kinds == ["attempt", "delivered"]
    finally:
        await svc.settle()
        await own.close()
        await dest.close()
        if proxy is not None:
            await proxy.close()


async def _delivered(db_url: str, d_id: int) -> bool:
    """The test's own look, on a connection of its own: were it on the gateway's pool, its
    read could be the first to meet a connection the sink cut, and the pool would be fresh
    before the delivery is recorded (store.db.ping_when_idle), proving nothing."""
    try:
        conn = await asyncpg.connect(asyncpg_dsn(db_url), timeout=10)
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        return await conn.fetchval("SELECT state FROM deliveries WHERE id=$1", d_id) == "delivered"
    except (asyncpg.InterfaceError, asyncpg.PostgresError):  # cut by the sink meanwhile
        return False
    finally:
        await conn.close()
