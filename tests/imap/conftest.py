"""Fixtures for the IMAP fetcher tests: a real Dovecot per test and a running fetcher."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from config import Settings
from config.settings import ImapAccount
from gateway.imap import ImapFetcher
from store.db import Database
from store.models import ImapState, Message
from tests.support.dovecot import Dovecot

USERS = {
    "vanthu@test.gov.vn": "mat-khau-1",
    "phongb@test.gov.vn": "mat-khau-2",
    "phongc@test.gov.vn": "mat-khau-3",
    "phongd@test.gov.vn": "mat-khau-4",
}
VANTHU = "vanthu@test.gov.vn"


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    dc = Dovecot(users=dict(USERS), lmtp=True).start()
    yield dc
    dc.close()


def account(dc: Dovecot, user: str = VANTHU, **kw: Any) -> ImapAccount:
    """A plain-text loopback account on the test Dovecot (tls=none unless overridden)."""
    values: dict[str, Any] = {
        "name": user.split("@")[0],
        "host": "127.0.0.1",
        "port": dc.imap_port,
        "tls": "none",
        "user": user,
        "password": USERS[user],
        "poll_seconds": 300,
        "command_timeout": "5s",
    }
    values.update(kw)
    return ImapAccount.model_validate(values)


@asynccontextmanager
async def running(
    settings: Settings, db: Database, *accounts: ImapAccount, **kw: Any
) -> AsyncIterator[ImapFetcher]:
    kw.setdefault("backoff_initial", 0.1)
    kw.setdefault("backoff_max", 0.5)
    fetcher = ImapFetcher(settings.model_copy(update={"imap": list(accounts)}), db, **kw)
    await fetcher.start()
    try:
        yield fetcher
    finally:
        await fetcher.stop()


async def eventually(check: Callable[[], Any], within: float = 10.0, what: str = "") -> Any:
    """Poll an (async or plain) check until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or check}")
        await asyncio.sleep(0.05)


@dataclass
class Row:
    id: int
    source: str
    peer: str
    raw: bytes
    mail_from: str
    rcpt_to: list[str]
    subject: str | None
    header_message_id: str | None
    sha256: str
    state: str


async def stored(db: Database) -> list[Row]:
    async with db.transaction() as s:
        rows = await s.execute(
            select(
                Message.id,
                Message.source,
                Message.peer,
                Message.raw,
                Message.mail_from,
                Message.rcpt_to,
                Message.subject,
                Message.header_message_id,
                Message.sha256,
                Message.state,
            ).order_by(Message.id)
        )
        return [Row(**r._asdict()) for r in rows]


async def imap_state(db: Database) -> list[tuple[str, str, int, int]]:
    async with db.transaction() as s:
        rows = await s.execute(
            select(
                ImapState.account, ImapState.mailbox, ImapState.uidvalidity, ImapState.last_uid
            ).order_by(ImapState.account)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def mail(n: int, subject: str = "Công văn số {n}/UBND-VP", extra: bytes = b"") -> bytes:
    """A small Vietnamese message (UTF-8, CRLF) whose bytes differ by n."""
    subj = subject.format(n=n)
    from email.header import Header

    return (
        b"Return-Path: <vanthu@ubnd.test.gov.vn>\r\n"
        b"From: =?utf-8?b?VsSDbiB0aMawIFVCTkQ=?= <vanthu@ubnd.test.gov.vn>\r\n"
        b"To: vanthu@test.gov.vn\r\n"
        + f"Subject: {Header(subj, 'utf-8').encode()}\r\n".encode()
        + f"Message-ID: <msg-{n}@ubnd.test.gov.vn>\r\n".encode()
        + b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        + b"Content-Transfer-Encoding: 8bit\r\n"
        + extra
        + b"\r\n"
        + f"Kính gửi: Sở Nội vụ\r\nVăn bản số {n}.\r\n".encode()
    )
