"""The row locks and state changes behind an admin's retry, release and cancel.

Each function works inside the caller's transaction and locks what it reads for change
(`FOR UPDATE`), so a delivery worker cannot claim a row halfway through an admin's action.
What is allowed, and which events to log, is the caller's decision (`gateway.admin.actions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Delivery, Document, Message


@dataclass(frozen=True)
class DeliveryRef:
    id: int
    message_id: int
    state: str
    attempts: int


@dataclass(frozen=True)
class MessageRef:
    id: int
    state: str
    source: str
    urgency: str | None
    subject: str | None
    rcpt_to: list[str]
    route_input: dict[str, Any] | None = None  # what the pipeline routed by (migration 0002)


@dataclass(frozen=True)
class RoutingDocument:
    """What re-routing needs of a stored document."""

    detected_type: str
    sources: dict[str, Any]
    agency_codes: list[str]
    recipients: list[str]


def _delivery_ref(d: Delivery) -> DeliveryRef:
    return DeliveryRef(d.id, d.message_id, d.state, d.attempts)


async def lock_delivery(session: AsyncSession, delivery_id: int) -> DeliveryRef | None:
    d = await session.scalar(select(Delivery).where(Delivery.id == delivery_id).with_for_update())
    return None if d is None else _delivery_ref(d)


async def lock_delivery_to(
    session: AsyncSession, message_id: int, recipient: str
) -> DeliveryRef | None:
    """The message's delivery to `recipient`, locked."""
    d = await session.scalar(
        select(Delivery)
        .where(Delivery.message_id == message_id, Delivery.recipient == recipient)
        .with_for_update()
    )
    return None if d is None else _delivery_ref(d)


async def lock_deferred(session: AsyncSession) -> list[DeliveryRef]:
    """Every deferred delivery not locked by someone else (a worker sending it), locked."""
    rows = (
        await session.execute(
            select(Delivery.id, Delivery.message_id, Delivery.state, Delivery.attempts)
            .where(Delivery.state == "deferred")
            .order_by(Delivery.id)
            .with_for_update(skip_locked=True)
        )
    ).all()
    return [DeliveryRef(*r) for r in rows]


async def lock_message_deliveries(
    session: AsyncSession, message_id: int, states: Sequence[str]
) -> list[int]:
    """The ids of the message's deliveries in `states`, locked."""
    return list(
        (
            await session.scalars(
                select(Delivery.id)
                .where(Delivery.message_id == message_id, Delivery.state.in_(list(states)))
                .with_for_update()
            )
        ).all()
    )


async def requeue(session: AsyncSession, ids: Sequence[int]) -> None:
    """Queue deliveries again, due now, with any claim dropped."""
    if ids:
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_(list(ids)))
            .values(state="queued", next_attempt_at=func.now(), claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        )


async def cancel_deliveries(session: AsyncSession, ids: Sequence[int]) -> None:
    if ids:
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_(list(ids)))
            .values(state="cancelled", claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        )


async def lock_message(session: AsyncSession, message_id: int) -> MessageRef | None:
    m = (
        await session.execute(
            select(
                Message.id,
                Message.state,
                Message.source,
                Message.urgency,
                Message.subject,
                Message.rcpt_to,
                Message.route_input,
            )
            .where(Message.id == message_id)
            .with_for_update()
        )
    ).first()
    if m is None:
        return None
    return MessageRef(
        m.id, m.state, m.source, m.urgency, m.subject, list(m.rcpt_to or []), m.route_input
    )


async def mark_processed(session: AsyncSession, message_id: int, error: str | None) -> None:
    """A waiting message is decided: `processed`, with `error` saying how (or None)."""
    await session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(state="processed", error=error, updated_at=func.now())
        .execution_options(synchronize_session=False)
    )


async def routing_documents(session: AsyncSession, message_id: int) -> list[RoutingDocument]:
    rows = (
        await session.execute(
            select(
                Document.detected_type, Document.sources, Document.agency_codes, Document.recipients
            ).where(Document.message_id == message_id)
        )
    ).all()
    return [
        RoutingDocument(r[0], dict(r[1] or {}), list(r[2] or []), list(r[3] or [])) for r in rows
    ]
