"""A real PostgreSQL for the tests: the embedded server, or EDOCGW_TEST_DATABASE_URL.

Each test gets its own database cloned from a migrated template (CREATE DATABASE ... TEMPLATE
takes a few tens of milliseconds), so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from store.db import Database, asyncpg_dsn, normalise_url
from store.embedded import EmbeddedPostgres

TEMPLATE = "edocgw_test_template"


@dataclass
class PgServer:
    base_url: str  # URL of a maintenance database on the server
    embedded: EmbeddedPostgres | None = None

    def url_for(self, database: str) -> str:
        head, _, tail = normalise_url(self.base_url).partition("?")
        head = head.rsplit("/", 1)[0] + "/" + database
        return head + ("?" + tail if tail else "")

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(self.base_url), timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def make_template(self) -> None:
        async def run() -> None:
            await self._admin(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
            await self._admin(f'CREATE DATABASE "{TEMPLATE}"')
            db = Database.connect(self.url_for(TEMPLATE), pool_size=1)
            await db.upgrade()
            await db.engine.dispose()

        asyncio.run(run())

    async def create_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:16]
        await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        return name

    async def create_empty_database(self) -> str:
        name = "e_" + uuid.uuid4().hex[:16]
        await self._admin(f'CREATE DATABASE "{name}"')
        return name

    async def drop_database(self, name: str) -> None:
        await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_server(tmp: Path) -> PgServer:
    url = os.environ.get("EDOCGW_TEST_DATABASE_URL", "")
    if url:
        return PgServer(base_url=url)
    emb = EmbeddedPostgres(tmp)
    emb.start()  # a fixture that cannot start its server fails loudly
    return PgServer(base_url=emb.url("postgres"), embedded=emb)


@dataclass
class LateClose:
    """A loopback TCP proxy to a test server that passes every byte on but closes the client's
    side `HOLD` seconds after the server closed its own. A backend the server terminates
    sends FATAL and closes; through this proxy the client reads the FATAL long before it sees
    the close, as over a slow network or from a busy event loop. `server_closed` counts the
    connections the server closed first."""

    _target: tuple[str, int] | str
    url: str = ""
    server_closed: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    HOLD = 3.0

    @classmethod
    async def start(cls, db_url: str) -> LateClose:
        """A proxy to the server of *db_url*; its `url` names the same database through it."""
        u = make_url(normalise_url(db_url))
        host = str(u.query.get("host") or u.host or "")
        target: tuple[str, int] | str
        if host.startswith("/"):  # libpq's socket naming
            target = f"{host}/.s.PGSQL.{u.port or 5432}"
        else:
            target = (host, u.port or 5432)
        proxy = cls(target)
        proxy._server = await asyncio.start_server(proxy._serve, "127.0.0.1", 0)
        port = proxy._server.sockets[0].getsockname()[1]
        proxy.url = str(
            u.set(host="127.0.0.1", port=port, query={}).render_as_string(hide_password=False)
        )
        return proxy

    async def closed_by_server(self) -> bool:
        return self.server_closed > 0

    async def _serve(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if isinstance(self._target, str):
                sreader, swriter = await asyncio.open_unix_connection(self._target)
            else:
                sreader, swriter = await asyncio.open_connection(*self._target)
            up = asyncio.create_task(_pipe(creader, swriter))
            await _pipe(sreader, cwriter)  # until the server closes
            if not up.done():  # the server closed first: the client hears of it late
                self.server_closed += 1
                await asyncio.sleep(self.HOLD)
            up.cancel()
            swriter.close()
        except asyncio.CancelledError:
            pass  # `close`: ended, not an error for asyncio to log as the handler's failure
        finally:
            cwriter.close()
            self._tasks.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
