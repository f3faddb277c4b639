"""A real PostgreSQL for the tests: the embedded server, or EDOCGW_TEST_DATABASE_URL.

Each test gets its own database cloned from a migrated template (CREATE DATABASE ... TEMPLATE
takes a few tens of milliseconds), so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg

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
