"""Read-side queries for admins: the delivery log, one message in full, the queue, metrics.

The CLI (`edocgw log/show/queue`), the web pages and the JSON API all read through these
functions, so each question is asked of the database in exactly one way. Results are plain
dataclasses whose field names are the JSON names of DESIGN §7.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    any_,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession

from config.types import parse_duration
from store import signatures
from store.models import (
    DELIVERY_STATES,
    MESSAGE_STATES,
    Delivery,
    Document,
    Event,
    Message,
    Signature,
    User,
)
from store.signatures import SignatureRow
from store.users import UserInfo

PENDING_DELIVERY_STATES = ("queued", "sending", "deferred", "held")
# qshape's columns: minutes of age; a delivery falls in the first bucket whose bound exceeds it.
AGE_BUCKETS_MIN = (5, 10, 20, 40, 80, 160, 320, 640, 1280)
AGE_LABELS = tuple(str(b) for b in AGE_BUCKETS_MIN) + (f"{AGE_BUCKETS_MIN[-1]}+",)
MAX_LIMIT = 1000


class QueryError(ValueError):
    """A filter value that cannot be used (reported in one line)."""


# ---- filters -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogFilter:
    since: dt.datetime | None = None
    state: str | None = None  # a message state or a delivery state
    agency: str | None = None
    sender: str | None = None
    search: str | None = None  # subject, sender, number/notation, document subject
    before_id: int | None = None  # keyset paging: the messages listed after this one
    limit: int = 50
    notices: bool = True  # False: leave out the gateway's own mail (receipts, DSNs)

    def __post_init__(self) -> None:
        if self.state and self.state not in MESSAGE_STATES + DELIVERY_STATES:
            states = ", ".join(dict.fromkeys(MESSAGE_STATES + DELIVERY_STATES))
            raise QueryError(f"unknown state {self.state!r}: expected one of {states}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise QueryError(f"limit must be between 1 and {MAX_LIMIT}")
        for name in ("agency", "sender", "search"):
            value = getattr(self, name)
            if value is not None and ("\x00" in value or len(value) > 500):
                raise QueryError(f"{name}: expected text without NUL, at most 500 characters")


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_since(value: str, now: dt.datetime | None = None) -> dt.datetime:
    """`2h`, `3d` (that long ago), `2024-05-01` or an ISO date-time (local time if no zone)."""
    now = now or dt.datetime.now(dt.UTC)
    v = value.strip()
    try:
        return now - parse_duration(v)
    except (ValueError, OverflowError):
        pass
    try:
        if _ISO_DATE.match(v):
            parsed = dt.datetime.combine(dt.date.fromisoformat(v), dt.time())
        else:
            parsed = dt.datetime.fromisoformat(v)
        return parsed if parsed.tzinfo else parsed.astimezone()
    except (ValueError, OverflowError):
        raise QueryError(
            f"since {value!r}: expected a duration (90m, 2h, 3d) or a date (2024-05-01)"
        ) from None


def _like(s: str) -> str:
    return "%" + s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _conditions(f: LogFilter) -> list[ColumnElement[bool]]:
    cond: list[ColumnElement[bool]] = []
    if f.since is not None:
        cond.append(Message.received_at >= f.since)
    if f.before_id is not None:
        # Keyset paging in the list's own order (newest first by received_at, then id):
        # "before ID" is every message listed after message ID.
        at = select(Message.received_at).where(Message.id == f.before_id).scalar_subquery()
        cond.append(
            or_(
                tuple_(Message.received_at, Message.id) < tuple_(at, literal(f.before_id)),
                and_(at.is_(None), Message.id < f.before_id),  # an unknown id: by id alone
            )
        )
    if not f.notices:
        cond.append(Message.source != "internal")
    if f.state:
        by_delivery = exists().where(Delivery.message_id == Message.id, Delivery.state == f.state)
        if f.state in MESSAGE_STATES and f.state in DELIVERY_STATES:
            cond.append(or_(Message.state == f.state, by_delivery))
        elif f.state in MESSAGE_STATES:
            cond.append(Message.state == f.state)
        else:
            cond.append(by_delivery)
    if f.agency:
        code = f.agency.strip()
        cond.append(
            or_(
                exists().where(Delivery.message_id == Message.id, Delivery.agency_code == code),
                exists().where(
                    Document.message_id == Message.id, literal(code) == any_(Document.agency_codes)
                ),
            )
        )
    if f.sender:
        pat = _like(f.sender.strip())
        cond.append(or_(Message.mail_from.ilike(pat), Message.header_from.ilike(pat)))
    if f.search and f.search.strip():
        pat = _like(f.search.strip())
        number_notation = func.concat(Document.number, literal("/"), Document.notation)
        cond.append(
            or_(
                Message.subject.ilike(pat),
                Message.mail_from.ilike(pat),
                Message.header_from.ilike(pat),
                exists().where(
                    Document.message_id == Message.id,
                    or_(
                        number_notation.ilike(pat),
                        Document.notation.ilike(pat),
                        Document.subject.ilike(pat),
                        Document.filename.ilike(pat),
                    ),
                ),
            )
        )
    return cond


# ---- the delivery log ----------------------------------------------------------------------


@dataclass
class DocumentBrief:
    filename: str | None
    kind: str | None
    number: str | None
    notation: str | None
    verdict: str | None
    unreadable: str | None = None  # why the text could not be read (verdict `unreadable`)


@dataclass
class DeliveryBrief:
    id: int
    recipient: str
    agency: str | None
    state: str
    attempts: int
    last_reply: str | None
    delivered_at: dt.datetime | None


@dataclass
class MessageSummary:
    id: int
    received_at: dt.datetime
    source: str
    message_id: str | None
    mail_from: str
    rcpt_to: list[str]
    subject: str | None
    state: str
    verdict: str | None
    documents: list[DocumentBrief] = field(default_factory=list)
    deliveries: list[DeliveryBrief] = field(default_factory=list)
    sender_auth: dict[str, Any] | None = None  # inbound SPF/DKIM/DMARC; None: not checked
    flags: list[str] = field(default_factory=list)  # e.g. sender_not_official
    urgency: str | None = None  # Khẩn, Thượng khẩn, Hỏa tốc …
    reason: str | None = None  # why it is held, quarantined or failed
    duplicate_of: int | None = None  # state `duplicate`: the message it repeats


_REASONS = text(
    """SELECT DISTINCT ON (message_id) message_id,
       COALESCE(detail->>'reason', array_to_string(ARRAY(
           SELECT jsonb_array_elements_text(CASE WHEN jsonb_typeof(detail->'reasons') = 'array'
                                                 THEN detail->'reasons' END)), ', '),
           detail->>'error') AS reason
