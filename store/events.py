"""The tamper-evident delivery log.

Writers only INSERT events (cheap, no global lock, so SMTP acceptance is not serialised). A
sealer then walks unsealed events in id order under an advisory lock and gives each the next
`chain_seq` and `hash = sha256(prev_hash || canonical content)`. Sealing in seal order rather
than insert order sidesteps the fact that ids commit out of order. `verify_chain` recomputes
every hash: an edited row, a deleted row (a gap in chain_seq) or a re-linked row is named.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Event

GENESIS = "0" * 64
_SEAL_LOCK = 0x6564_6F65


async def append_event(
    session: AsyncSession,
    kind: str,
    *,
    message_id: int | None = None,
    delivery_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an event inside the caller's transaction (it commits with the state change)."""
    session.add(
        Event(kind=kind, message_id=message_id, delivery_id=delivery_id, detail=detail or {})
    )


def event_hash(
    prev_hash: str,
    seq: int,
    event_id: int,
    at: dt.datetime,
    message_id: int | None,
    delivery_id: int | None,
    kind: str,
    detail: Any,
) -> str:
    content = json.dumps(
        [
            seq,
            event_id,
            at.astimezone(dt.UTC).isoformat(),
            message_id,
            delivery_id,
            kind,
            detail,
        ],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256((prev_hash + content).encode()).hexdigest()


async def seal_events(session: AsyncSession, limit: int = 5000) -> int:
    """Chain up to `limit` unsealed events; returns how many were sealed. Commit is the caller's."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SEAL_LOCK})
    last = (
        await session.execute(
            select(Event.chain_seq, Event.hash)
            .where(Event.chain_seq.is_not(None))
            .order_by(Event.chain_seq.desc())
            .limit(1)
        )
    ).first()
    seq: int = (last[0] or 0) if last else 0
    prev: str = (last[1] or GENESIS) if last else GENESIS
    rows = (
        await session.execute(
            select(
                Event.id, Event.at, Event.message_id, Event.delivery_id, Event.kind, Event.detail
            )
            .where(Event.chain_seq.is_(None))
            .order_by(Event.id)
            .limit(limit)
        )
    ).all()
    params = []
    for r in rows:
        seq += 1
        h = event_hash(prev, seq, r.id, r.at, r.message_id, r.delivery_id, r.kind, r.detail)
        params.append({"eid": r.id, "seq": seq, "prev": prev, "h": h})
        prev = h
    if params:
        await session.execute(
            text(
                "UPDATE events SET chain_seq = :seq, prev_hash = :prev, hash = :h WHERE id = :eid"
            ),
            params,
        )
    return len(params)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    unsealed: int
    broken_event_id: int | None = None
    broken_seq: int | None = None
    reason: str = ""


async def verify_chain(session: AsyncSession, batch: int = 5000) -> ChainReport:
    """Walk the sealed events in chain order and recompute every link."""
    unsealed = (
        await session.execute(select(func.count()).where(Event.chain_seq.is_(None)))
    ).scalar_one()
    expected_seq: int | None = None
    prev: str | None = None
    checked = 0
    after = -1
    while True:
        rows = (
            (
                await session.execute(
                    select(Event)
                    .where(Event.chain_seq.is_not(None), Event.chain_seq > after)
                    .order_by(Event.chain_seq)
                    .limit(batch)
                )
            )
            .scalars()
            .all()
        )
        if not rows:
            break
        for ev in rows:
            assert ev.chain_seq is not None
            if expected_seq is None:
                # The first surviving event anchors the walk (retention may trim the head).
                expected_seq, prev = ev.chain_seq, ev.prev_hash
                if ev.chain_seq == 1 and ev.prev_hash != GENESIS:
                    return _broken(checked, unsealed, ev, "first event does not start the chain")
            if ev.chain_seq != expected_seq:
                return _broken(
                    checked, unsealed, ev, f"event(s) missing before chain position {ev.chain_seq}"
                )
            if ev.prev_hash != prev:
                return _broken(checked, unsealed, ev, "link to the previous event does not match")
            h = event_hash(
                prev or GENESIS,
                ev.chain_seq,
                ev.id,
                ev.at,
                ev.message_id,
                ev.delivery_id,
                ev.kind,
                ev.detail,
            )
            if h != ev.hash:
                return _broken(checked, unsealed, ev, "content changed after it was logged")
            prev = ev.hash
            expected_seq += 1
            checked += 1
            after = ev.chain_seq
        session.expunge_all()
    return ChainReport(ok=True, checked=checked, unsealed=unsealed)


def _broken(checked: int, unsealed: int, ev: Event, reason: str) -> ChainReport:
    return ChainReport(
        ok=False,
        checked=checked,
        unsealed=unsealed,
        broken_event_id=ev.id,
        broken_seq=ev.chain_seq,
        reason=reason,
    )
