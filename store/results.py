"""Writing what the pipeline found out about one message, inside the caller's transaction.

Documents, signatures, deliveries, the message's new state and every event go in together,
so a crash leaves either all of it or none (the message is then still `received` and is
processed again). Writing twice is harmless: earlier documents of the message are replaced,
and deliveries are keyed by (message, recipient) with ON CONFLICT DO NOTHING.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from store.db import CHANNEL_DELIVERIES
from store.events import append_event
from store.messages import notify
from store.models import Delivery, Document, Message, Signature


@dataclass
class SignatureRow:
    format: str
    verdict: str
    reason: str | None = None
    signer_cn: str | None = None
    signer_o: str | None = None
    signer_uid: str | None = None
    serial: str | None = None
    issuer_cn: str | None = None
    cert_sha256: str | None = None
    signing_time: dt.datetime | None = None
    signing_time_source: str | None = None
    covers_whole_file: bool | None = None
    detail: str | None = None


@dataclass
class DocumentRow:
    part_path: str
    detected_type: str
    size: int
    sha256: str
    filename: str | None = None
    declared_type: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # Document columns: kind, number, …
    sources: dict[str, Any] = field(default_factory=dict)
    confidence: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    verdict: str | None = None
    signatures: list[SignatureRow] = field(default_factory=list)


@dataclass
class DeliveryRow:
    recipient: str
    agency_code: str | None
    priority: int = 0
    state: str = "queued"  # queued, or held while the message waits for an admin


@dataclass
class MessageResult:
    message_id: int
    state: str  # processed | held | quarantined
    verdict: str | None
    urgency: str | None
    documents: list[DocumentRow] = field(default_factory=list)
    message_signatures: list[SignatureRow] = field(default_factory=list)  # S/MIME
    deliveries: list[DeliveryRow] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    error: str | None = None


_FACT_COLUMNS = frozenset(
    {
        "kind",
        "kind_abbr",
        "number",
        "year",
        "notation",
        "issuer",
        "place",
        "doc_date",
        "subject",
        "signer",
        "urgency",
        "secrecy",
        "recipients",
        "agency_codes",
    }
)


async def lock_claimed(session: AsyncSession, message_id: int, worker: str) -> Message | None:
    """The message row, locked, if it is still `received` and claimed by *worker*.

    A claim that expired and was taken by another worker returns None: that worker's results
    win and ours are dropped, so a message is never processed into two sets of rows.
    """
    return (
        await session.execute(
            select(Message)
            .where(
                Message.id == message_id,
                Message.state == "received",
                Message.claimed_by == worker,
            )
            .with_for_update()
        )
    ).scalar_one_or_none()


async def write_results(session: AsyncSession, message: Message, r: MessageResult) -> list[int]:
    """Store *r* for the locked *message*; returns the ids of deliveries created now."""
    await session.execute(delete(Document).where(Document.message_id == message.id))
    await session.execute(delete(Signature).where(Signature.message_id == message.id))
    for doc in r.documents:
        values = {k: v for k, v in doc.facts.items() if k in _FACT_COLUMNS}
        doc_id = (
            await session.execute(
                insert(Document)
                .values(
                    message_id=message.id,
                    part_path=doc.part_path,
                    filename=doc.filename,
                    declared_type=doc.declared_type,
                    detected_type=doc.detected_type,
                    size=doc.size,
                    sha256=doc.sha256,
                    sources=doc.sources,
                    confidence=doc.confidence,
                    flags=doc.flags,
                    defects=doc.defects,
                    verdict=doc.verdict,
                    **values,
                )
                .returning(Document.id)
            )
        ).scalar_one()
        await _insert_signatures(session, message.id, doc_id, doc.signatures)
    await _insert_signatures(session, message.id, None, r.message_signatures)

    created: list[int] = []
    for d in r.deliveries:
        new_id = (
            await session.execute(
                insert(Delivery)
                .values(
                    message_id=message.id,
                    recipient=d.recipient,
                    agency_code=d.agency_code,
                    priority=d.priority,
                    state=d.state,
                )
                .on_conflict_do_nothing(constraint="uq_deliveries_message_recipient")
                .returning(Delivery.id)
            )
        ).scalar_one_or_none()
        if new_id is not None:
            created.append(new_id)

    message.state = r.state
    message.verdict = r.verdict
    message.urgency = r.urgency
    message.error = r.error
    message.claimed_by = None
    message.claimed_until = None
    message.updated_at = dt.datetime.now(dt.UTC)
    for kind, detail in r.events:
        await append_event(session, kind, message_id=message.id, detail=detail)
    if any(d.state == "queued" for d in r.deliveries):
        await notify(session, CHANNEL_DELIVERIES, str(message.id))
    return created


async def _insert_signatures(
    session: AsyncSession, message_id: int, document_id: int | None, rows: list[SignatureRow]
) -> None:
    if not rows:
        return
    await session.execute(
        insert(Signature),
        [
            {
                "message_id": message_id,
                "document_id": document_id,
                "format": s.format,
                "verdict": s.verdict,
                "reason": s.reason,
                "signer_cn": s.signer_cn,
                "signer_o": s.signer_o,
                "signer_uid": s.signer_uid,
                "serial": s.serial,
                "issuer_cn": s.issuer_cn,
                "cert_sha256": s.cert_sha256,
                "signing_time": s.signing_time,
                "signing_time_source": s.signing_time_source,
                "covers_whole_file": s.covers_whole_file,
                "detail": s.detail,
            }
            for s in rows
        ],
    )


async def begin_attempt(session: AsyncSession, message_id: int) -> int:
    """Count one more processing attempt (committed before the work starts); returns it."""
    return (
        await session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(attempts=Message.attempts + 1)
            .returning(Message.attempts)
        )
    ).scalar_one()


async def record_failure(
    session: AsyncSession,
    message_id: int,
    worker: str,
    error: str,
    *,
    final: bool,
    retry_after: dt.timedelta,
    keep_error: bool = False,
) -> bool:
    """After a failed attempt: give the message back for a later retry, or (when *final*)
    put it in state `failed` with its error. Returns False if the claim was lost meanwhile.
    With *keep_error* an error recorded by an earlier attempt is kept in preference."""
    new_error: Any = func.coalesce(Message.error, error[:2000]) if keep_error else error[:2000]
    values: dict[str, Any] = {"error": new_error, "updated_at": dt.datetime.now(dt.UTC)}
    if final:
        values.update(state="failed", claimed_by=None, claimed_until=None)
    else:
        values.update(claimed_by=None, claimed_until=dt.datetime.now(dt.UTC) + retry_after)
    res = await session.execute(
        update(Message)
        .where(
            Message.id == message_id,
            Message.state == "received",
            Message.claimed_by == worker,
        )
        .values(**values)
        .returning(Message.attempts, Message.error)
        .execution_options(synchronize_session=False)
    )
    row = res.first()
    if row is None:
        return False
    if final:
        await append_event(
            session,
            "failed",
            message_id=message_id,
            detail={"error": (row.error or error)[:500], "attempts": row.attempts},
        )
    return True


async def release_unfinished(session: AsyncSession, message_id: int, worker: str) -> None:
    """Give back a message a stopping worker did not finish; the interrupted attempt does not
    count against it (it was the shutdown, not the message)."""
    await session.execute(
        update(Message)
        .where(
            Message.id == message_id,
            Message.state == "received",
            Message.claimed_by == worker,
        )
        .values(
            claimed_by=None,
            claimed_until=None,
            attempts=func.greatest(Message.attempts - 1, 0),
        )
        .execution_options(synchronize_session=False)
    )