FROM events
WHERE message_id = ANY(CAST(:ids AS bigint[])) AND kind IN ('held', 'quarantined', 'failed')
ORDER BY message_id, id DESC"""
)


def reply_text(code: int | None, reply: str | None) -> str | None:
    """`250 2.0.0 Ok`: the reply code and text as one line (the text may already hold it)."""
    if code is None:
        return reply
    if reply and reply.startswith(str(code)):
        return reply
    return f"{code} {reply}".rstrip() if reply else str(code)


def _delivery_brief(d: Delivery) -> DeliveryBrief:
    return DeliveryBrief(
        id=d.id,
        recipient=d.recipient,
        agency=d.agency_code,
        state=d.state,
        attempts=d.attempts,
        last_reply=reply_text(d.last_reply_code, d.last_reply),
        delivered_at=d.delivered_at,
    )


async def list_messages(session: AsyncSession, f: LogFilter) -> list[MessageSummary]:
    """Messages matching `f`, newest first, each with its documents and deliveries."""
    return await _summaries(session, _conditions(f), f.limit)


async def _summaries(
    session: AsyncSession, where: list[ColumnElement[bool]], limit: int
) -> list[MessageSummary]:
    msgs = (
        await session.scalars(
            select(Message)
            .where(*where)
            .order_by(Message.received_at.desc(), Message.id.desc())
            .limit(limit)
        )
    ).all()
    ids = [m.id for m in msgs]
    docs: dict[int, list[DocumentBrief]] = defaultdict(list)
    dels: dict[int, list[DeliveryBrief]] = defaultdict(list)
    if ids:
        for d in (
            await session.scalars(
                select(Document).where(Document.message_id.in_(ids)).order_by(Document.id)
            )
        ).all():
            docs[d.message_id].append(
                DocumentBrief(d.filename, d.kind, d.number, d.notation, d.verdict, d.unreadable)
            )
        for dl in (
            await session.scalars(
                select(Delivery).where(Delivery.message_id.in_(ids)).order_by(Delivery.id)
            )
        ).all():
            dels[dl.message_id].append(_delivery_brief(dl))
    flags = await message_flags(session, ids)
    waiting = [m.id for m in msgs if m.state in ("held", "quarantined", "failed")]
    reasons: dict[int, str | None] = {}
    if waiting:
        for r in await session.execute(_REASONS, {"ids": waiting}):
            reasons[r.message_id] = r.reason or None
    return [
        MessageSummary(
            id=m.id,
            received_at=m.received_at,
            source=m.source,
            message_id=m.header_message_id,
            mail_from=m.mail_from,
            rcpt_to=list(m.rcpt_to or []),
            subject=m.subject,
            state=m.state,
            verdict=m.verdict,
            documents=docs[m.id],
            deliveries=dels[m.id],
            sender_auth=m.auth_results,
            flags=flags.get(m.id, []),
            urgency=m.urgency,
            reason=reasons.get(m.id) or (m.error if m.state == "failed" else None),
            duplicate_of=m.duplicate_of,
        )
        for m in msgs
    ]


async def message_flags(session: AsyncSession, ids: list[int]) -> dict[int, list[str]]:
    """The flags the pipeline recorded with each message's `verified` event."""
    if not ids:
        return {}
    rows = await session.execute(
        select(Event.message_id, Event.detail["flags"])
        .where(Event.message_id.in_(ids), Event.kind == "verified")
        .order_by(Event.id)
    )
    out: dict[int, list[str]] = {}
    for message_id, value in rows:
        if isinstance(value, list):
            out[message_id] = [str(x) for x in value]
    return out


