"""Storing accepted messages: the row, its `received` event and the NOTIFY, in one transaction."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from store.db import CHANNEL_RECEIVED
from store.events import append_event
from store.models import Message


@dataclass
class NewMessage:
    """An accepted message as the listeners hand it over (raw bytes exactly as received)."""

    source: str  # smtp | imap
    peer: str
    raw: bytes
    mail_from: str = ""
    rcpt_to: list[str] = field(default_factory=list)
    auth_user: str | None = None
    header_message_id: str | None = None
    header_from: str | None = None
    subject: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


async def insert_message(session: AsyncSession, m: NewMessage) -> int:
    """Insert the message in state `received` with its event and wake the pipeline.

    Runs inside the caller's transaction: the NOTIFY is delivered only if it commits.
    """
    msg_id = (
        await session.execute(
            insert(Message)
            .values(
                source=m.source,
                peer=m.peer,
                auth_user=m.auth_user,
                mail_from=m.mail_from,
                rcpt_to=m.rcpt_to,
                header_message_id=m.header_message_id,
                header_from=m.header_from,
                subject=m.subject,
                size=len(m.raw),
                sha256=m.sha256,
                raw=m.raw,
                state="received",
            )
            .returning(Message.id)
        )
    ).scalar_one()
    detail = {"source": m.source, "peer": m.peer, "size": len(m.raw), "sha256": m.sha256}
    detail.update(m.detail)
    await append_event(session, "received", message_id=msg_id, detail=detail)
    await session.flush()
    await notify(session, CHANNEL_RECEIVED, str(msg_id))
    return msg_id


async def find_by_sha256(session: AsyncSession, sha256: str) -> int | None:
    return (
        await session.execute(
            select(Message.id).where(Message.sha256 == sha256).order_by(Message.id).limit(1)
        )
    ).scalar_one_or_none()


async def notify(session: AsyncSession, channel: str, payload: str = "") -> None:
    await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": payload})
