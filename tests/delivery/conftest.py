"""Fixtures for delivery tests: a sink playing the senders' mail server, and a running
delivery service on the test's database with short durations."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from config import Settings
from gateway.delivery.service import DeliveryService
from store.db import Database
from tests.delivery.support import Sink, start_sink


@pytest.fixture
async def sender_sink() -> AsyncIterator[Sink]:
    """Where receipts and DSNs go: `[delivery] smarthost` points here."""
    sink = await start_sink()
    yield sink
    await sink.close()


@pytest.fixture
def dsettings(settings: Settings, sender_sink: Sink) -> Settings:
    d = settings.delivery
    d.retry_schedule = ["1s"]  # type: ignore[list-item]
    d.max_age = "1h"  # type: ignore[assignment]
    d.poll_interval = "1s"  # type: ignore[assignment]
    d.connect_timeout = "2s"  # type: ignore[assignment]
    d.command_timeout = "5s"  # type: ignore[assignment]
    d.smarthost = sender_sink.hostport
    d.require_tls = False
    settings.gateway.claim_timeout = "5s"  # type: ignore[assignment]
    return settings


@pytest.fixture
async def run_service(
    db: Database,
) -> AsyncIterator[Callable[[Settings], Awaitable[DeliveryService]]]:
    started: list[DeliveryService] = []

    async def run(s: Settings) -> DeliveryService:
        svc = DeliveryService(s, db)
        await svc.start()
        started.append(svc)
        return svc

    yield run
    for svc in started:
        await svc.stop()
