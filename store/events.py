"""The tamper-evident delivery log.

Writers only INSERT events (cheap, no global lock, so SMTP acceptance is not serialised). A
sealer then walks unsealed events in id order under an advisory lock and gives each the next
`chain_seq` and `hash = sha256(prev_hash || canonical content)`. Sealing in seal order rather
than insert order sidesteps the fact that ids commit out of order. `verify_chain` recomputes
every hash: an edited row, a deleted row (a gap in chain_seq) or a re-linked row is named.

A chain alone cannot tell that its newest events were deleted: the shorter chain is still
consistent. So the sealer also writes HMAC-signed checkpoints of the chain head (position,
event id, hash) with a key kept outside the database; `verify_chain` checks every surviving
checkpoint against the events, and a cut tail or a rewritten head is named.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Event, EventCheckpoint

GENESIS = "0" * 64
_SEAL_LOCK = 0x6564_6F65


@dataclass(frozen=True)
class NewEvent:
    """One event to log (its time, chain position and hash are the database's and the
    sealer's business)."""

    kind: str
    message_id: int | None = None
    delivery_id: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def insert_sql(source: str) -> str:
    """The one INSERT that writes events, fed by `source`: a SELECT of
    (kind, message_id, delivery_id, detail jsonb), in the order the events happened.

    `append_events` runs it; the store's single-statement batch writes (intake, pipeline
    results, delivered batches, notices) embed it as a CTE so their events commit in the
    same statement as the rows they describe. Every event therefore enters the table the
    same way, and the sealer chains them all alike."""
    return f"INSERT INTO events (kind, message_id, delivery_id, detail) {source}"


def detail_json(detail: Any) -> str:
    """An event's detail as the JSON text the INSERT takes."""
    return json_text(detail or {})


def json_text(value: Any) -> str:
    """*value* as JSON text for a jsonb parameter. jsonb refuses NUL characters, which a
    mail or a reply can carry (an RFC 2231 filename with %00, an encoded-word subject, a
    PDF's text): U+FFFD stands in for them."""
    out = json.dumps(value, ensure_ascii=False, default=str)
    if "\\u0000" in out:
        out = json.dumps(_no_nul(value), ensure_ascii=False, default=str)
    return out


def _no_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_no_nul(k): _no_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nul(v) for v in value]
    return value


_APPEND = text(
    insert_sql(
        """SELECT e.kind, e.message_id, e.delivery_id, CAST(e.detail AS jsonb)
FROM unnest(CAST(:kind AS text[]), CAST(:message_id AS bigint[]),
            CAST(:delivery_id AS bigint[]), CAST(:detail AS text[]))
    WITH ORDINALITY AS e(kind, message_id, delivery_id, detail, ord)
ORDER BY e.ord"""
    )
)


async def append_events(session: AsyncSession, events: Sequence[NewEvent]) -> None:
    """Log `events` (in this order) inside the caller's transaction, in one statement: they
    commit with the state change they record, or not at all."""
    if not events:
        return
    await session.execute(
        _APPEND,
        {
            "kind": [e.kind for e in events],
            "message_id": [e.message_id for e in events],
            "delivery_id": [e.delivery_id for e in events],
            "detail": [detail_json(e.detail) for e in events],
        },
    )


