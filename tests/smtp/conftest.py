"""Fixtures for the SMTP listener tests: a real SmtpListener on the test's database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from config import Settings
from gateway.smtp import SmtpListener
from store.db import Database
from store.users import add_user

StartGateway = Callable[[], Awaitable[SmtpListener]]

PASSWORD = "correct-horse-7"
UTF8_PASSWORD = "đúng-mật-khẩu-1"  # smtplib cannot send this one; swaks can


@pytest.fixture
async def users(db: Database) -> None:
    async with db.transaction() as s:
        await add_user(s, "staff", PASSWORD, ["submit"])
        await add_user(s, "webadmin", PASSWORD, ["admin"])
        await add_user(s, "nhanvien", UTF8_PASSWORD, ["submit", "admin"])


@pytest.fixture
async def start_gateway(settings: Settings, db: Database) -> AsyncIterator[StartGateway]:
    """Start the listeners on `settings` (tests may change settings first); stopped after."""
    started: list[SmtpListener] = []

    async def start() -> SmtpListener:
        listener = SmtpListener(settings, db)
        await listener.start()
        started.append(listener)
        return listener

    yield start
    for listener in started:
        await listener.stop()


@pytest.fixture
async def gw(start_gateway: StartGateway) -> SmtpListener:
    return await start_gateway()
