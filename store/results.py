"""Writing what the pipeline found out about one message, inside the caller's transaction.

Documents, signatures, deliveries, the message's new state and every event go in together,
so a crash leaves either all of it or none (the message is then still `received` and is
processed again). Writing twice is harmless: earlier documents of the message are replaced,
and deliveries are keyed by (message, recipient) with ON CONFLICT DO NOTHING.

The pipeline works in batches: `claim_received` claims up to N messages, counts an attempt
for each and reads their envelopes (and small raw messages) in one statement; `write_batch`
stores the results of many messages in one statement (multi-row inserts from JSON rows), fenced
by the claim: only messages still `received` and claimed by the writer are written.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ARRAY,
    Integer,
    Text,
    and_,
    any_,
    bindparam,
    case,
    func,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from store import deliveries, direct, events, signatures
from store.claims import claim_statement, execute_claim
from store.db import CHANNEL_DELIVERIES
from store.direct import Executor, const
from store.events import append_event
from store.models import Message
from store.signatures import SignatureRow


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
    e_document: dict[str, Any] | None = None  # Decree 30 check; None: not a document


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
    # What the pipeline decided that later steps reuse: the routing input (an admin's
    # release routes again from it) and the edXML document's reference (for the receipts).
    route_input: dict[str, Any] | None = None
    edxml_ref: dict[str, Any] | None = None


@dataclass
class ClaimedMessage:
    """A message a worker has just claimed, with its attempt already counted."""

    id: int
    attempts: int
    source: str
    mail_from: str
    rcpt_to: list[str]
    size: int
    raw: bytes | None  # None when larger than the claim's inline limit (read it alone), or held
    auth_results: dict[str, Any] | None = None  # inbound SPF/DKIM/DMARC (gateway.senderauth)
    header_from: str | None = None
    sha256: str = ""


async def claim_received(
    session: Executor,
    *,
    worker: str,
    lease: dt.timedelta,
    limit: int,
    inline_max: int,
    max_bytes: int | None = None,
    weight_max: int | None = None,
    held: Sequence[str] = (),
) -> list[ClaimedMessage]:
    """Claim up to *limit* `received` messages (oldest first), count one more attempt for
    each and return what processing needs, in one statement. The caller commits before
    working, so an attempt that crashes the process is counted too. With *max_bytes*, the
    messages before the last one taken total less than that (the first is always taken),
    each counted at its size or *weight_max*, whichever is less. The raw bytes come along up
    to *inline_max*, but not for a message whose SHA-256 is in *held* (the caller has them)."""
    rows = await execute_claim(
        session,
        _claim_received_statement(max_bytes is not None, weight_max),
        worker=worker,
        lease=lease,
        limit=limit,
        budget=max_bytes,
        c_inline_max=inline_max,
        c_held=list(held),
    )
    return sorted(
        (
            ClaimedMessage(
                r[0], r[1], r[2], r[3] or "", list(r[4] or []), r[5], r[6], r[7], r[8], r[9]
            )
            for r in rows
        ),
        key=lambda m: m.id,
    )


@functools.cache
def _claim_received_statement(budget: bool, weight_max: int | None) -> Any:
    """`claim_received`'s statement, built once per shape (see `claim_statement`)."""
    weight = Message.size if weight_max is None else func.least(Message.size, weight_max)
    inline = and_(
        Message.size <= bindparam("c_inline_max", type_=Integer),
        ~(Message.sha256 == any_(bindparam("c_held", type_=ARRAY(Text)))),
    )
    return claim_statement(
        Message,
        weight=weight if budget else None,
        where=[Message.state == const("received"), Message.source != const("internal")],
        order_by=[Message.received_at],
        values={"attempts": Message.attempts + 1},
        returning=[
            Message.attempts,
            Message.source,
            Message.mail_from,
            Message.rcpt_to,
            Message.size,
            case((inline, Message.raw), else_=None),
            Message.auth_results,
            Message.header_from,
            Message.sha256,
        ],
    )


async def read_raw(session: AsyncSession, message_id: int) -> bytes:
    """The raw bytes of one message (those too big to come with the claim)."""
    return (await session.execute(select(Message.raw).where(Message.id == message_id))).scalar_one()


async def write_batch(
    executor: Executor, worker: str, results: Sequence[MessageResult]
) -> dict[int, list[int]]:
    """Store every result whose message is still `received` and claimed by *worker*, in one
    statement (so one round trip, and all or nothing): in the caller's transaction, or alone
    on the process's own pool (store/direct.py). Returns, for each message written, the ids
    of the deliveries created now; a message missing from it lost its claim and got nothing
    written."""
    if not results:
        return {}
    rows = await direct.rows(executor, _WRITE_BATCH, batch_params(worker, results))
    out: dict[int, list[int]] = {}
    for what, _id, message_id in rows:
        if what == "message":
            out.setdefault(message_id, [])
    for what, row_id, message_id in rows:
        if what == "delivery":
            out.setdefault(message_id, []).append(row_id)
    return out


