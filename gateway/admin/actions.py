"""What an admin may do to mail in flight: retry, release, cancel.

Each action changes state and writes its event (`retried`, `released`, `cancelled`, with the
admin's name in `detail.by`) in the caller's one transaction, locking the rows it changes so
a delivery worker cannot claim them halfway; it then wakes the delivery workers with a NOTIFY
that is sent only if the transaction commits. The CLI, the web pages and the API all call
these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from config import Settings
from store import interventions as rows
from store.agencies import agencies_by_code, list_agencies
from store.db import CHANNEL_DELIVERIES, Transaction
from store.deliveries import NewDelivery, insert_deliveries
from store.events import NewEvent, append_event, append_events
from store.interventions import DeliveryRef, MessageRef
from store.messages import notify

if TYPE_CHECKING:
    from gateway.pipeline.routing import RouteFacts

RETRYABLE = ("deferred", "queued")
CANCELLABLE = ("queued", "deferred", "held")
WAITING = ("held", "quarantined")


class ActionError(Exception):
    """The action does not apply (one line for the admin); `status` suits an HTTP answer."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ReleaseResult:
    message_id: int
    queued: list[int] = field(default_factory=list)  # delivery ids now queued
    how: str = ""  # "to", "held deliveries" or "routing"


async def _delivery_for_update(session: Transaction, delivery_id: int) -> DeliveryRef:
    d = await rows.lock_delivery(session, delivery_id)
    if d is None:
        raise ActionError(f"no delivery {delivery_id}", 404)
    return d


async def _message_for_update(session: Transaction, message_id: int) -> MessageRef:
    m = await rows.lock_message(session, message_id)
    if m is None:
        raise ActionError(f"no message {message_id}", 404)
    return m


async def retry_delivery(session: Transaction, delivery_id: int, by: str) -> int:
    """Send a deferred (or waiting queued) delivery now, whatever its backoff said."""
    d = await _delivery_for_update(session, delivery_id)
    if d.state not in RETRYABLE:
        raise ActionError(f"delivery {delivery_id} is {d.state}: only deferred or queued can retry")
    await rows.requeue(session, [d.id])
    await append_event(
        session,
        "retried",
        message_id=d.message_id,
        delivery_id=d.id,
        detail={"by": by, "from_state": d.state, "attempts": d.attempts},
    )
    await notify(session, CHANNEL_DELIVERIES, str(d.id))
    return d.id


async def retry_all_deferred(session: Transaction, by: str) -> list[int]:
    deferred = await rows.lock_deferred(session)
    await rows.requeue(session, [d.id for d in deferred])
    await append_events(
        session,
        [
            NewEvent(
                "retried",
                message_id=d.message_id,
                delivery_id=d.id,
                detail={"by": by, "from_state": "deferred", "attempts": d.attempts},
            )
            for d in deferred
        ],
    )
    if deferred:
        await notify(session, CHANNEL_DELIVERIES, "")
    return [d.id for d in deferred]


async def release_message(
    session: Transaction,
    settings: Settings,
    message_id: int,
    by: str,
    to: Sequence[str] = (),
    force: bool = False,
) -> ReleaseResult:
    """Forward a held (or, with `force`, quarantined) message.

    Destinations: the agencies named in `to` if any; else its held deliveries; else routing
    runs again on the stored facts against today's agency registry (an admin who has just
    added the missing agency can simply release). Nothing found → ActionError, nothing changes.
    """
    m = await _message_for_update(session, message_id)
    if m.state not in WAITING:
        raise ActionError(f"message {message_id} is {m.state}, not held or quarantined")
    if m.state == "quarantined" and not force:
        raise ActionError(
            f"message {message_id} is quarantined (secrecy mark or policy): releasing it "
            "needs an explicit confirmation (--force)"
        )
    from gateway.pipeline.routing import priority_of

    priority = priority_of(m.urgency)
    result = ReleaseResult(message_id=message_id)
    targets: list[tuple[str, str | None]]
    if to:
        targets = await _agencies_by_code(session, to)
        result.how = "to"
    else:
        held = await rows.lock_message_deliveries(session, message_id, ["held"])
        if held:
            await rows.requeue(session, held)
            result.queued, result.how = held, "held deliveries"
            targets = []
        else:
            targets = await _route_again(session, settings, m)
            result.how = "routing"
    for recipient, code in targets:
        got = await _upsert_delivery(session, message_id, recipient, code, priority)
        if got is not None:
            result.queued.append(got)
    if not result.queued:
        raise ActionError(
            f"message {message_id} has no destination: name one with --to CODE "
            "(or add the missing agency and release again)",
            422,
        )
    from_state = m.state
    await rows.mark_processed(session, message_id, None)
    await append_event(
        session,
        "released",
        message_id=message_id,
        detail={
            "by": by,
            "from_state": from_state,
            "how": result.how,
            "deliveries": result.queued,
            **({"to": list(to)} if to else {}),
        },
    )
    await notify(session, CHANNEL_DELIVERIES, str(message_id))
    return result


