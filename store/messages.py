"""Storing accepted messages: the row, its `received` event and the NOTIFY, in one transaction."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from store import events
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
    auth_results: dict[str, Any] | None = None  # inbound SPF/DKIM/DMARC; None: not checked

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
                auth_results=m.auth_results,
            )
            .returning(Message.id)
        )
    ).scalar_one()
    await append_event(session, "received", message_id=msg_id, detail=received_detail(m, m.sha256))
    await session.flush()
    await notify(session, CHANNEL_RECEIVED, str(msg_id))
    return msg_id


def received_detail(m: NewMessage, sha256: str) -> dict[str, Any]:
    """The `received` event's detail, the same whichever way the message is stored."""
    detail: dict[str, Any] = {
        "source": m.source,
        "peer": m.peer,
        "size": len(m.raw),
        "sha256": sha256,
    }
    detail.update(m.detail)
    return detail


async def insert_messages(pool: asyncpg.Pool, messages: list[NewMessage]) -> list[int]:
    """`insert_message` for a batch in ONE asyncpg statement (one round trip, one WAL flush);
    the SMTP listener's group commit uses it. Returns the ids in the order given."""
    rows = await pool.fetch(INSERT_BATCH, *batch_params(messages))
    return [int(r["id"]) for r in rows]


# One statement, so one implicit transaction: either every message of the batch (rows,
# events, notifications) commits or none does. Ids are drawn first so that each event can
# name its message without relying on the order of RETURNING.
INSERT_BATCH = f"""
WITH input AS (
    SELECT nextval(pg_get_serial_sequence('messages', 'id')) AS id, u.*
    FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[],
        $8::text[], $9::bigint[], $10::text[], $11::bytea[], $12::jsonb[],
        $13::jsonb[]
    ) WITH ORDINALITY AS u(
        source, peer, auth_user, mail_from, rcpt_to, header_message_id, header_from,
        subject, size, sha256, raw, detail, auth_results, ord
    )
), m AS (
    INSERT INTO messages (
        id, source, peer, auth_user, mail_from, rcpt_to, header_message_id, header_from,
        subject, size, sha256, raw, state, auth_results
    )
    SELECT id, source, peer, auth_user, mail_from,
           ARRAY(SELECT jsonb_array_elements_text(rcpt_to)), header_message_id, header_from,
           subject, size, sha256, raw, 'received', auth_results
    FROM input
), e AS (
    {events.insert_sql("SELECT 'received', id, CAST(NULL AS bigint), detail FROM input")}
)
SELECT id, pg_notify('{CHANNEL_RECEIVED}', id::text) FROM input ORDER BY ord
"""


def batch_params(messages: list[NewMessage]) -> list[list[object]]:
    cols: list[list[object]] = [[] for _ in range(13)]
    for m in messages:
        sha = m.sha256
        detail = received_detail(m, sha)
        values = (
            m.source,
            m.peer,
            m.auth_user,
            m.mail_from,
            json.dumps(list(m.rcpt_to), ensure_ascii=False),
            m.header_message_id,
            m.header_from,
            m.subject,
            len(m.raw),
            sha,
            m.raw,
            events.detail_json(detail),
            None if m.auth_results is None else events.detail_json(m.auth_results),
        )
        for col, v in zip(cols, values, strict=True):
            col.append(v)
    return cols


async def find_by_sha256(session: AsyncSession, sha256: str) -> int | None:
    return (
        await session.execute(
            select(Message.id).where(Message.sha256 == sha256).order_by(Message.id).limit(1)
        )
    ).scalar_one_or_none()


async def notify(session: AsyncSession, channel: str, payload: str = "") -> None:
    await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": payload})
