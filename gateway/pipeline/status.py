"""edXML status packages coming back (issue 15 §2): found, matched, logged.

A status package (QCVN 102:2016: 01 arrived … 06 completed, 13/15/16 recall) answers a
document the gateway sent as an edXML package. The decision (README; for DESIGN §6): a mail
carrying a status package is *not forwarded*; it is stored like any mail (its own documents,
signatures, state `processed`, no receipt back — a status is itself an automatic answer) and
logged as a `status_received` event against the original message (and the delivery whose
package carried the DocumentId, preferring the one to the agency that answers), found by
`ResponseFor/DocumentId` among the packages the gateway built. The status mail gets a
`status_received` event too, naming the original or saying that none was found (an
unmatched status is kept, processed and visible in the log, but not forwarded either: only
packages this gateway built are searched, not DocumentIds of edXML mail it relayed as is).

`find_status` is pure (it runs in the analysis step, off the event loop); `record_statuses`
runs inside the pipeline's write transaction, so the events exist exactly when the result does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from mailparse.edxml import STATUS_CODES, EdxmlError, read_status
from store.db import Transaction
from store.edxml_packages import SentPackage, packages_by_document_id
from store.events import append_event

MEANINGS: dict[str, str] = {
    "01": "arrived",
    "02": "refused",
    "03": "accepted",
    "04": "assigned",
    "05": "in progress",
    "06": "completed",
    "13": "recall requested",
    "15": "recall agreed",
    "16": "recall refused",
}
NO_NOTICE = "none"  # an outcome whose sender is told nothing


@dataclass(frozen=True)
class StatusInfo:
    """What a status package says, as logged (plain values: it crosses process pools)."""

    document_id: str | None
    code: str
    meaning: str | None
    text: str | None
    description: str | None
    from_code: str | None
    from_name: str | None
    staff: str | None
    timestamp: str | None
    response_code: str | None
    flags: tuple[str, ...] = field(default_factory=tuple)

    def detail(self) -> dict[str, Any]:
        d = asdict(self)
        d["flags"] = list(self.flags)
        return {k: v for k, v in d.items() if v not in (None, [], "")}


class _HasEdxml(Protocol):
    detected_type: str
    data: bytes


def _looks_like_status(data: bytes) -> bool:
    head = data[:65536]
    return b"StatusCode" in head or b"Status>" in head


def find_status(attachments: Iterable[_HasEdxml]) -> StatusInfo | None:
    """The first edXML status package among a message's attachments, else None (a document
    package, or XML that is no edXML, is not a status)."""
    for att in attachments:
        if att.detected_type != "edxml" or not _looks_like_status(att.data):
            continue
        try:
            st = read_status(att.data)
        except EdxmlError:
            continue
        if not st.status_code:
            continue
        staff = ", ".join(x for x in (st.staff_info.staff, st.staff_info.department) if x)
        return StatusInfo(
            document_id=st.response_for.document_id,
            code=st.status_code,
            meaning=MEANINGS.get(st.status_code),
            text=STATUS_CODES.get(st.status_code),
            description=st.description,
            from_code=st.from_organ.code if st.from_organ else None,
            from_name=st.from_organ.name if st.from_organ else None,
            staff=staff or None,
            timestamp=st.timestamp.isoformat() if st.timestamp else None,
            response_code=st.response_for.code,
            flags=tuple(st.flags),
        )
    return None


def _pick(sent: Sequence[SentPackage], from_code: str | None) -> SentPackage | None:
    """The delivery the status answers: one to the answering agency if any, newest first."""
    if not sent:
        return None
    same = [p for p in sent if from_code and p.agency_code == from_code]
    return (same or list(sent))[-1]


class _Outcome(Protocol):
    status: StatusInfo | None


async def record_statuses(session: Transaction, written: Iterable[tuple[int, _Outcome]]) -> None:
    """Log each written status message against its original (see the module docstring)."""
    for message_id, outcome in written:
        status = getattr(outcome, "status", None)
        if status is None:
            continue
        detail = status.detail()
        found = (
            _pick(await packages_by_document_id(session, status.document_id), status.from_code)
            if status.document_id
            else None
        )
        if found is None:
            await append_event(
                session,
                "status_received",
                message_id=message_id,
                detail={**detail, "matched": False},
            )
            continue
        await append_event(
            session,
            "status_received",
            message_id=message_id,
            detail={**detail, "matched": True, "original_message_id": found.message_id},
        )
        await append_event(
            session,
            "status_received",
            message_id=found.message_id,
            delivery_id=found.delivery_id,
            detail={**detail, "status_message_id": message_id},
        )


def status_summary(detail: dict[str, Any]) -> str:
    """`03 accepted (000.00.00.H36)`: one status event as a short text."""
    code = detail.get("code", "?")
    who = f" ({detail['from_code']})" if detail.get("from_code") else ""
    return f"{code} {detail.get('meaning') or detail.get('text') or ''}".rstrip() + who
