"""Deliveries and destinations: claiming due work and recording what each attempt did.

Every update is guarded by `claimed_by = worker`: a worker whose lease ran out (and whose row
another worker has since claimed) changes nothing, so one attempt's outcome is never recorded
twice. The caller commits; a `LostClaim` means roll the whole transaction back.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Integer,
    Interval,
    Select,
    String,
    and_,
    any_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by, insert
from sqlalchemy.ext.asyncio import AsyncSession

from store import direct, events
from store.direct import Executor, const
from store.invitations import has_meeting
from store.models import Agency, Delivery, Destination, Document, Message

DUE_STATES = ("queued", "deferred", "sending")  # `sending` only once its claim has expired
INLINE_RAW = 256 * 1024  # messages up to this size are read with their claim


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
    raw: bytes | None = None  # the message, when small enough to come with the claim
    doc_verdicts: tuple[str | None, ...] | None = None  # None: not read with the claim
    format: str | None = None  # the agency's format: `mime` (the original) or `edxml`
    auth_results: dict[str, Any] | None = None  # inbound SPF/DKIM/DMARC; None: unchecked
    has_meeting: bool | None = None  # a Giấy mời with a meeting time; None: not read

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
    session: Executor,
    *,
    worker: str,
    lease: dt.timedelta,
    limit: int,
    inline_raw: int = INLINE_RAW,
    cached: Sequence[int] = (),
) -> list[ClaimedDelivery]:
    """Claim up to `limit` due deliveries, most urgent first, then the longest due (a retry that
    falls due again queues behind mail that has waited longer, so a destination that keeps
    failing cannot starve the others), mark them sending and read what sending needs, in one
    statement (one round trip): the envelope, the route, the documents' verdicts, whether a
    meeting invitation goes with it and, for messages up to `inline_raw` bytes, the raw
    bytes, except for the messages in `cached` (the caller has their bytes already)."""
    params = {
        "c_worker": worker,
        "c_lease": lease,
        "c_limit": limit,
        "c_inline_raw": inline_raw,
        "c_cached": list(cached),
    }
    out = []
    for fields in await direct.named_rows(session, _claim_due_statement(), params):
        fields["doc_verdicts"] = tuple(fields["doc_verdicts"] or ())
        out.append(ClaimedDelivery(**fields))
    return out


@functools.cache
def _claim_due_statement() -> Select[Any]:
    """`claim_due`'s statement, built once with its values as parameters: building it with
    SQLAlchemy took about 1.3 ms of CPU per claim, several times the statement's own time in
    PostgreSQL (a built statement also keeps its cache key, so SQLAlchemy finds its compiled
    form without walking it again)."""
    picked = (
        select(Delivery.id)
        .where(
            Delivery.state.in_([const(s) for s in DUE_STATES]),
            Delivery.next_attempt_at <= func.now(),
            _not_paused(),
            or_(Delivery.claimed_until.is_(None), Delivery.claimed_until < func.now()),
        )
        .order_by(Delivery.priority.desc(), Delivery.next_attempt_at, Delivery.id)
        .limit(bindparam("c_limit", type_=Integer))
        .with_for_update(skip_locked=True)
        .cte("picked")
    )
    claimed = (
        update(Delivery)
        .where(Delivery.id.in_(select(picked.c.id)))
        .values(
            claimed_by=bindparam("c_worker", type_=String),
            claimed_until=func.now() + bindparam("c_lease", type_=Interval),
            state="sending",
        )
        .returning(
            Delivery.id,
            Delivery.message_id,
            Delivery.recipient,
            Delivery.agency_code,
            Delivery.priority,
            Delivery.attempts,
            Delivery.created_at,
            Delivery.next_attempt_at,
            Delivery.warned_at,
        )
        .cte("claimed")
    )
    verdicts = (
        select(func.array_agg(aggregate_order_by(Document.verdict, Document.id)))
        .where(Document.message_id == claimed.c.message_id)
        .scalar_subquery()
    )
    inline = and_(
        Message.size <= bindparam("c_inline_raw", type_=Integer),
        ~(Message.id == any_(bindparam("c_cached", type_=ARRAY(BigInteger)))),
    )
    return (
        select(
            claimed.c.id,
            claimed.c.message_id,
            claimed.c.recipient,
            claimed.c.agency_code,
            claimed.c.priority,
            claimed.c.attempts,
            claimed.c.created_at,
            claimed.c.warned_at,
            Agency.route,
            Agency.tls,
            Agency.format,
            Message.mail_from,
            Message.source,
            Message.peer,
            Message.received_at,
            Message.verdict,
            Message.subject,
            case((inline, Message.raw), else_=None).label("raw"),
            verdicts.label("doc_verdicts"),
            Message.auth_results,
            has_meeting(claimed.c.message_id).label("has_meeting"),
        )
        .select_from(claimed)
        .join(Message, Message.id == claimed.c.message_id)
        .outerjoin(Agency, Agency.code == claimed.c.agency_code)
        .order_by(claimed.c.priority.desc(), claimed.c.next_attempt_at, claimed.c.id)
    )


async def next_due_at(session: Executor) -> dt.datetime | None:
    """When the earliest waiting delivery falls due, or a dead worker's claim expires (so an
    idle worker sleeps exactly that long rather than a whole poll interval)."""
    (row,) = await direct.rows(session, _next_due_statement(), {})
    return min((t for t in row if t is not None), default=None)


@functools.cache
def _next_due_statement() -> Select[dt.datetime, dt.datetime | None]:
    """Both look-ups in one statement, built once: an idle delivery worker asks this every
    time its claim comes back empty, which under a slow stream of big messages is after
    nearly every message; building the two selects and their cache keys cost the worker
    more than PostgreSQL spent running them, and each was a round trip of its own."""
    waiting = (
        select(func.min(Delivery.next_attempt_at))
        .where(Delivery.state.in_([const("queued"), const("deferred")]), _not_paused())
        .scalar_subquery()
    )
    stranded = (
        select(func.min(Delivery.claimed_until))
        .where(Delivery.state == const("sending"))
        .scalar_subquery()
    )
    return select(waiting, stranded)


async def message_raw(session: AsyncSession, message_id: int) -> bytes:
    return (await session.execute(select(Message.raw).where(Message.id == message_id))).scalar_one()


async def message_head(session: AsyncSession, message_id: int, limit: int) -> bytes:
    """The first `limit` bytes of a stored message: where its header block is (the caller
    cuts it with `mailparse.headers.header_block`; store/ does not parse mail)."""
    return (
        await session.execute(
            select(func.substring(Message.raw, 1, limit)).where(Message.id == message_id)
        )
    ).scalar_one() or b""


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


async def release_claims(session: AsyncSession, ids: Sequence[int] | None, worker: str) -> int:
    """Give unsent rows back at shutdown, in the state they had before the claim; `ids`
    None gives back every row `worker` holds (a claim cut short by the stop included).
    Returns how many rows were given back."""
    if ids is not None and not ids:
        return 0
    which = [Delivery.claimed_by == worker]
    if ids is not None:
        which.append(Delivery.id.in_(list(ids)))
    res = await session.execute(
        update(Delivery)
        .where(*which)
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
    return int(res.rowcount)  # type: ignore[attr-defined]


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


@dataclass(frozen=True)
class DeliveredRow:
    """One accepted delivery, for `record_delivered`; `events` in the order they happened."""

    id: int
    attempts: int
    code: int
    reply: str
    destination: str
    events: tuple[tuple[str, dict[str, Any]], ...]


# One statement for a batch of accepted deliveries: each row fenced on our claim, its events
# inserted only when its row was ours, and the destinations that answered forgiven.
_DELIVERED_EVENTS = events.insert_sql(
    """
    SELECT e.kind, done.message_id, done.id, CAST(e.detail AS jsonb)
    FROM unnest(CAST(:e_delivery AS bigint[]), CAST(:e_kind AS text[]),
                CAST(:e_detail AS text[])) WITH ORDINALITY AS e(delivery, kind, detail, ord)
    JOIN done ON done.id = e.delivery
    ORDER BY e.ord"""
)
_RECORD_DELIVERED = text(
    f"""
