"""What a meeting invitation is built from, and whether a two-message delivery's original went.

`meeting_source` is asked once per delivery attempt when invitations are on: one indexed look-up
of the message's Giấy mời documents with a meeting time; only when there is one are the
message's headers and the agencies read. The sending agency is found as the edXML bridge finds
it (`sending_agency`: the envelope sender, else the From address).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from store.edxml_packages import AgencyName, agency_by_code, sending_agency
from store.models import Document, InvitationSend, Message

MEETING_KIND = "Giấy mời"


@dataclass(frozen=True)
class MeetingDoc:
    part_path: str
    meeting_start: dt.datetime
    meeting_place: str | None
    subject: str | None
    kind: str | None
    number: str | None
    notation: str | None
    doc_date: dt.date | None
    issuer: str | None


@dataclass(frozen=True)
class MeetingSource:
    message_id: int
    received_at: dt.datetime
    mail_from: str
    header_from: str | None
    header_message_id: str | None
    subject: str | None
    documents: tuple[MeetingDoc, ...]  # in document order
    sender: AgencyName | None  # the registered agency the mail came from, if any
    destination: AgencyName | None


def has_meeting(message_id: ColumnElement[int]) -> ColumnElement[bool]:
    """Whether the message has a Giấy mời whose meeting time was read (read with a
    delivery's claim, so mail without one costs no query of its own at delivery)."""
    return select(Document.id).where(*_meeting_documents(message_id)).exists()


def _meeting_documents(message_id: ColumnElement[int] | int) -> tuple[ColumnElement[bool], ...]:
    return (
        Document.message_id == message_id,
        Document.kind == MEETING_KIND,
        Document.meeting_start.is_not(None),
    )


async def meeting_source(
    session: AsyncSession, message_id: int, agency_code: str | None
) -> MeetingSource | None:
    """The message's Giấy mời documents whose meeting time was read; None when it has none."""
    docs = (
        await session.execute(
            select(
                Document.part_path,
                Document.meeting_start,
                Document.meeting_place,
                Document.subject,
                Document.kind,
                Document.number,
                Document.notation,
                Document.doc_date,
                Document.issuer,
            )
            .where(*_meeting_documents(message_id))
            .order_by(Document.id)
        )
    ).all()
    if not docs:
        return None
    msg = (
        await session.execute(
            select(
                Message.received_at,
                Message.mail_from,
                Message.header_from,
                Message.header_message_id,
                Message.subject,
            ).where(Message.id == message_id)
        )
    ).one()
    return MeetingSource(
        message_id=message_id,
        received_at=msg.received_at,
        mail_from=msg.mail_from or "",
        header_from=msg.header_from,
        header_message_id=msg.header_message_id,
        subject=msg.subject,
        documents=tuple(MeetingDoc(**r._asdict()) for r in docs),
        sender=await sending_agency(session, msg.mail_from, msg.header_from),
        destination=await agency_by_code(session, agency_code),
    )


async def original_reply(session: AsyncSession, delivery_id: int) -> str | None:
    """The server's reply that accepted the original, when it was; else None."""
    return await session.scalar(
        select(InvitationSend.original_reply).where(InvitationSend.delivery_id == delivery_id)
    )


async def mark_original_accepted(session: AsyncSession, delivery_id: int, reply: str) -> None:
    await session.execute(
        insert(InvitationSend)
        .values(delivery_id=delivery_id, original_reply=reply)
        .on_conflict_do_nothing(index_elements=[InvitationSend.delivery_id])
    )
