"""Connections the server dropped (a PostgreSQL restart, an admin's pg_terminate_backend).

An idle connection is pinged before use and replaced unseen; one in steady use is not
pinged, so the first transaction on it fails with the connection marked lost, and the pool
then serves fresh connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy import text

from store.db import Database, asyncpg_dsn, connection_lost


@asynccontextmanager
async def _pool(db_url: str, *, size: int, ping_idle: float) -> AsyncIterator[Database]:
    db = Database.connect(db_url, pool_size=size, ping_idle=ping_idle)
    try:
        yield db
    finally:
        await db.close()


async def _backend_pid(db: Database) -> int:
    async with db.transaction() as s:
        return int((await s.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _kill(db_url: str, pid: int) -> None:
    """Terminate one server process, as a restart or an admin would."""
    conn = await asyncpg.connect(asyncpg_dsn(db_url), timeout=10)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        for _ in range(100):  # gone from pg_stat_activity: the socket is closed
            if not await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid=$1", pid):
                break
            await conn.execute("SELECT pg_sleep(0.02)")
    finally:
        await conn.close()


async def test_an_idle_connection_the_server_dropped_is_replaced_unseen(db_url: str):
    async with _pool(db_url, size=1, ping_idle=0.0) as db:
        first = await _backend_pid(db)
        await _kill(db_url, first)
        second = await _backend_pid(db)  # pinged at checkout, found dead, replaced
        assert second != first
        assert await _backend_pid(db) == second, "the fresh connection is kept"


async def test_a_busy_connection_fails_once_then_the_pool_is_fresh(db_url: str):
    async with _pool(db_url, size=2, ping_idle=3600.0) as db:
        first = await _backend_pid(db)
        await _kill(db_url, first)
        with pytest.raises(Exception) as failed:  # not pinged: it was in use a moment ago
            await _backend_pid(db)
        assert connection_lost(failed.value), repr(failed.value)
        assert await _backend_pid(db) != first


async def test_the_own_pool_replaces_a_dropped_connection_and_a_cut_statement_is_lost(
    db_url: str,
):
    """The process's own asyncpg pool (store/direct.py), where the workers' single-statement
    writes run: an idle connection the server dropped is replaced at the next checkout; one
    cut in the middle of a statement fails as a lost connection (so the delivery's recorder
    writes again), and the next statement runs on a fresh one."""
    async with _pool(db_url, size=1, ping_idle=3600.0) as db:
        pool = await db.direct()
        first = int(await pool.fetchval("SELECT pg_backend_pid()"))
        await _kill(db_url, first)
        second = int(await pool.fetchval("SELECT pg_backend_pid()"))
        assert second != first
        busy = asyncio.create_task(pool.fetchval("SELECT pg_sleep(10)"))
        probe = await asyncpg.connect(asyncpg_dsn(db_url), timeout=10)
        try:
            q = "SELECT count(*) FROM pg_stat_activity WHERE pid=$1 AND state='active'"
            for _ in range(200):  # the statement is running on the one connection
                if await probe.fetchval(q, second):
                    break
                await asyncio.sleep(0.02)
        finally:
            await probe.close()
        await _kill(db_url, second)
        with pytest.raises(Exception) as failed:
            await asyncio.wait_for(busy, 10)
        assert connection_lost(failed.value), repr(failed.value)
        assert int(await pool.fetchval("SELECT pg_backend_pid()")) not in (first, second)


def test_other_errors_are_not_lost_connections():
    assert not connection_lost(ValueError("x"))
    assert not connection_lost(RuntimeError("connection"))
    assert not connection_lost(asyncpg.exceptions.UniqueViolationError("duplicate key"))


async def test_autocommit_statements_stand_alone_and_the_connection_goes_back_transactional(
    db_url: str,
):
    """`autocommit()` (for one-statement claims): each statement is committed by itself, so a
    failing second statement leaves the first; the same pooled connection then serves
    `transaction()` with its all-or-nothing again."""
    async with _pool(db_url, size=1, ping_idle=3600.0) as db:
        async with db.transaction() as s:
            await s.execute(text("CREATE TABLE IF NOT EXISTS ac_probe (v int PRIMARY KEY)"))
            await s.execute(text("TRUNCATE ac_probe"))
        with pytest.raises(Exception, match="duplicate key"):
            async with db.autocommit() as s:
                await s.execute(text("INSERT INTO ac_probe VALUES (1)"))
                await s.execute(text("INSERT INTO ac_probe VALUES (1)"))
        with pytest.raises(Exception, match="duplicate key"):
            async with db.transaction() as s:
                await s.execute(text("INSERT INTO ac_probe VALUES (2)"))
                await s.execute(text("INSERT INTO ac_probe VALUES (1)"))
        async with db.transaction() as s:
            rows = (await s.execute(text("SELECT v FROM ac_probe ORDER BY v"))).scalars().all()
            await s.execute(text("DROP TABLE ac_probe"))
        assert rows == [1], "the autocommitted row stays; the failed transaction left nothing"