WITH o AS (
    SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS integer[]),
                         CAST(:codes AS integer[]), CAST(:replies AS text[]))
        AS o(id, attempts, code, reply)
), done AS (
    UPDATE deliveries AS d
    SET state = 'delivered', attempts = o.attempts, last_reply_code = o.code,
        last_reply = o.reply, delivered_at = now(), claimed_by = NULL, claimed_until = NULL
    FROM o
    WHERE d.id = o.id AND d.claimed_by = :worker
    RETURNING d.id, d.message_id
), ev AS (
    {_DELIVERED_EVENTS}
), ok AS (
    UPDATE destinations SET consecutive_failures = 0, paused_until = NULL, last_error = NULL
    WHERE key = ANY(CAST(:keys AS text[])) AND consecutive_failures > 0
)
SELECT id FROM done
"""
)


async def record_delivered(
    executor: Executor, worker: str, rows: Sequence[DeliveredRow]
) -> set[int]:
    """Mark `rows` delivered with their events in one round trip (in the caller's transaction,
    or alone on the process's own pool); returns the ids that were still ours (the others
    lost their claim and got nothing written)."""
    if not rows:
        return set()
    params: dict[str, Any] = {
        "worker": worker,
        "ids": [r.id for r in rows],
        "attempts": [r.attempts for r in rows],
        "codes": [r.code for r in rows],
        "replies": [r.reply.replace("\x00", "\ufffd") for r in rows],
        "keys": sorted({r.destination for r in rows}),
        "e_delivery": [r.id for r in rows for _ in r.events],
        "e_kind": [k for r in rows for k, _ in r.events],
        "e_detail": [events.detail_json(d) for r in rows for _, d in r.events],
    }
    return {r[0] for r in await direct.rows(executor, _RECORD_DELIVERED, params)}


# ---- creating deliveries -------------------------------------------------------------------

NEXT_DELIVERY_ID = "nextval(pg_get_serial_sequence('deliveries', 'id'))"


def insert_sql(source: str) -> str:
    """The one INSERT that creates deliveries, fed by `source`: a SELECT of
    (id, message_id, recipient, agency_code, priority, state) in the order they are created
    (ids drawn with `NEXT_DELIVERY_ID` where the statement needs them before the insert).

    A message has at most one delivery per recipient: a row for a (message, recipient) that
    already has one is skipped, and only the rows created now are returned (id, message_id,
    recipient). `insert_deliveries` runs it; the pipeline's batch write and the notices'
    enqueue embed it in their single statements."""
    return f"""INSERT INTO deliveries (id, message_id, recipient, agency_code, priority, state)
    {source}
    ON CONFLICT ON CONSTRAINT uq_deliveries_message_recipient DO NOTHING
    RETURNING id, message_id, recipient"""


@dataclass(frozen=True)
class NewDelivery:
    message_id: int
    recipient: str
    agency_code: str | None
    priority: int = 0
    state: str = "queued"  # or held while the message waits for an admin


_INSERT_DELIVERIES = text(
    insert_sql(
        f"""SELECT {NEXT_DELIVERY_ID}, n.message_id, n.recipient, n.agency_code, n.priority,
           n.state
    FROM unnest(CAST(:message_id AS bigint[]), CAST(:recipient AS text[]),
                CAST(:agency_code AS text[]), CAST(:priority AS smallint[]),
                CAST(:state AS text[]))
        WITH ORDINALITY AS n(message_id, recipient, agency_code, priority, state, ord)
    ORDER BY n.ord"""
    )
)


async def insert_deliveries(session: AsyncSession, rows: Sequence[NewDelivery]) -> list[int | None]:
    """Create `rows` in one statement inside the caller's transaction (waking the delivery
    workers is the caller's NOTIFY); returns, per row, the new id, or None where the message
    already had a delivery to that recipient."""
    if not rows:
        return []
    created = (
        await session.execute(
            _INSERT_DELIVERIES,
            {
                "message_id": [r.message_id for r in rows],
                "recipient": [r.recipient for r in rows],
                "agency_code": [r.agency_code for r in rows],
                "priority": [r.priority for r in rows],
                "state": [r.state for r in rows],
            },
        )
    ).all()
    ids = {(message_id, recipient): int(i) for i, message_id, recipient in created}
    return [ids.pop((r.message_id, r.recipient), None) for r in rows]
