"""SQLAlchemy 2 models for DESIGN §2. Every pipeline stage is a state change in these tables."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column

TS = DateTime(timezone=True)
TextArray = ARRAY(Text)

MESSAGE_STATES = ("received", "processed", "quarantined", "held", "failed", "duplicate")
DELIVERY_STATES = ("queued", "sending", "delivered", "deferred", "bounced", "held", "cancelled")
EVENT_KINDS = (
    "received",
    "parsed",
    "classified",
    "verified",
    "routed",
    "quarantined",
    "held",
    "attempt",
    "delivered",
    "deferred",
    "bounced",
    "receipt_sent",
    "released",
    "retried",
    "warned",
    "cancelled",
    "failed",
    "duplicate",
    "status_received",
)


class Base(DeclarativeBase):
    pass


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())
    source: Mapped[str] = mapped_column(Text)  # smtp | imap
    peer: Mapped[str] = mapped_column(Text)
    auth_user: Mapped[str | None] = mapped_column(Text)
    mail_from: Mapped[str] = mapped_column(Text, server_default="")
    rcpt_to: Mapped[list[str]] = mapped_column(TextArray, server_default="{}")
    header_message_id: Mapped[str | None] = mapped_column(Text)
    header_from: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    state: Mapped[str] = mapped_column(Text, server_default="received")
    verdict: Mapped[str | None] = mapped_column(Text)
    urgency: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    duplicate_of: Mapped[int | None] = mapped_column(BigInteger)
    # From the pipeline's message plan: the routing input (release routes again from it)
    # and the edXML document's reference (the receipts' status package quotes it).
    route_input: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    edxml_ref: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # SPF/DKIM/DMARC of an unauthenticated outside client (gateway.senderauth); None: unchecked
    auth_results: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    claimed_by: Mapped[str | None] = mapped_column(Text)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(TS)
    updated_at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())

    __table_args__ = (
        Index("ix_messages_state_received", "state", "received_at"),
        Index("ix_messages_received_at", "received_at"),
        Index("ix_messages_sha256", "sha256"),
        Index("ix_messages_msgid_sender", "header_message_id", "mail_from"),
    )


class IntakeKey(Base):
    """A duplicate key (`sha256:<hex>` or `msgid:<sender> <Message-ID>`) and the message that
    first had it within `[gateway] duplicate_window`. Its primary key is what makes two copies
    committed at the same moment by two sessions end as one original and one duplicate."""

    __tablename__ = "intake_keys"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    seen_at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())

    __table_args__ = (Index("ix_intake_keys_message", "message_id"),)


class Document(Base):
    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    part_path: Mapped[str] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(Text)
    declared_type: Mapped[str | None] = mapped_column(Text)
    detected_type: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(Text)
    kind_abbr: Mapped[str | None] = mapped_column(Text)
    number: Mapped[str | None] = mapped_column(Text)
    year: Mapped[int | None] = mapped_column(Integer)
    notation: Mapped[str | None] = mapped_column(Text)
    issuer: Mapped[str | None] = mapped_column(Text)
    parent_issuer: Mapped[str | None] = mapped_column(Text)
    place: Mapped[str | None] = mapped_column(Text)
    doc_date: Mapped[dt.date | None] = mapped_column(Date)
    subject: Mapped[str | None] = mapped_column(Text)
    signer: Mapped[str | None] = mapped_column(Text)
    signer_position: Mapped[str | None] = mapped_column(Text)
    signer_competence: Mapped[str | None] = mapped_column(Text)
    meeting_start: Mapped[dt.datetime | None] = mapped_column(TS)
    meeting_place: Mapped[str | None] = mapped_column(Text)
    urgency: Mapped[str | None] = mapped_column(Text)
    secrecy: Mapped[str | None] = mapped_column(Text)
    recipients: Mapped[list[str]] = mapped_column(TextArray, server_default="{}")
    agency_codes: Mapped[list[str]] = mapped_column(TextArray, server_default="{}")
    sources: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    confidence: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    flags: Mapped[list[str]] = mapped_column(TextArray, server_default="{}")
    defects: Mapped[list[str]] = mapped_column(TextArray, server_default="{}")
    verdict: Mapped[str | None] = mapped_column(Text)
    # Decree 30 e-document check {conformant, personal_signer, organisation_signer, problems}
    e_document: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Why the document's text could not be read (its verdict is then `unreadable`).
    unreadable: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_documents_message", "message_id"),
        Index("ix_documents_notation", "number", "notation"),
    )


class Signature(Base):
    __tablename__ = "signatures"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    format: Mapped[str] = mapped_column(Text)
    verdict: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    signer_cn: Mapped[str | None] = mapped_column(Text)
    signer_o: Mapped[str | None] = mapped_column(Text)
    signer_uid: Mapped[str | None] = mapped_column(Text)
    serial: Mapped[str | None] = mapped_column(Text)
    issuer_cn: Mapped[str | None] = mapped_column(Text)
    cert_sha256: Mapped[str | None] = mapped_column(Text)
    signing_time: Mapped[dt.datetime | None] = mapped_column(TS)
    signing_time_source: Mapped[str | None] = mapped_column(Text)
    covers_whole_file: Mapped[bool | None] = mapped_column(Boolean)
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_signatures_message", "message_id"),
        Index("ix_signatures_document", "document_id"),
    )


class Agency(Base):
    __tablename__ = "agencies"

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    aliases: Mapped[list[str]] = mapped_column(TextArray, server_default="{}")
    domains: Mapped[list[str]] = mapped_column(TextArray, server_default="{}")
    address: Mapped[str] = mapped_column(Text)
    route: Mapped[str] = mapped_column(Text, server_default="mx")
    tls: Mapped[str] = mapped_column(Text, server_default="verify")
    format: Mapped[str] = mapped_column(Text, server_default="mime")  # mime | edxml
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())


class SenderRule(Base):
    """A per-sender exception to the official-sender rule (issue 14): `allow` lets a sender
    outside `[policy] official_domains` through unflagged, `deny` holds its mail."""

    __tablename__ = "sender_rules"

    pattern: Mapped[str] = mapped_column(Text, primary_key=True)  # address or domain
    action: Mapped[str] = mapped_column(Text)  # allow | deny
    note: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())


class Delivery(Base):
    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    recipient: Mapped[str] = mapped_column(Text)
    agency_code: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text, server_default="queued")
    priority: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())
    last_reply_code: Mapped[int | None] = mapped_column(Integer)
    last_reply: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(TS)
    warned_at: Mapped[dt.datetime | None] = mapped_column(TS)
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())
    claimed_by: Mapped[str | None] = mapped_column(Text)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(TS)

    __table_args__ = (
        UniqueConstraint("message_id", "recipient", name="uq_deliveries_message_recipient"),
        Index("ix_deliveries_due", "state", "priority", "next_attempt_at"),
        Index("ix_deliveries_message", "message_id"),
        Index("ix_deliveries_agency", "agency_code"),
    )


class Event(Base):
    """The append-only delivery log. `hash` chains each sealed event to the one before it."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.clock_timestamp())
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    delivery_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    chain_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(Text)
    hash: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_events_message", "message_id"),
        Index("ix_events_unsealed", "id", postgresql_where=text("chain_seq IS NULL")),
    )