# ---- one message in full -------------------------------------------------------------------


@dataclass
class EventInfo:
    id: int
    at: dt.datetime
    kind: str
    delivery_id: int | None
    detail: dict[str, Any]


_VN_TIME = dt.timezone(dt.timedelta(hours=7))


@dataclass
class DocumentFactsInfo:
    kind: str | None
    kind_abbr: str | None
    number: str | None
    year: int | None
    notation: str | None
    issuer: str | None
    place: str | None
    date: dt.date | None
    subject: str | None
    signer: str | None
    urgency: str | None
    secrecy: str | None
    recipients: list[str]
    agency_codes: list[str]
    sources: dict[str, Any]
    parent_issuer: str | None = None
    signer_position: str | None = None
    signer_competence: str | None = None
    meeting_start: dt.datetime | None = None
    meeting_place: str | None = None


@dataclass
class DocumentDetail:
    id: int
    part_path: str
    filename: str | None
    declared_type: str | None
    detected_type: str
    size: int
    sha256: str
    facts: DocumentFactsInfo
    confidence: dict[str, Any]
    flags: list[str]
    defects: list[str]
    verdict: str | None
    signatures: list[SignatureRow]
    # Decree 30 e-document check; None for a non-document or one stored before the check
    e_document: dict[str, Any] | None = None
    unreadable: str | None = None


@dataclass
class DeliveryDetail(DeliveryBrief):
    last_reply_code: int | None
    priority: int
    next_attempt_at: dt.datetime | None
    created_at: dt.datetime
    claimed_by: str | None
    events: list[EventInfo] = field(default_factory=list)  # every attempt and its reply


