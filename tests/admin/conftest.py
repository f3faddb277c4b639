"""Fixtures for the admin tests: a seeded database, the web admin served by uvicorn on
127.0.0.1 port 0 inside the test's loop, httpx clients, API tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from config import Settings
from gateway.admin.server import AdminServer
from gateway.app import Service
from store import users
from store.agencies import AgencyIn, upsert_agency
from store.db import Database
from tests.admin.seed import ADMIN, CLERK, G22, Seeded, seed

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


@pytest.fixture
async def seeded(db: Database) -> Seeded:
    return await seed(db)


@pytest.fixture
async def server(settings: Settings, db: Database, seeded: Seeded) -> AsyncIterator[AdminServer]:
    srv = AdminServer(settings, db)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def client(server: AdminServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
        yield c


@pytest.fixture
async def tokens(db: Database, seeded: Seeded) -> dict[str, str]:
    async with db.transaction() as s:
        return {"admin": await users.new_token(s, ADMIN), "clerk": await users.new_token(s, CLERK)}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Sink:
    """An aiosmtpd server on 127.0.0.1 (OS-picked port) in the test's loop: the agency's
    mail server. It accepts everything and keeps what it got."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.got.append(envelope.content)
        return "250 2.0.0 Ok: queued as SINK"

    async def start(self) -> None:
        from aiosmtpd.smtp import SMTP

        self.server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(self, hostname="sink.test", decode_data=False), "127.0.0.1", 0
        )
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@dataclass
class Running:
    service: Service
    admin: AdminServer
    sink: Sink


@pytest.fixture
async def running(settings: Settings, db: Database, seeded: Seeded) -> AsyncIterator[Running]:
    """The whole `edocgw serve` service in this loop, the Government Office's mail going to a
    sink (plain SMTP on loopback)."""
    sink = Sink()
    await sink.start()
    async with db.transaction() as s:
        await upsert_agency(
            s,
            AgencyIn(
                code=G22,
                name="Văn phòng Chính phủ",
                address="vanthu@chinhphu.vn",
                route=f"smtp://127.0.0.1:{sink.port}",
                tls="none",
            ),
        )
    svc = Service(settings)
    await svc.start()
    try:
        admin = next(c for c in svc.components if isinstance(c, AdminServer))
        yield Running(svc, admin, sink)
    finally:
        await svc.stop()
        await sink.stop()


# Debian's Chromium, headless, as root, with nothing that reaches for the network on its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()
