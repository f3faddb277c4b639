"""Shared fixtures: a real PostgreSQL per session, a fresh migrated database per test."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from config import Settings
from store.db import Database
from tests.support.pg import PgServer, start_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    tmp = Path(tempfile.mkdtemp(prefix="edocgw-pg-"))
    tmp.chmod(0o755)
    server = start_server(tmp)
    server.make_template()
    yield server
    if server.embedded is not None:
        server.embedded.stop()


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temporary folder the embedded PostgreSQL's own system user can reach, for tests that
    start `edocgw serve` with no database URL. Not under pytest's tmp_path: a second pytest
    session started beside this one makes pytest's base folder private again (0700), and the
    server then fails to start or stop ("could not access directory … Permission denied")."""
    d = Path(tempfile.mkdtemp(prefix="edocgw-test-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
async def db_url(pg_server: PgServer) -> AsyncIterator[str]:
    """URL of a fresh, migrated database used by this test only."""
    name = await pg_server.create_database()
    yield pg_server.url_for(name)
    await pg_server.drop_database(name)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database.connect(db_url, pool_size=5)
    yield database
    await database.close()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """Settings for an in-process gateway on the test's database, ports picked by the OS."""
    return Settings.model_validate(
        {
            # pipeline and delivery in this process: these tests drive the components
            # themselves (tests/e2e/test_e2e_workers.py covers the worker processes)
            "gateway": {
                "data_dir": str(tmp_path / "var"),
                "hostname": "gw.test.gov.vn",
                "worker_processes": 0,
            },
            "database": {"url": db_url},
            "smtp": {"relay_listen": "127.0.0.1:0", "submission_listen": "127.0.0.1:0"},
            "admin": {"listen": "127.0.0.1:0"},
            "logging": {"format": "text", "level": "WARNING"},
            # no sender checks against the machine's own DNS; tests of them turn them on
            # with a loopback DNS server (tests/smtp/test_smtp_senderauth.py)
            "authentication": {"inbound": False},
        }
    )
