"""Deliveries and destinations: claiming due work and recording what each attempt did.

Every update is guarded by `claimed_by = worker`: a worker whose lease ran out (and whose row
another worker has since claimed) changes nothing, so one attempt's outcome is never recorded
twice. The caller commits; a `LostClaim` means roll the whole transaction back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, any_, case, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from store.claims import claim
from store.models import Agency, Delivery, Destination, Document, Message

DUE_STATES = ("queued", "deferred", "sending")  # `sending` only once its claim has expired


class LostClaim(Exception):
    """The row is no longer ours (lease expired and re-claimed); drop this outcome."""


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery with what sending it needs, loaded in the claiming transaction."""

    id: int
    message_id: int
    recipient: str
    agency_code: str | None
    priority: int
    attempts: int
    created_at: dt.datetime
    warned_at: dt.datetime | None
    route: str | None  # the agency's route (`smtp://`/`lmtp://host:port`, `mx`); None: no agency
    tls: str | None  # the agency's TLS policy
    mail_from: str
    source: str
    peer: str
    received_at: dt.datetime
    verdict: str | None
    subject: str | None

    @property
    def destination(self) -> str:
        return destination_key(self.route, self.recipient)


def destination_key(route: str | None, recipient: str) -> str:
    """The next hop a delivery shares with others: the agency's smarthost, else the domain."""
    if route and route.startswith(("smtp://", "lmtp://")):
        return route
    return recipient.rpartition("@")[2].lower()


def _recipient_domain() -> ColumnElement[str]:
    return func.lower(func.split_part(Delivery.recipient, "@", 2))


def _not_paused() -> ColumnElement[bool]:
    """No paused `destinations` row for the delivery's domain or its agency's smarthost."""
    agency_route = (
        select(Agency.route)
        .where(Agency.code == Delivery.agency_code)
        .correlate(Delivery)
        .scalar_subquery()
    )
    return ~(
        select(Destination.key)
        .where(
            Destination.paused_until > func.now(),
            or_(Destination.key == _recipient_domain(), Destination.key == agency_route),
        )
        .correlate(Delivery)
        .exists()
    )


async def claim_due(
    session: AsyncSession, *, worker: str, lease: dt.timedelta, limit: int
) -> list[ClaimedDelivery]:
    """Claim up to `limit` due deliveries, most urgent then oldest first, and mark them sending."""
    ids = await claim(
        session,
        Delivery,
        worker=worker,
        lease=lease,
        limit=limit,
        where=[
            Delivery.state.in_(DUE_STATES),
            Delivery.next_attempt_at <= func.now(),
            _not_paused(),
        ],
        order_by=[Delivery.priority.desc(), Delivery.created_at],
    )
    if not ids:
        return []
    await session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids))
        .values(state="sending")
        .execution_options(synchronize_session=False)
    )
    rows = (
        await session.execute(
            select(
                Delivery.id,
                Delivery.message_id,
                Delivery.recipient,
                Delivery.agency_code,
                Delivery.priority,
                Delivery.attempts,
                Delivery.created_at,
                Delivery.warned_at,
                Agency.route,
                Agency.tls,
                Message.mail_from,
                Message.source,
                Message.peer,
                Message.received_at,
                Message.verdict,
                Message.subject,
            )
            .join(Message, Message.id == Delivery.message_id)
            .outerjoin(Agency, Agency.code == Delivery.agency_code)
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.priority.desc(), Delivery.created_at, Delivery.id)
        )
    ).all()
    return [ClaimedDelivery(**r._asdict()) for r in rows]


async def next_due_at(session: AsyncSession) -> dt.datetime | None:
    """When the earliest waiting delivery falls due, or a dead worker's claim expires (so an
    idle worker sleeps exactly that long rather than a whole poll interval)."""
    waiting = (
        await session.execute(
            select(func.min(Delivery.next_attempt_at)).where(
                Delivery.state.in_(("queued", "deferred")), _not_paused()
            )
        )
    ).scalar_one_or_none()
    stranded = (
        await session.execute(
            select(func.min(Delivery.claimed_until)).where(Delivery.state == "sending")
        )
    ).scalar_one_or_none()
    return min((t for t in (waiting, stranded) if t is not None), default=None)


async def message_raw(session: AsyncSession, message_id: int) -> bytes:
    return (await session.execute(select(Message.raw).where(Message.id == message_id))).scalar_one()