def batch_params(worker: str, results: Sequence[MessageResult]) -> dict[str, Any]:
    """What `_WRITE_BATCH` takes: each row set (`_COLUMNS`) as one JSON array of rows."""
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in _COLUMNS}
    for r in results:
        mid = r.message_id
        rows["m"].append(
            {
                "id": mid,
                "state": r.state,
                "verdict": r.verdict,
                "urgency": r.urgency,
                "error": r.error,
                "route_input": r.route_input,
                "edxml_ref": r.edxml_ref,
            }
        )
        for doc in r.documents:
            facts = doc.facts
            rows["d"].append(
                {
                    "message": mid,
                    "part": doc.part_path,
                    "filename": doc.filename,
                    "declared": doc.declared_type,
                    "detected": doc.detected_type,
                    "size": doc.size,
                    "sha256": doc.sha256,
                    "verdict": doc.verdict,
                    **{col: facts.get(col) for col in _TEXT_FACTS},
                    "year": facts.get("year"),
                    "doc_date": _when(facts.get("doc_date")),
                    "meeting_start": _when(facts.get("meeting_start")),
                    "recipients": list(facts.get("recipients") or []),
                    "agency_codes": list(facts.get("agency_codes") or []),
                    "sources": doc.sources,
                    "confidence": doc.confidence,
                    "flags": list(doc.flags),
                    "defects": list(doc.defects),
                    "e_document": doc.e_document,
                }
            )
            # the document's position in its row set is its ordinality in the statement
            _signature_rows(rows["s"], mid, len(rows["d"]), doc.signatures)
        _signature_rows(rows["s"], mid, None, r.message_signatures)
        for d in r.deliveries:
            rows["l"].append(
                {
                    "message": mid,
                    "recipient": d.recipient,
                    "agency": d.agency_code,
                    "priority": d.priority,
                    "state": d.state,
                }
            )
        for kind, detail in r.events:
            rows["e"].append({"message": mid, "kind": kind, "detail": detail or {}})
        if any(d.state == "queued" for d in r.deliveries):
            rows["n"].append({"message": mid})
    return {"worker": worker, **{k: events.json_text(v) for k, v in rows.items()}}


def _signature_rows(
    out: list[dict[str, Any]], message_id: int, doc_ord: int | None, rows: list[SignatureRow]
) -> None:
    for s in rows:
        row = {"message": message_id, "doc_ord": doc_ord}
        for col in _SIGNATURE_COLUMNS:
            row[col] = getattr(s, col)
        row["signing_time"] = _when(s.signing_time)
        out.append(row)


def _when(value: Any) -> Any:
    """A date or time as its ISO text for the JSON rows; a time without a zone is taken as
    this machine's local time, as the driver took it when the rows were arrays."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


_TEXT_FACTS = (
    "kind",
    "kind_abbr",
    "number",
    "notation",
    "issuer",
    "place",
    "subject",
    "signer",
    "urgency",
    "secrecy",
    "parent_issuer",
    "signer_position",
    "signer_competence",
    "meeting_place",
    "unreadable",  # not a fact: why the text could not be read, stored beside them
)
_SIGNATURE_COLUMNS = signatures.COLUMNS
_SIGNATURE_TYPES = {"signing_time": "timestamptz", "covers_whole_file": "boolean"}

# Each row set of a batch -> its columns and their SQL types: m messages, d documents,
# s signatures, l deliveries, e events, n messages whose new deliveries are announced.
# A row set travels as one JSON parameter, read by jsonb_to_recordset. As some sixty arrays
# (one per column), asyncpg checked every element in Python, about 0.45 us each and some
# 130 per signed letter: a write of four letters cost the worker 0.65-0.68 ms of CPU, and
# 0.41-0.46 ms as JSON rows (PostgreSQL's share rose from 0.26-0.28 to 0.33 ms).
_COLUMNS: dict[str, dict[str, str]] = {
    "m": {
        "id": "bigint",
        "state": "text",
        "verdict": "text",
        "urgency": "text",
        "error": "text",
        "route_input": "jsonb",
        "edxml_ref": "jsonb",
    },
    "d": {
        "message": "bigint",
        "part": "text",
        "filename": "text",
        "declared": "text",
        "detected": "text",
        "size": "bigint",
        "sha256": "text",
        "verdict": "text",
        **{c: "text" for c in _TEXT_FACTS},
        "year": "integer",
        "doc_date": "date",
        "meeting_start": "timestamptz",
        "recipients": "jsonb",
        "agency_codes": "jsonb",
        "sources": "jsonb",
        "confidence": "jsonb",
        "flags": "jsonb",
        "defects": "jsonb",
        "e_document": "jsonb",
    },
    "s": {
        "message": "bigint",
        "doc_ord": "bigint",
        **{c: _SIGNATURE_TYPES.get(c, "text") for c in _SIGNATURE_COLUMNS},
    },
    "l": {
        "message": "bigint",
        "recipient": "text",
        "agency": "text",
        "priority": "smallint",
        "state": "text",
    },
    "e": {"message": "bigint", "kind": "text", "detail": "jsonb"},
    "n": {"message": "bigint"},
}


def _rows(prefix: str) -> str:
    """The rows of one row set, with their ordinality, as the table `prefix`."""
    cols = _COLUMNS[prefix]
    types = ", ".join(f"{c} {t}" for c, t in cols.items())
    return (
        f"ROWS FROM (jsonb_to_recordset(CAST(CAST(:{prefix} AS text) AS jsonb)) AS ({types})) "
        f"WITH ORDINALITY AS {prefix}({', '.join(cols)}, ord)"
    )


def _text_array(col: str) -> str:
    return f"ARRAY(SELECT jsonb_array_elements_text(d.{col}))"


_FACT_SQL = ", ".join(f"d.{c}" for c in _TEXT_FACTS)
_SIG_SQL = ", ".join(f"s.{c}" for c in _SIGNATURE_COLUMNS)

# One statement, so one implicit transaction (or the caller's): the messages' new states
# (fenced by the claim), their documents, signatures, deliveries, events and the NOTIFY for
# new deliveries. Document ids are drawn first so signatures can name their document
# without relying on the order of RETURNING; sibling CTEs see the same snapshot, so the
# DELETEs remove only results an earlier attempt left, never the rows inserted here.
_NEW_DELIVERIES = deliveries.insert_sql(
    f"""
    SELECT {deliveries.NEXT_DELIVERY_ID}, l.message, l.recipient, l.agency, l.priority, l.state
    FROM {_rows("l")}
    WHERE l.message IN (SELECT id FROM owned)
    ORDER BY l.ord"""
)
_NEW_EVENTS = events.insert_sql(
    f"""
    SELECT e.kind, e.message, CAST(NULL AS bigint), e.detail
    FROM {_rows("e")}
    WHERE e.message IN (SELECT id FROM owned)
    ORDER BY e.ord"""
)
_WRITE_BATCH = text(
    f"""