class InvitationSend(Base):
    """A delivery whose original went as it was (S/MIME-signed as a whole) with its meeting
    invitation as a second message: the original was accepted, so a retry sends only the
    invitation (nothing is delivered twice)."""

    __tablename__ = "invitation_sends"

    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), primary_key=True
    )
    original_reply: Mapped[str] = mapped_column(Text)
    original_at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())


class EdxmlPackage(Base):
    """The edXML mail built for a delivery to an `edxml` agency: built once, sent on every
    retry as is; `document_id` answers incoming status packages (ResponseFor/DocumentId)."""

    __tablename__ = "edxml_packages"

    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), primary_key=True
    )
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    document_id: Mapped[str] = mapped_column(Text)
    data: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())

    __table_args__ = (
        Index("ix_edxml_packages_document", "document_id"),
        Index("ix_edxml_packages_message", "message_id"),
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    roles: Mapped[list[str]] = mapped_column(TextArray, server_default="{}")
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    token_hash: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())


class ImapState(Base):
    __tablename__ = "imap_state"

    account: Mapped[str] = mapped_column(Text, primary_key=True)
    mailbox: Mapped[str] = mapped_column(Text, primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, server_default="0")
    updated_at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())


class Destination(Base):
    """Per-destination health, for pausing a destination that keeps failing."""

    __tablename__ = "destinations"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default="0")
    paused_until: Mapped[dt.datetime | None] = mapped_column(TS)
    last_error: Mapped[str | None] = mapped_column(Text)
    score: Mapped[float] = mapped_column(Float, server_default="0")


class AdminSession(Base):
    """A logged-in web admin session. Only the SHA-256 of the cookie's random id is kept, so
    a database reader cannot take over a session; deleting the row ends it at once."""

    __tablename__ = "admin_sessions"

    id_hash: Mapped[str] = mapped_column(Text, primary_key=True)
    user_name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())
    expires_at: Mapped[dt.datetime] = mapped_column(TS)

    __table_args__ = (Index("ix_admin_sessions_user", "user_name"),)


class AdminLoginFailure(Base):
    """Failed web logins per (user name, client address): the back-off state."""

    __tablename__ = "admin_login_failures"

    user_name: Mapped[str] = mapped_column(Text, primary_key=True)
    client: Mapped[str] = mapped_column(Text, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, server_default="0")
    last_at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())
    locked_until: Mapped[dt.datetime | None] = mapped_column(TS)


class EventCheckpoint(Base):
    """A signed (HMAC) record of the event chain's head, so a cut tail is noticed."""

    __tablename__ = "event_checkpoints"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())
    chain_seq: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(Text)
    mac: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_event_checkpoints_seq", "chain_seq"),)
