"""The JSON shapes admins' tools rely on (DESIGN §7), as pydantic models.

`edocgw log --json`, `show --json`, `queue --json` and the `/api/` answers are all dumped
through these models, and the OpenAPI document is generated from them, so the CLI, the API
and its documentation cannot drift apart. They read the dataclasses of `store.queries`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class DocumentOut(Out):
    filename: str | None
    kind: str | None
    number: str | None
    notation: str | None
    verdict: str | None  # `unreadable` when its text could not be read (reason: message detail)


class DeliveryOut(Out):
    id: int
    recipient: str
    agency: str | None
    state: str
    attempts: int
    last_reply: str | None
    delivered_at: dt.datetime | None


class DkimResultOut(Out):
    result: str
    domain: str
    selector: str
    reason: str = ""


class SenderAuthOut(Out):
    """RFC 8601 result words: pass, fail, softfail, neutral, none, temperror, permerror."""

    spf: str = Field(description="SPF for MAIL FROM (HELO for the null sender).")
    spf_domain: str
    helo: str = Field(description="SPF for the HELO name.")
    helo_domain: str
    dkim: list[DkimResultOut] = Field(description="One result per DKIM-Signature, top first.")
    dmarc: str
    from_domain: str
    dmarc_policy: str = Field(description="The p= (or sp=) that applied; empty without one.")
    from_aligned: bool = False
    reason: str = ""
    action: str = Field(description="forward | hold (what the result meant at intake).")


class MessageOut(Out):
    id: int
    received_at: dt.datetime
    source: str
    message_id: str | None = Field(description="The Message-ID header.")
    mail_from: str
    rcpt_to: list[str]
    subject: str | None
    state: str
    verdict: str | None
    documents: list[DocumentOut]
    deliveries: list[DeliveryOut]
    sender_auth: SenderAuthOut | None = Field(
        None, description="Inbound SPF/DKIM/DMARC results; null when the sender was trusted."
    )
    flags: list[str] = Field([], description="Findings such as sender_not_official.")
    urgency: str | None = Field(None, description="Khẩn, Thượng khẩn, Hỏa tốc … or null.")
    reason: str | None = Field(
        None, description="Why the message is held, quarantined or failed; else null."
    )


class MessageList(Out):
    messages: list[MessageOut]


class SignatureOut(Out):
    id: int
    format: str
    verdict: str
    reason: str | None
    signer_cn: str | None
    signer_o: str | None
    signer_uid: str | None
    serial: str | None
    issuer_cn: str | None
    cert_sha256: str | None
    signing_time: dt.datetime | None
    signing_time_source: str | None
    covers_whole_file: bool | None
    detail: str | None


class FactsOut(Out):
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


class EDocumentOut(Out):
    """Signed by the competent person, then by the issuing organisation (Decree 30/2020)."""

    conformant: bool
    personal_signer: str | None
    organisation_signer: str | None
    problems: list[str] = Field(
        description="unsigned, signature_not_valid, no_personal_signature, "
        "no_organisation_signature, signer_not_in_text, organisation_not_issuer"
    )


class DocumentDetailOut(Out):
    id: int
    part_path: str
    filename: str | None
    declared_type: str | None
    detected_type: str
    size: int
    sha256: str
    facts: FactsOut
    confidence: dict[str, Any]
    flags: list[str]
    defects: list[str]
    verdict: str | None
    signatures: list[SignatureOut]
    e_document: EDocumentOut | None = Field(
        None, description="Decree 30 e-document check; null for a file that is no document."
    )
    unreadable: str | None = None  # why the text could not be read


class EventOut(Out):
    id: int
    at: dt.datetime
    kind: str
    delivery_id: int | None
    detail: dict[str, Any]


class DeliveryDetailOut(DeliveryOut):
    last_reply_code: int | None
    priority: int
    next_attempt_at: dt.datetime | None
    created_at: dt.datetime
    claimed_by: str | None
    events: list[EventOut] = Field(description="Every attempt and its reply, oldest first.")


class MessageDetailOut(Out):
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
    signatures: list[SignatureOut] = Field(description="Signatures on the message (S/MIME).")
    documents: list[DocumentDetailOut]
    deliveries: list[DeliveryDetailOut]
    receipts: list[EventOut]
    events: list[EventOut]
    sender_auth: SenderAuthOut | None = Field(
        None, description="Inbound SPF/DKIM/DMARC results; null when the sender was trusted."
    )
    flags: list[str] = Field([], description="Findings such as sender_not_official.")


class AgencyShapeOut(Out):
    agency: str
    total: int
    counts: list[int]


class QueueShapeOut(Out):
    labels: list[str] = Field(description="Age buckets in minutes (qshape columns).")
    total: int
    totals: list[int]
    agencies: list[AgencyShapeOut]
    by_state: dict[str, int]
    oldest_age_seconds: float | None


class QueueEntryOut(Out):
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


class QueueOut(Out):
    shape: QueueShapeOut
    deliveries: list[QueueEntryOut]


class ActionOut(Out):
    ok: bool
    detail: str
    deliveries: list[int] = Field(description="Deliveries the action changed.")


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: list[str] = Field(default=[], description="Agency codes to send to (else re-route).")
    force: bool = Field(default=False, description="Needed to release a quarantined message.")


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=500)


class ErrorOut(Out):
    error: str


def dump(model: type[BaseModel], obj: Any) -> dict[str, Any]:
    """`obj` (dataclasses from store.queries) as the JSON-ready dict of `model`."""
    return model.model_validate(obj).model_dump(mode="json")