@dataclass
class MessageDetail:
    id: int
    received_at: dt.datetime
    source: str
    peer: str
    auth_user: str | None
    mail_from: str
    rcpt_to: list[str]
    message_id: str | None
    header_from: str | None
    subject: str | None
    size: int
    sha256: str
    state: str
    verdict: str | None
    urgency: str | None
    error: str | None
    duplicate_of: int | None
    signatures: list[SignatureRow]  # on the message itself (S/MIME)
    documents: list[DocumentDetail]
    deliveries: list[DeliveryDetail]
    receipts: list[EventInfo]
    events: list[EventInfo]
    sender_auth: dict[str, Any] | None = None  # inbound SPF/DKIM/DMARC; None: not checked
    flags: list[str] = field(default_factory=list)


RECEIPT_EVENT_KINDS = ("receipt_sent", "warned")


def _sig(s: Signature) -> SignatureRow:
    return SignatureRow(id=s.id, **{c: getattr(s, c) for c in signatures.COLUMNS})


async def message_detail(session: AsyncSession, message_id: int) -> MessageDetail | None:
    m = await session.get(Message, message_id)
    if m is None:
        return None
    sigs = (
        await session.scalars(
            select(Signature).where(Signature.message_id == m.id).order_by(Signature.id)
        )
    ).all()
    by_doc: dict[int | None, list[SignatureRow]] = defaultdict(list)
    for s in sigs:
        by_doc[s.document_id].append(_sig(s))
    docs = (
        await session.scalars(
            select(Document).where(Document.message_id == m.id).order_by(Document.id)
        )
    ).all()
    events = [
        EventInfo(e.id, e.at, e.kind, e.delivery_id, dict(e.detail or {}))
        for e in (
            await session.scalars(
                select(Event).where(Event.message_id == m.id).order_by(Event.at, Event.id)
            )
        ).all()
    ]
    by_delivery: dict[int, list[EventInfo]] = defaultdict(list)
    for e in events:
        if e.delivery_id is not None:
            by_delivery[e.delivery_id].append(e)
    dels = (
        await session.scalars(
            select(Delivery).where(Delivery.message_id == m.id).order_by(Delivery.id)
        )
    ).all()
    return MessageDetail(
        id=m.id,
        received_at=m.received_at,
        source=m.source,
        peer=m.peer,
        auth_user=m.auth_user,
        mail_from=m.mail_from,
        rcpt_to=list(m.rcpt_to or []),
        message_id=m.header_message_id,
        header_from=m.header_from,
        subject=m.subject,
        size=m.size,
        sha256=m.sha256,
        state=m.state,
        verdict=m.verdict,
        urgency=m.urgency,
        error=m.error,
        duplicate_of=m.duplicate_of,
        signatures=by_doc[None],
        documents=[
            DocumentDetail(
                id=d.id,
                part_path=d.part_path,
                filename=d.filename,
                declared_type=d.declared_type,
                detected_type=d.detected_type,
                size=d.size,
                sha256=d.sha256,
                facts=DocumentFactsInfo(
                    kind=d.kind,
                    kind_abbr=d.kind_abbr,
                    number=d.number,
                    year=d.year,
                    notation=d.notation,
                    issuer=d.issuer,
                    place=d.place,
                    date=d.doc_date,
                    subject=d.subject,
                    signer=d.signer,
                    urgency=d.urgency,
                    secrecy=d.secrecy,
                    recipients=list(d.recipients or []),
                    agency_codes=list(d.agency_codes or []),
                    sources=dict(d.sources or {}),
                    parent_issuer=d.parent_issuer,
                    signer_position=d.signer_position,
                    signer_competence=d.signer_competence,
                    # meetings are stated in Vietnam time (UTC+7), and shown so
                    meeting_start=d.meeting_start.astimezone(_VN_TIME) if d.meeting_start else None,
                    meeting_place=d.meeting_place,
                ),
                confidence=dict(d.confidence or {}),
                flags=list(d.flags or []),
                defects=list(d.defects or []),
                verdict=d.verdict,
                signatures=by_doc[d.id],
                e_document=dict(d.e_document) if d.e_document is not None else None,
                unreadable=d.unreadable,
            )
            for d in docs
        ],
        deliveries=[
            DeliveryDetail(
                **vars(_delivery_brief(d)),
                last_reply_code=d.last_reply_code,
                priority=d.priority,
                next_attempt_at=d.next_attempt_at if d.state in PENDING_DELIVERY_STATES else None,
                created_at=d.created_at,
                claimed_by=d.claimed_by,
                events=by_delivery[d.id],
            )
            for d in dels
        ],
        receipts=[e for e in events if e.kind in RECEIPT_EVENT_KINDS],
        events=events,
        sender_auth=m.auth_results,
        flags=[
            str(x)
            for e in events
            if e.kind == "verified" and isinstance(e.detail.get("flags"), list)
            for x in e.detail["flags"]
        ],
    )