async def message_headers(session: AsyncSession, message_id: int, limit: int = 65536) -> bytes:
    """The header block of a stored message (at most `limit` bytes are read)."""
    head = (
        await session.execute(
            select(func.substring(Message.raw, 1, limit)).where(Message.id == message_id)
        )
    ).scalar_one() or b""
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = head.find(sep)
        if end >= 0:
            return head[: end + len(sep) // 2]
    return head


async def document_verdicts(session: AsyncSession, message_id: int) -> list[str | None]:
    return list(
        (
            await session.execute(select(Document.verdict).where(Document.message_id == message_id))
        ).scalars()
    )


async def _guarded_update(session: AsyncSession, delivery_id: int, worker: str, **values) -> None:
    res = await session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.claimed_by == worker)
        .values(claimed_by=None, claimed_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise LostClaim(f"delivery {delivery_id} is no longer claimed by {worker}")


async def mark_delivered(
    session: AsyncSession, delivery_id: int, worker: str, *, attempts: int, code: int, reply: str
) -> None:
    await _guarded_update(
        session,
        delivery_id,
        worker,
        state="delivered",
        attempts=attempts,
        last_reply_code=code,
        last_reply=reply,
        delivered_at=func.now(),
    )


async def mark_deferred(
    session: AsyncSession,
    delivery_id: int,
    worker: str,
    *,
    attempts: int,
    code: int | None,
    reply: str,
    next_attempt_at: dt.datetime,
    warned: bool = False,
) -> None:
    extra = {"warned_at": func.now()} if warned else {}
    await _guarded_update(
        session,
        delivery_id,
        worker,
        state="deferred",
        attempts=attempts,
        last_reply_code=code,
        last_reply=reply,
        next_attempt_at=next_attempt_at,
        **extra,
    )


async def mark_bounced(
    session: AsyncSession,
    delivery_id: int,
    worker: str,
    *,
    attempts: int,
    code: int | None,
    reply: str,
) -> None:
    await _guarded_update(
        session,
        delivery_id,
        worker,
        state="bounced",
        attempts=attempts,
        last_reply_code=code,
        last_reply=reply,
    )


async def renew_claims(
    session: AsyncSession, ids: Sequence[int], worker: str, lease: dt.timedelta
) -> None:
    """Extend our lease on rows still being sent (a slow destination must not let another
    worker take the row and send it a second time)."""
    if ids:
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_(list(ids)), Delivery.claimed_by == worker)
            .values(claimed_until=func.now() + lease)
            .execution_options(synchronize_session=False)
        )


async def release_claims(session: AsyncSession, ids: Sequence[int], worker: str) -> None:
    """Give unsent rows back at shutdown, in the state they had before the claim."""
    if not ids:
        return
    await session.execute(
        update(Delivery)
        .where(Delivery.id.in_(list(ids)), Delivery.claimed_by == worker)
        .values(
            claimed_by=None,
            claimed_until=None,
            state=case(
                (and_(Delivery.state == "sending", Delivery.attempts == 0), "queued"),
                (Delivery.state == "sending", "deferred"),
                else_=Delivery.state,
            ),
        )
        .execution_options(synchronize_session=False)
    )


async def destination_ok(session: AsyncSession, key: str) -> None:
    """A destination answered: forget its failures."""
    await session.execute(
        update(Destination)
        .where(Destination.key == key, Destination.consecutive_failures > 0)
        .values(consecutive_failures=0, paused_until=None, last_error=None)
    )


async def destination_failed(
    session: AsyncSession, key: str, error: str, *, after: int, pause: dt.timedelta
) -> dt.datetime | None:
    """Count a failure to reach `key`; returns the end of its pause when it is (now) paused."""
    ins = insert(Destination).values(key=key, consecutive_failures=1, last_error=error[:500])
    stmt = ins.on_conflict_do_update(
        index_elements=[Destination.key],
        set_={
            "consecutive_failures": Destination.consecutive_failures + 1,
            "last_error": ins.excluded.last_error,
        },
    ).returning(Destination.consecutive_failures, Destination.paused_until)
    failures, paused_until = (await session.execute(stmt)).one()
    if failures >= after and (paused_until is None or paused_until <= dt.datetime.now(dt.UTC)):
        paused_until = (
            await session.execute(
                update(Destination)
                .where(Destination.key == key)
                .values(paused_until=func.now() + pause)
                .returning(Destination.paused_until)
            )
        ).scalar_one()
        return paused_until
    if paused_until is not None and paused_until > dt.datetime.now(dt.UTC):
        return paused_until
    return None


async def agency_for_address(session: AsyncSession, address: str) -> str | None:
    """The active agency whose inbox is `address` or whose mail domains include its domain."""
    domain = address.rpartition("@")[2].lower()
    return (
        await session.execute(
            select(Agency.code)
            .where(
                Agency.active.is_(True),
                or_(
                    func.lower(Agency.address) == address.lower(),
                    literal(domain) == any_(Agency.domains),
                ),
            )
            .order_by(Agency.code)
            .limit(1)
        )
    ).scalar_one_or_none()