async def _agencies_by_code(
    session: Transaction, codes: Sequence[str]
) -> list[tuple[str, str | None]]:
    wanted = list(dict.fromkeys(c.strip() for c in codes if c.strip()))
    found = await agencies_by_code(session, wanted)
    missing = [c for c in wanted if c not in found or not found[c].active]
    if missing:
        raise ActionError(f"no active agency with code {', '.join(missing)}", 422)
    return [(found[c].address, c) for c in wanted]


async def _route_again(
    session: Transaction, settings: Settings, m: MessageRef
) -> list[tuple[str, str | None]]:
    """Route again from the routing input the pipeline stored with the message."""
    from gateway.pipeline.routing import AgencyRef, RouteFacts, route

    agencies = [
        AgencyRef(a.code, a.name, a.address, tuple(a.aliases), tuple(a.domains), a.active)
        for a in await list_agencies(session, active_only=True)
    ]
    if m.route_input is not None:
        facts = RouteFacts.from_json(m.route_input)
    else:  # processed before the routing input was stored (migration 0002)
        facts = await _facts_from_rows(session, m)
    gw = settings.gateway
    res = route(
        agencies,
        facts.input(m.rcpt_to or [], m.source, gw.processing_addresses, gw.local_domains),
    )
    return [(d.recipient, d.agency_code) for d in res.destinations]


async def _facts_from_rows(session: Transaction, m: MessageRef) -> RouteFacts:
    from gateway.pipeline.routing import RouteFacts

    docs = await rows.routing_documents(session, m.id)
    edxml_codes = [
        c
        for d in docs
        if d.detected_type == "edxml" or d.sources.get("agency_codes") == "edxml"
        for c in d.agency_codes
    ]
    lines = [line for d in docs for line in d.recipients]
    return RouteFacts(m.subject or "", tuple(edxml_codes), tuple(lines))


async def _upsert_delivery(
    session: Transaction, message_id: int, recipient: str, code: str | None, priority: int
) -> int | None:
    """One delivery per (message, recipient): an existing unfinished or failed one is queued
    again; one already delivered is left alone (None)."""
    (new_id,) = await insert_deliveries(
        session, [NewDelivery(message_id, recipient, code, priority=priority)]
    )
    if new_id is not None:
        return new_id
    d = await rows.lock_delivery_to(session, message_id, recipient)
    assert d is not None
    if d.state == "delivered":
        return None
    if d.state in ("held", "cancelled", "deferred", "bounced"):
        await rows.requeue(session, [d.id])
    return d.id


async def cancel_message(
    session: Transaction, message_id: int, by: str, reason: str = ""
) -> list[int]:
    """Stop a message: its unsent deliveries become `cancelled`, a waiting message `processed`.

    A delivery being sent right now (`sending`) is left alone: its worker finishes it.
    """
    m = await _message_for_update(session, message_id)
    ids = await rows.lock_message_deliveries(session, message_id, CANCELLABLE)
    if not ids and m.state not in WAITING:
        raise ActionError(f"message {message_id} has nothing left to cancel (state {m.state})")
    await rows.cancel_deliveries(session, ids)
    detail = {"by": by, "from_state": m.state, **({"reason": reason} if reason else {})}
    await append_events(
        session,
        [NewEvent("cancelled", message_id=message_id, delivery_id=i, detail=detail) for i in ids],
    )
    if m.state in WAITING:
        await rows.mark_processed(
            session, message_id, f"cancelled by {by}" + (f": {reason}" if reason else "")
        )
    await append_event(
        session, "cancelled", message_id=message_id, detail={**detail, "deliveries": ids}
    )
    return ids