async def raw_message(session: AsyncSession, message_id: int) -> bytes | None:
    """The message exactly as received."""
    return (
        await session.execute(select(Message.raw).where(Message.id == message_id))
    ).scalar_one_or_none()


# ---- the queue -----------------------------------------------------------------------------


@dataclass
class AgencyShape:
    agency: str  # agency code, or "-" for deliveries without one
    total: int
    counts: list[int]  # one per AGE_LABELS


@dataclass
class QueueShape:
    """Pending deliveries per agency by age, like Postfix's qshape (ages in minutes)."""

    labels: list[str]
    total: int
    totals: list[int]
    agencies: list[AgencyShape]
    by_state: dict[str, int]
    oldest_age_seconds: float | None


@dataclass
class QueueEntry:
    id: int
    message_id: int
    subject: str | None
    recipient: str
    agency: str | None
    state: str
    attempts: int
    priority: int
    received_at: dt.datetime
    next_attempt_at: dt.datetime
    last_reply: str | None


def _pending(states: tuple[str, ...] | None) -> ColumnElement[bool]:
    return Delivery.state.in_(states or PENDING_DELIVERY_STATES)


async def queue_shape(session: AsyncSession, states: tuple[str, ...] | None = None) -> QueueShape:
    """Age is counted from when the message was received (as qshape counts queue-file age)."""
    age_min = func.extract("epoch", func.now() - Message.received_at) / 60
    bucket = func.width_bucket(
        age_min, text("ARRAY[" + ",".join(f"{b}::numeric" for b in AGE_BUCKETS_MIN) + "]")
    ).label("bucket")
    rows = (
        await session.execute(
            select(Delivery.agency_code, bucket, func.count())
            .join(Message, Message.id == Delivery.message_id)
            .where(_pending(states))
            .group_by(Delivery.agency_code, bucket)
        )
    ).all()
    per: dict[str, list[int]] = defaultdict(lambda: [0] * len(AGE_LABELS))
    for code, b, n in rows:
        per[code or "-"][int(b)] += n
    agencies = sorted(
        (AgencyShape(agency=a, total=sum(c), counts=c) for a, c in per.items()),
        key=lambda s: (-s.total, s.agency),
    )
    totals = [sum(s.counts[i] for s in agencies) for i in range(len(AGE_LABELS))]
    by_state = {
        st: n
        for st, n in (
            await session.execute(
                select(Delivery.state, func.count())
                .where(_pending(states))
                .group_by(Delivery.state)
            )
        ).all()
    }
    oldest = (
        await session.execute(
            select(func.extract("epoch", func.now() - func.min(Message.received_at)))
            .join(Delivery, Delivery.message_id == Message.id)
            .where(_pending(states))
        )
    ).scalar_one_or_none()
    return QueueShape(
        labels=list(AGE_LABELS),
        total=sum(totals),
        totals=totals,
        agencies=agencies,
        by_state=by_state,
        oldest_age_seconds=float(oldest) if oldest is not None else None,
    )


