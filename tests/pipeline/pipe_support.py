"""Helpers for the pipeline tests: mails, submitting, waiting, reading rows back."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from config import Settings
from gateway.pipeline import Pipeline
from gateway.pipeline.analyse import ContentAnalysis, analyse_content
from store.agencies import AgencyIn
from store.db import Database
from store.messages import NewMessage, insert_message
from store.models import Delivery, Event, Message

PROCESSING = "vanban@gw.test.gov.vn"
# The events of a message the pipeline processed and routed, in order.
PROCESSED_EVENTS = ["received", "parsed", "classified", "verified", "routed"]

AGENCIES = [
    AgencyIn(
        "000.00.00.G12",
        "Bộ Nội vụ",
        "vanthu@moha.gov.vn",
        domains=["moha.gov.vn"],
        route="smtp://127.0.0.1:2",
    ),
    AgencyIn(
        "000.00.00.G09",
        "Bộ Tư pháp",
        "vbden@moj.gov.vn",
        domains=["moj.gov.vn"],
        route="smtp://127.0.0.1:2",
    ),
]


def make_mail(
    subject: str,
    attachments: list[tuple[str, bytes, str]] = (),  # type: ignore[assignment]
    *,
    body: str = "Kính gửi quý cơ quan văn bản đính kèm.",
    sender: str = "vanthu@tayninh.gov.vn",
    to: str = PROCESSING,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="tayninh.gov.vn")
    msg.set_content(body)
    for filename, data, ctype in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


async def submit(
    db: Database,
    raw: bytes,
    rcpt_to: list[str] | None = None,
    *,
    mail_from: str = "vanthu@tayninh.gov.vn",
    source: str = "smtp",
) -> int:
    async with db.transaction() as s:
        return await insert_message(
            s,
            NewMessage(
                source=source,
                peer="127.0.0.1",
                raw=raw,
                mail_from=mail_from,
                rcpt_to=rcpt_to if rcpt_to is not None else [PROCESSING],
            ),
        )


async def wait_for(
    db: Database, message_ids: list[int], states: set[str], within: float = 20.0
) -> dict[int, Message]:
    """Poll until every message is in one of *states*; fail with where they are otherwise."""
    deadline = time.monotonic() + within
    while True:
        async with db.sessions() as s:
            rows = (await s.scalars(select(Message).where(Message.id.in_(message_ids)))).all()
        found = {m.id: m for m in rows}
        if all(found[i].state in states for i in message_ids):
            return found
        if time.monotonic() > deadline:
            stuck = {i: (found[i].state, found[i].error) for i in message_ids}
            raise AssertionError(f"messages not {states} after {within}s: {stuck}")
        await asyncio.sleep(0.05)


async def deliveries_of(db: Database, message_id: int) -> list[Delivery]:
    async with db.sessions() as s:
        return list(
            (
                await s.scalars(
                    select(Delivery)
                    .where(Delivery.message_id == message_id)
                    .order_by(Delivery.recipient)
                )
            ).all()
        )


async def events_of(db: Database, message_id: int) -> list[Event]:
    async with db.sessions() as s:
        return list(
            (
                await s.scalars(
                    select(Event).where(Event.message_id == message_id).order_by(Event.id)
                )
            ).all()
        )


@asynccontextmanager
async def running(settings: Settings, db: Database, **kw: Any) -> AsyncIterator[Pipeline]:
    kw.setdefault("poll_interval", 5.0)
    kw.setdefault("retry_delay", 0.0)
    kw.setdefault("agency_ttl", 0.0)
    kw.setdefault("warm_verifier", False)  # most tests verify nothing: spawn only when needed
    p = Pipeline(settings, db, **kw)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


def dying_analyser(raw: bytes, spool: Path) -> ContentAnalysis:
    """Top-level (picklable) analyser whose process dies on input marked DIE-NOW."""
    if b"DIE-NOW" in raw:
        os._exit(3)
    return analyse_content(raw, spool)


def huge_size(raw: bytes, spool: Path) -> ContentAnalysis:
    """Top-level (picklable) analyser that gives documents of mail marked HUGE-SIZE a size
    beyond what the database can store."""
    a = analyse_content(raw, spool)
    if b"HUGE-SIZE" in raw:
        for d in a.docs:
            d.size = 2**70
    return a


def stuck_analyser(raw: bytes, spool: Path) -> ContentAnalysis:
    """Top-level (picklable) analyser whose analysis of mail marked SPIN-FOREVER never ends
    (it keeps the CPU, as a parser stuck on hostile input does); it leaves a file named for
    its process id in the spool root first, so a test can see that process go. Mail marked
    WAIT-ONCE waits (idle) on its first attempt only, for a test to kill the process."""
    if b"SPIN-FOREVER" in raw:
        (spool.parent / f"spinning-{os.getpid()}").touch()
        while True:
            pass
    if b"WAIT-ONCE" in raw:
        mark = spool.parent / "waited-once"
        if not mark.exists():
            mark.touch()
            (spool.parent / f"waiting-{os.getpid()}").touch()
            time.sleep(3600)
    return analyse_content(raw, spool)
