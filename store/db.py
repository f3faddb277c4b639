"""Opening the database: a configured URL, or the embedded server; schema upgrades; NOTIFY."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import asyncpg
from sqlalchemy import event, exc, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from config import Settings
from store.direct import open_pool
from store.embedded import EmbeddedPostgres

log = logging.getLogger("edocgw.store")

# NOTIFY channels: the pipeline listens on RECEIVED, delivery on DELIVERIES.
CHANNEL_RECEIVED = "edocgw_received"
CHANNEL_DELIVERIES = "edocgw_deliveries"
_MIGRATION_LOCK = 0x6564_6F63  # "edoc": serialises concurrent `db upgrade`s
# A pooled connection idle longer than this is pinged before use (see `ping_when_idle`).
PING_IDLE = 2.0
# The process's own asyncpg pool for its frequent single statements (store/direct.py): the
# pipeline workers' claims and result writes, the delivery's claim, next-due look-up and
# delivered writes, the pacing's reading. Up to six at once in a worker process (two
# pipeline workers claiming and writing behind, the delivery's dispatcher and recorder);
# connections open when first needed.
DIRECT_POOL_SIZE = 6
DIRECT_TIMEOUT = 30.0  # seconds a connection or one statement on it may take

# The handle `Database.transaction()` yields and every store function takes. Code outside
# `store/` only passes it on, so it needs no SQLAlchemy of its own.
Transaction: TypeAlias = AsyncSession


def normalise_url(url: str) -> str:
    """SQLAlchemy wants the asyncpg driver named in the URL."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


async def close_pool(pool: asyncpg.Pool, seconds: float) -> None:
    """Close one of the gateway's own asyncpg pools (the group commit's, `Database.direct`),
    giving connections in use `seconds` to come back before they are cut."""
    try:
        await asyncio.wait_for(pool.close(), seconds)
    except TimeoutError:
        pool.terminate()


def asyncpg_dsn(url: str) -> str:
    """The plain DSN asyncpg.connect() takes (for LISTEN connections)."""
    return "postgresql://" + normalise_url(url).split("://", 1)[1]


@dataclass
class Database:
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    embedded: EmbeddedPostgres | None = None
    _closed: bool = field(default=False, repr=False)
    _direct: asyncpg.Pool | None = field(default=None, repr=False)
    _direct_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @classmethod
    def connect(cls, url: str, *, pool_size: int = 10, ping_idle: float = PING_IDLE) -> Database:
        url = normalise_url(url)
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
        ping_when_idle(engine, ping_idle)
        return cls(
            url=url, engine=engine, sessions=async_sessionmaker(engine, expire_on_commit=False)
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[Transaction]:
        """A session whose statements each commit on their own, for work that is one statement
        (a claim, a look-up): SQLAlchemy's asyncpg dialect sends BEGIN and COMMIT as round
        trips of their own, two on top of the one that does the work. Never for work of
        several statements that must stand or fall together: use `transaction()`."""
        async with self.engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            async with AsyncSession(bind=auto, expire_on_commit=False) as session:
                yield session

    async def direct(self) -> asyncpg.Pool:
        """The pool `store.direct.rows` runs the workers' frequent single statements on, each
        committing on its own as in `autocommit()`; opened on first use, closed by `close`."""
        if self._direct is None:
            async with self._direct_lock:
                if self._direct is None:
                    self._direct = await open_pool(
                        asyncpg_dsn(self.url), max_size=DIRECT_POOL_SIZE, seconds=DIRECT_TIMEOUT
                    )
        return self._direct

    async def upgrade(self) -> list[str]:
        """Bring the schema to the newest revision; returns the revisions applied."""
        from store.migrate import upgrade_connection

        async with self.engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            return await conn.run_sync(upgrade_connection)

    async def has_schema(self) -> bool:
        """Whether edocgw's schema was ever created here (Alembic's version table exists)."""
        async with self.engine.connect() as conn:
            found = await conn.scalar(text("SELECT to_regclass('alembic_version')"))
        return found is not None

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), 5)
            return True
        except Exception:
            return False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._direct is not None:
            await close_pool(self._direct, 5)
        await self.engine.dispose()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)


def ping_when_idle(engine: AsyncEngine, idle: float) -> None:
    """Ping a pooled connection before use only when it has been idle `idle` seconds or more;
    a dead one is replaced before anyone sees it.

    SQLAlchemy's `pool_pre_ping` pings at every checkout, and its asyncpg dialect pings with
    BEGIN, a query and ROLLBACK: three round trips on top of every transaction, about a
    tenth of the delivery worker's CPU under load. A connection in steady use was alive a
    moment ago, so a server that restarts is noticed at the first use of one: that one
    transaction fails with the connection marked invalidated, SQLAlchemy then recycles every
    connection of the pool, and callers whose failure would cost a second delivery retry on
    a fresh connection (gateway/delivery/service.py)."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _idle_from(dbapi_connection: object, record: object) -> None:
        if record is not None:
            record.info["edocgw_idle_since"] = time.monotonic()  # type: ignore[attr-defined]

    @event.listens_for(pool, "checkout")
    def _ping_if_idle(dbapi_connection: object, record: object, proxy: object) -> None:
        since = record.info.get("edocgw_idle_since")  # type: ignore[attr-defined]
        if since is None or time.monotonic() - since < idle:
            return
        try:
            dialect.do_ping(dbapi_connection)  # type: ignore[arg-type]
        except Exception as e:  # the pool replaces it and checks out again
            raise exc.DisconnectionError(f"an idle connection failed its ping: {e}") from e


def connection_lost(error: BaseException) -> bool:
    """Whether *error* is a transaction or statement that failed because its connection was
    dead (SQLAlchemy's pool has replaced it; the process's own asyncpg pool replaces a
    closed connection at its next checkout): trying again uses a fresh one."""
    if isinstance(error, exc.DBAPIError):
        return bool(error.connection_invalidated)
    return isinstance(error, _LOST)


# What asyncpg raises on a statement whose connection the server or the network closed.
_LOST = (
    asyncpg.exceptions.PostgresConnectionError,  # 08xxx, "closed in the middle of operation"
    asyncpg.exceptions.OperatorInterventionError,  # 57Pxx: terminated, server shutting down
    asyncpg.exceptions.InternalClientError,  # its protocol broken; terminated (store/direct.py)
    ConnectionError,
)


@asynccontextmanager
async def savepoint(tx: Transaction) -> AsyncIterator[Transaction]:
    """A nested transaction: an error inside undoes only what was done inside (and is
    raised), the rest of `tx` stands."""
    async with tx.begin_nested():
        yield tx


async def open_database(settings: Settings) -> Database:
    """The configured database, starting the embedded server when no URL is given."""
    url = settings.database.url
    if not url and settings.database.url_file:
        url = (await asyncio.to_thread(Path(settings.database.url_file).read_text, "utf-8")).strip()
    embedded = None
    if not url:
        embedded = EmbeddedPostgres(Path(settings.gateway.data_dir))
        url = await asyncio.to_thread(embedded.start)
        log.info("embedded PostgreSQL running", extra={"pgdata": str(embedded.pgdata.resolve())})
    db = Database.connect(url, pool_size=settings.database.pool_size)
    db.embedded = embedded
    return db