async def queue_entries(
    session: AsyncSession, states: tuple[str, ...] | None = None, limit: int = 200
) -> list[QueueEntry]:
    """Pending deliveries, most urgent and oldest first."""
    rows = (
        await session.execute(
            select(Delivery, Message.subject, Message.received_at)
            .join(Message, Message.id == Delivery.message_id)
            .where(_pending(states))
            .order_by(Delivery.priority.desc(), Message.received_at, Delivery.id)
            .limit(limit)
        )
    ).all()
    return [
        QueueEntry(
            id=d.id,
            message_id=d.message_id,
            subject=subject,
            recipient=d.recipient,
            agency=d.agency_code,
            state=d.state,
            attempts=d.attempts,
            priority=d.priority,
            received_at=received_at,
            next_attempt_at=d.next_attempt_at,
            last_reply=reply_text(d.last_reply_code, d.last_reply),
        )
        for d, subject, received_at in rows
    ]


async def waiting_count(session: AsyncSession) -> int:
    """How many messages wait for an admin's decision (held or quarantined)."""
    n = await session.scalar(select(func.count()).where(Message.state.in_(("held", "quarantined"))))
    return int(n or 0)


async def waiting_messages(session: AsyncSession, limit: int = 200) -> list[MessageSummary]:
    """Held and quarantined messages: what waits for an admin's decision."""
    return await _summaries(session, [Message.state.in_(("held", "quarantined"))], limit)


# ---- users and metrics ---------------------------------------------------------------------


async def user_by_name(session: AsyncSession, name: str) -> UserInfo | None:
    u = await session.scalar(select(User).where(User.name == name))
    return None if u is None else UserInfo(name=u.name, roles=tuple(u.roles), active=u.active)


@dataclass
class StoreCounts:
    messages_by_state: dict[str, int]
    deliveries_by_state: dict[str, int]
    queue_age_counts: list[int]  # pending deliveries per AGE_BUCKETS_MIN bucket (+ overflow)
    queue_age_sum_seconds: float
    oldest_pending_seconds: float


async def store_counts(session: AsyncSession) -> StoreCounts:
    """Counts for /metrics (grouped by state; cheap on the state indexes)."""
    msgs = dict(
        (await session.execute(select(Message.state, func.count()).group_by(Message.state))).all()
    )
    dels = dict(
        (await session.execute(select(Delivery.state, func.count()).group_by(Delivery.state))).all()
    )
    shape = await queue_shape(session)
    age_sum = (
        await session.execute(
            select(
                func.coalesce(func.sum(func.extract("epoch", func.now() - Message.received_at)), 0)
            )
            .join(Delivery, Delivery.message_id == Message.id)
            .where(_pending(None))
        )
    ).scalar_one()
    return StoreCounts(
        messages_by_state={s: int(msgs.get(s, 0)) for s in MESSAGE_STATES},
        deliveries_by_state={s: int(dels.get(s, 0)) for s in DELIVERY_STATES},
        queue_age_counts=shape.totals,
        queue_age_sum_seconds=float(age_sum),
        oldest_pending_seconds=shape.oldest_age_seconds or 0.0,
    )


__all__ = [
    "AGE_BUCKETS_MIN",
    "AGE_LABELS",
    "AgencyShape",
    "DeliveryBrief",
    "DeliveryDetail",
    "DocumentBrief",
    "DocumentDetail",
    "DocumentFactsInfo",
    "EventInfo",
    "LogFilter",
    "MessageDetail",
    "MessageSummary",
    "QueryError",
    "QueueEntry",
    "QueueShape",
    "SignatureRow",
    "StoreCounts",
    "list_messages",
    "message_detail",
    "parse_since",
    "queue_entries",
    "queue_shape",
    "raw_message",
    "reply_text",
    "store_counts",
    "user_by_name",
    "waiting_count",
    "waiting_messages",
]
