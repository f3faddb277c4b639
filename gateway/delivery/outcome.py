"""What an attempt's result does to the delivery, in one transaction with its events.

2xx → delivered (+ delivery receipt). 5xx → bounced (+ DSN). One notice per event: the
sender of a failed or late delivery gets the RFC 3464 DSN (Vietnamese text, machine-readable
status, the original headers) and no second, receipt-style notice saying the same.
4xx, timeouts, refused connections → deferred on the retry schedule with jitter (the last
step repeats), with one delay warning once the delivery is late, and a bounce when it has
been trying for `max_age`. A destination that keeps failing is paused.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass

from config import Settings
from gateway.delivery.smtp import Result
from gateway.delivery.trace import edocgw_id
from gateway.notices.dsn import Original, RecipientStatus, queue_dsn
from gateway.notices.receipts import NoticeRequest, queue_notices
from store import deliveries as repo
from store.db import Transaction, savepoint
from store.deliveries import ClaimedDelivery
from store.events import append_event

log = logging.getLogger("edocgw.delivery")

URGENT_PRIORITY = 3  # Hỏa tốc (edXML priority 3) and Hỏa tốc hẹn giờ (4)
_rng = random.Random()


@dataclass(frozen=True)
class Applied:
    state: str
    next_attempt_at: dt.datetime | None = None
    warned: bool = False
    paused_until: dt.datetime | None = None


def warn_after(settings: Settings, priority: int) -> dt.timedelta:
    s = settings.delivery
    return s.delay_warning_urgent if priority >= URGENT_PRIORITY else s.delay_warning


def next_attempt(
    settings: Settings, d: ClaimedDelivery, attempts: int, now: dt.datetime
) -> dt.datetime:
    """Retry time: the schedule's step for this attempt (the last repeats), ±10 % jitter so
    retries to one destination spread out; never past the moment the delivery expires, nor
    past the delay-warning time if the sender has not been warned yet."""
    schedule = settings.delivery.retry_schedule
    wait = schedule[min(attempts - 1, len(schedule) - 1)] * _rng.uniform(0.9, 1.1)
    at = now + wait
    at = min(at, d.created_at + settings.delivery.max_age)
    if d.warned_at is None:
        warn_at = d.created_at + warn_after(settings, d.priority)
        if warn_at > now:
            at = min(at, warn_at)
    return max(at, now + dt.timedelta(milliseconds=100))


def _original(settings: Settings, d: ClaimedDelivery) -> Original:
    return Original(
        message_id=d.message_id,
        mail_from=d.mail_from,
        source=d.source,
        received_at=d.received_at,
        subject=d.subject or "",
        xid=edocgw_id(d.message_id, settings.gateway.hostname),
    )


async def apply_outcome(
    session: Transaction,
    settings: Settings,
    d: ClaimedDelivery,
    result: Result,
    worker: str,
    now: dt.datetime | None = None,
) -> Applied:
    now = now or dt.datetime.now(dt.UTC)
    attempts = d.attempts + 1
    base = {
        "recipient": d.recipient,
        "code": result.code,
        "reply": result.reply,
        **dict(result.extra),
    }
    await append_event(
        session,
        "attempt",
        message_id=d.message_id,
        delivery_id=d.id,
        detail=_attempt_detail(d, result, attempts, worker),
    )
    if result.outcome == "delivered":
        await repo.mark_delivered(
            session, d.id, worker, attempts=attempts, code=result.code or 250, reply=result.reply
        )
        await append_event(
            session, "delivered", message_id=d.message_id, delivery_id=d.id, detail=base
        )
        await repo.destination_ok(session, d.destination)
        await _notice(session, settings, d, "delivered", {**base, "agency": d.agency_code})
        return Applied("delivered")

    if result.outcome == "permanent":
        await repo.destination_ok(session, d.destination)  # it answered: it is alive
        await _bounce(session, settings, d, result, attempts, "rejected", now, worker)
        return Applied("bounced")

    paused = None
    if result.unreachable:
        paused = await repo.destination_failed(
            session,
            d.destination,
            result.reply,
            after=settings.delivery.dead_destination_after,
            pause=settings.delivery.dead_destination_pause,
        )
    age = now - d.created_at
    if age >= settings.delivery.max_age:
        await _bounce(session, settings, d, result, attempts, "expired", now, worker)
        return Applied("bounced")
    at = next_attempt(settings, d, attempts, now)
    if paused is not None:
        at = max(at, paused)
    warn = d.warned_at is None and age >= warn_after(settings, d.priority)
    await repo.mark_deferred(
        session,
        d.id,
        worker,
        attempts=attempts,
        code=result.code,
        reply=result.reply,
        next_attempt_at=at,
        warned=warn,
    )
    await append_event(
        session,
        "deferred",
        message_id=d.message_id,
        delivery_id=d.id,
        detail={
            **base,
            "attempt": attempts,
            "next_attempt_at": at.isoformat(),
            "paused_until": paused.isoformat() if paused else None,
        },
    )
    if warn:
        until = d.created_at + settings.delivery.max_age
        dsn = await queue_dsn(
            session,
            settings,
            _original(settings, d),
            RecipientStatus(
                recipient=d.recipient,
                action="delayed",
                status=result.status if result.status.startswith("4") else "4.0.0",
                diagnostic=result.diagnostic,
                remote_mta=result.host.rpartition(":")[0],
                last_attempt=now,
                will_retry_until=until,
            ),
        )
        await append_event(
            session,
            "warned",
            message_id=d.message_id,
            delivery_id=d.id,
            detail={**base, "age_seconds": int(age.total_seconds()), "dsn": dsn},
        )
    return Applied("deferred", next_attempt_at=at, warned=warn, paused_until=paused)


async def _bounce(
    session: Transaction,
    settings: Settings,
    d: ClaimedDelivery,
    result: Result,
    attempts: int,
    why: str,
    now: dt.datetime,
    worker: str,
) -> None:
    if why == "expired":
        status = "4.4.7"
        reply = f"delivery time expired after {attempts} attempts; last: {result.reply}"
    else:
        status = result.status
        reply = result.reply
    await repo.mark_bounced(session, d.id, worker, attempts=attempts, code=result.code, reply=reply)
    dsn = await queue_dsn(
        session,
        settings,
        _original(settings, d),
        RecipientStatus(
            recipient=d.recipient,
            action="failed",
            status=status,
            diagnostic=result.diagnostic,
            remote_mta=result.host.rpartition(":")[0],
            last_attempt=now,
        ),
    )
    await append_event(
        session,
        "bounced",
        message_id=d.message_id,
        delivery_id=d.id,
        detail={
            "recipient": d.recipient,
            "code": result.code,
            "reply": reply,
            "status": status,
            "reason": why,
            "dsn": dsn,
        },
    )


async def _notice(
    session: Transaction, settings: Settings, d: ClaimedDelivery, kind: str, detail: dict
) -> int | None:
    if d.source == "internal" or not settings.receipts.enabled:
        return None
    return (await queue_notices(session, settings, [NoticeRequest(d.message_id, kind, detail)]))[0]


def _attempt_detail(d: ClaimedDelivery, result: Result, attempts: int, worker: str) -> dict:
    return {
        "recipient": d.recipient,
        "code": result.code,
        "reply": result.reply,
        "attempt": attempts,
        "outcome": result.outcome,
        "host": result.host,
        "tls": result.tls,
        "status": result.status,
        "worker": worker,
        **dict(result.extra),
    }


def delivered_rows(
    items: Sequence[tuple[ClaimedDelivery, Result]], worker: str
) -> list[repo.DeliveredRow]:
    """What recording each accepted delivery writes: the row and its two events."""
    rows = []
    for d, r in items:
        attempts = d.attempts + 1
        base = {"recipient": d.recipient, "code": r.code, "reply": r.reply, **dict(r.extra)}
        rows.append(
            repo.DeliveredRow(
                id=d.id,
                attempts=attempts,
                code=r.code or 250,
                reply=r.reply,
                destination=d.destination,
                events=(("attempt", _attempt_detail(d, r, attempts, worker)), ("delivered", base)),
            )
        )
    return rows


async def apply_delivered(
    session: Transaction,
    settings: Settings,
    items: Sequence[tuple[ClaimedDelivery, Result]],
    worker: str,
) -> set[int]:
    """`apply_outcome` for a batch of accepted deliveries: the rows and their events in one
    statement, then each delivery receipt (in a savepoint, so one bad receipt does not undo
    the batch). Returns the ids recorded; the rest had lost their claim. With receipts off,
    `delivered_rows` and `record_delivered` alone do the same in one statement."""
    done = await repo.record_delivered(session, worker, delivered_rows(items, worker))
    wanted = [
        (d, {"recipient": d.recipient, "code": r.code, "reply": r.reply, "agency": d.agency_code})
        for d, r in items
        if d.id in done and d.source != "internal"
    ]
    if wanted and settings.receipts.enabled:
        try:
            async with savepoint(session):  # a receipts bug must not undo the batch
                await queue_notices(
                    session,
                    settings,
                    [NoticeRequest(d.message_id, "delivered", detail) for d, detail in wanted],
                )
        except Exception as e:
            log.warning(
                "could not queue delivery receipts",
                exc_info=True,
                extra={"deliveries": [d.id for d, _ in wanted], "error": repr(e)},
            )
    return done