WITH owned AS (
    UPDATE messages AS msg
    SET state = m.state, verdict = m.verdict, urgency = m.urgency, error = m.error,
        route_input = m.route_input, edxml_ref = m.edxml_ref,
        claimed_by = NULL, claimed_until = NULL, updated_at = now()
    FROM {_rows("m")}
    WHERE msg.id = m.id AND msg.state = 'received' AND msg.claimed_by = :worker
    RETURNING msg.id
), old_sigs AS (
    DELETE FROM signatures WHERE message_id IN (SELECT id FROM owned)
), old_docs AS (
    DELETE FROM documents WHERE message_id IN (SELECT id FROM owned)
), doc AS (
    SELECT nextval(pg_get_serial_sequence('documents', 'id')) AS id, d.*
    FROM {_rows("d")}
    WHERE d.message IN (SELECT id FROM owned)
), new_docs AS (
    INSERT INTO documents (
        id, message_id, part_path, filename, declared_type, detected_type, size, sha256,
        verdict, {", ".join(_TEXT_FACTS)}, year, doc_date, meeting_start, recipients,
        agency_codes, sources, confidence, flags, defects, e_document
    )
    SELECT d.id, d.message, d.part, d.filename, d.declared, d.detected, d.size, d.sha256,
           d.verdict, {_FACT_SQL}, d.year, d.doc_date, d.meeting_start,
           {_text_array("recipients")}, {_text_array("agency_codes")}, d.sources,
           d.confidence, {_text_array("flags")}, {_text_array("defects")}, d.e_document
    FROM doc AS d
), new_sigs AS (
    INSERT INTO signatures (message_id, document_id, {", ".join(_SIGNATURE_COLUMNS)})
    SELECT s.message, doc.id, {_SIG_SQL}
    FROM {_rows("s")}
    LEFT JOIN doc ON doc.ord = s.doc_ord
    WHERE s.message IN (SELECT id FROM owned)
), new_deliveries AS (
    {_NEW_DELIVERIES}
), new_events AS (
    {_NEW_EVENTS}
)
SELECT 'message' AS what, id, id AS message_id FROM owned
UNION ALL
SELECT 'delivery', id, message_id FROM new_deliveries
UNION ALL
SELECT 'notify', NULL, sent.message
FROM (
    SELECT n.message, pg_notify('{CHANNEL_DELIVERIES}', CAST(n.message AS text))
    FROM {_rows("n")}
    WHERE n.message IN (SELECT id FROM owned)
) AS sent
"""
)


def error_line(e: BaseException) -> str:
    """An exception as stored in a message's error: one line, never the SQL of a failed
    write (a database error shows the driver's message only)."""
    if isinstance(e, DBAPIError):
        return f"{type(e).__name__}: {e.orig}"
    return f"{type(e).__name__}: {e}"


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