async def append_event(
    session: AsyncSession,
    kind: str,
    *,
    message_id: int | None = None,
    delivery_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """`append_events` for one event."""
    await append_events(session, [NewEvent(kind, message_id, delivery_id, detail or {})])


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


SEAL_LIMIT = 5000


async def seal_events(session: AsyncSession, limit: int = SEAL_LIMIT) -> int:
    """Chain up to `limit` unsealed events; returns how many were sealed. Commit is the caller's."""
    await session.execute(_LOCK, {"k": _SEAL_LOCK})
    last = (await session.execute(_HEAD)).first()
    seq: int = (last[0] or 0) if last else 0
    prev: str = (last[1] or GENESIS) if last else GENESIS
    rows = (await session.execute(_UNSEALED, {"n": limit})).all()
    ids: list[int] = []
    seqs: list[int] = []
    prevs: list[str] = []
    hashes: list[str] = []
    for r in rows:
        seq += 1
        h = event_hash(prev, seq, r.id, r.at, r.message_id, r.delivery_id, r.kind, r.detail)
        ids.append(r.id)
        seqs.append(seq)
        prevs.append(prev)
        hashes.append(h)
        prev = h
    if ids:  # one statement with arrays: per-row parameter sets cost more than the hashing
        await session.execute(_SEAL, {"ids": ids, "seqs": seqs, "prevs": prevs, "hashes": hashes})
    return len(ids)


# Built once: SQLAlchemy spent more CPU constructing these selects and walking them for their
# cache keys on every round than PostgreSQL spent running them.
_LOCK = text("SELECT pg_advisory_xact_lock(:k)")
_HEAD = text(
    "SELECT chain_seq, hash FROM events WHERE chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1"
)
_UNSEALED = text(
    "SELECT id, at, message_id, delivery_id, kind, detail FROM events "
    "WHERE chain_seq IS NULL ORDER BY id LIMIT :n"
).columns(Event.id, Event.at, Event.message_id, Event.delivery_id, Event.kind, Event.detail)
_SEAL = text(
    """UPDATE events e SET chain_seq = v.seq, prev_hash = v.prev, hash = v.h
       FROM unnest(CAST(:ids AS bigint[]), CAST(:seqs AS bigint[]), CAST(:prevs AS text[]),
                   CAST(:hashes AS text[])) AS v(eid, seq, prev, h)
       WHERE e.id = v.eid"""
)


def checkpoint_mac(key: bytes, chain_seq: int, event_id: int, head_hash: str) -> str:
    body = json.dumps(["edocgw-chain-checkpoint", chain_seq, event_id, head_hash])
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """A signed chain head, as kept in event_checkpoints and in the witness file."""

    chain_seq: int
    event_id: int
    head_hash: str
    mac: str
    at: str  # ISO time it was taken

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_seq": self.chain_seq,
            "event_id": self.event_id,
            "head_hash": self.head_hash,
            "mac": self.mac,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Checkpoint:
        return cls(
            chain_seq=int(d["chain_seq"]),
            event_id=int(d["event_id"]),
            head_hash=str(d["head_hash"]),
            mac=str(d["mac"]),
            at=str(d.get("at") or ""),
        )


async def checkpoint(
    session: AsyncSession, key: bytes, min_interval: float = 10.0
) -> Checkpoint | None:
    """Sign the chain head into event_checkpoints, unless it is already checkpointed or the
    last checkpoint is younger than `min_interval` seconds (0: always). Returns the one
    written, if any. Runs under the sealing lock, so the head cannot move meanwhile."""
    await session.execute(_LOCK, {"k": _SEAL_LOCK})
    head = (
        await session.execute(
            select(Event.chain_seq, Event.id, Event.hash)
            .where(Event.chain_seq.is_not(None))
            .order_by(Event.chain_seq.desc())
            .limit(1)
        )
    ).first()
    if head is None or head.hash is None:
        return None
    last = (
        await session.execute(
            select(
                EventCheckpoint.chain_seq,
                func.extract("epoch", func.now() - EventCheckpoint.at).label("age"),
            )
            .order_by(EventCheckpoint.chain_seq.desc())
            .limit(1)
        )
    ).first()
    if last is not None and (last.chain_seq >= head.chain_seq or last.age < min_interval):
        return None
    row = EventCheckpoint(
        chain_seq=head.chain_seq,
        event_id=head.id,
        head_hash=head.hash,
        mac=checkpoint_mac(key, head.chain_seq, head.id, head.hash),
        at=dt.datetime.now(dt.UTC),
    )
    session.add(row)
    await session.flush()
    return Checkpoint(row.chain_seq, row.event_id, row.head_hash, row.mac, row.at.isoformat())


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    unsealed: int
    broken_event_id: int | None = None
    broken_seq: int | None = None
    reason: str = ""
    checkpoints: int = 0  # signed checkpoints checked against the events
    last_checkpoint_seq: int | None = None


async def verify_chain(
    session: AsyncSession,
    key: bytes | None = None,
    batch: int = 5000,
    witness: Checkpoint | None = None,
) -> ChainReport:
    """Walk the sealed events in chain order and recompute every link; then check the signed
    checkpoints (with `key`; None: there is no key, and any checkpoint makes the log
    unverifiable) and `witness`, the newest checkpoint as kept outside the database (so
    deleting checkpoint rows along with the events they cover is noticed too)."""
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
    return await _verify_checkpoints(
        session, key, checked, unsealed, after if checked else None, witness
    )


async def _verify_checkpoints(
    session: AsyncSession,
    key: bytes | None,
    checked: int,
    unsealed: int,
    head_seq: int | None,
    witness: Checkpoint | None = None,
) -> ChainReport:
    """Every checkpoint must be signed with `key`, and every one at or after the first
    surviving event (retention trims the oldest) must name an event that is still there
    with the same hash. The newest one missing means the tail was cut."""
    first_seq = await session.scalar(select(func.min(Event.chain_seq)))
    rows = (
        await session.execute(
            select(EventCheckpoint, Event.id, Event.hash)
            .outerjoin(Event, Event.chain_seq == EventCheckpoint.chain_seq)
            .order_by(EventCheckpoint.chain_seq.desc(), EventCheckpoint.id.desc())
        )
    ).all()
    if witness is not None:  # checked like a row (id None: it is the witness file's)
        at = dt.datetime.fromisoformat(witness.at) if witness.at else dt.datetime.now(dt.UTC)
        found = (
            await session.execute(
                select(Event.id, Event.hash).where(Event.chain_seq == witness.chain_seq)
            )
        ).first()
        cp = EventCheckpoint(
            chain_seq=witness.chain_seq,
            event_id=witness.event_id,
            head_hash=witness.head_hash,
            mac=witness.mac,
            at=at,
        )
        pseudo = (cp, found.id if found else None, found.hash if found else None)
        rows = sorted([*rows, pseudo], key=lambda r: -r[0].chain_seq)  # type: ignore[list-item]

    def fail(reason: str, seq: int | None, event_id: int | None, n: int) -> ChainReport:
        return ChainReport(
            ok=False,
            checked=checked,
            unsealed=unsealed,
            broken_event_id=event_id,
            broken_seq=seq,
            reason=reason,
            checkpoints=n,
            last_checkpoint_seq=rows[0][0].chain_seq if rows else None,
        )

    if rows and key is None:
        return fail(
            f"{len(rows)} signed checkpoint(s) but no chain key to check them", None, None, 0
        )
    n = 0
    for cp, event_id, event_hash_now in rows:
        when = cp.at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        assert key is not None
        good = checkpoint_mac(key, cp.chain_seq, cp.event_id, cp.head_hash)
        if not hmac.compare_digest(good, cp.mac):
            return fail(
                f"{_which(cp)} of {when} is not signed with this gateway's chain key",
                cp.chain_seq,
                cp.event_id,
                n,
            )
        if first_seq is not None and cp.chain_seq < first_seq:
            n += 1  # trimmed by retention: nothing left to compare
            continue
        if event_id is None:
            end = (
                "the log is empty"
                if head_seq is None
                else (f"the log now ends at chain position {head_seq}")
            )
            return fail(
                f"newest events cut: the {_which(cp)} of {when} signed chain position "
                f"{cp.chain_seq} (event {cp.event_id}), but {end}: events at positions "
                f"{(head_seq or 0) + 1}..{cp.chain_seq} or later are missing",
                (head_seq or 0) + 1,
                cp.event_id,
                n,
            )
        if event_id != cp.event_id or event_hash_now != cp.head_hash:
            return fail(
                f"chain position {cp.chain_seq} does not match the {_which(cp)} of {when} "
                f"(signed event {cp.event_id}, hash {cp.head_hash[:12]}…): the chain was "
                "rewritten from there",
                cp.chain_seq,
                event_id,
                n,
            )
        n += 1
    return ChainReport(
        ok=True,
        checked=checked,
        unsealed=unsealed,
        checkpoints=n,
        last_checkpoint_seq=rows[0][0].chain_seq if rows else None,
    )


def _which(cp: EventCheckpoint) -> str:
    return f"checkpoint {cp.id}" if cp.id is not None else "checkpoint in the witness file"


def _broken(checked: int, unsealed: int, ev: Event, reason: str) -> ChainReport:
    return ChainReport(
        ok=False,
        checked=checked,
        unsealed=unsealed,
        broken_event_id=ev.id,
        broken_seq=ev.chain_seq,
        reason=reason,
    )
