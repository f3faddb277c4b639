"""What building an edXML package reads, and the packages built (one per delivery).

A package is built on a delivery's first attempt and stored here; every retry sends the
stored bytes, so the receiver sees the same package (same DocumentId, same signature) each
time. The DocumentId is kept apart so an incoming status package can find its original.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import any_, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Agency, Delivery, Document, EdxmlPackage, Event, Message


@dataclass(frozen=True)
class AgencyName:
    code: str
    name: str
    address: str


@dataclass(frozen=True)
class PackageSource:
    """The stored rows a package is built from."""

    message_id: int
    received_at_iso: str
    mail_from: str
    header_from: str | None
    subject: str | None
    urgency: str | None
    raw: bytes
    documents: tuple[Document, ...]
    sender: AgencyName | None  # the registered agency the mail came from, if any
    destination: AgencyName | None


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip().strip(">").lower().rstrip(".")


async def agency_for_address(session: AsyncSession, address: str) -> AgencyName | None:
    """The active agency whose inbox is `address` or whose mail domains hold it."""
    address = address.strip().strip("<>").lower()
    if "@" not in address:
        return None
    domain = _domain(address)
    row = (
        await session.execute(
            select(Agency.code, Agency.name, Agency.address)
            .where(
                Agency.active.is_(True),
                or_(func.lower(Agency.address) == address, any_(Agency.domains) == domain),
            )
            .order_by((func.lower(Agency.address) == address).desc(), Agency.code)
            .limit(1)
        )
    ).first()
    return AgencyName(row.code, row.name, row.address) if row else None


async def sending_agency(
    session: AsyncSession, mail_from: str | None, header_from: str | None
) -> AgencyName | None:
    """The registered agency a message came from: by its envelope sender, else its From."""
    sender = await agency_for_address(session, mail_from or "")
    if sender is None and header_from:
        from email.utils import parseaddr

        sender = await agency_for_address(session, parseaddr(header_from)[1])
    return sender


async def agency_by_code(session: AsyncSession, code: str | None) -> AgencyName | None:
    if not code:
        return None
    row = (
        await session.execute(
            select(Agency.code, Agency.name, Agency.address).where(Agency.code == code)
        )
    ).first()
    return AgencyName(row.code, row.name, row.address) if row else None


async def package_source(
    session: AsyncSession, message_id: int, agency_code: str | None
) -> PackageSource:
    msg = (
        await session.execute(
            select(
                Message.received_at,
                Message.mail_from,
                Message.header_from,
                Message.subject,
                Message.urgency,
                Message.raw,
            ).where(Message.id == message_id)
        )
    ).one()
    docs = (
        await session.scalars(
            select(Document).where(Document.message_id == message_id).order_by(Document.id)
        )
    ).all()
    sender = await sending_agency(session, msg.mail_from, msg.header_from)
    return PackageSource(
        message_id=message_id,
        received_at_iso=msg.received_at.isoformat(),
        mail_from=msg.mail_from or "",
        header_from=msg.header_from,
        subject=msg.subject,
        urgency=msg.urgency,
        raw=msg.raw,
        documents=tuple(docs),
        sender=sender,
        destination=await agency_by_code(session, agency_code),
    )


async def stored_package(session: AsyncSession, delivery_id: int) -> bytes | None:
    return (
        await session.execute(
            select(EdxmlPackage.data).where(EdxmlPackage.delivery_id == delivery_id)
        )
    ).scalar_one_or_none()


async def store_package(
    session: AsyncSession, delivery_id: int, message_id: int, document_id: str, data: bytes
) -> bytes:
    """Keep the package built for `delivery_id`; if another worker stored one first, that
    one wins and is returned (so every attempt sends the same bytes)."""
    await session.execute(
        insert(EdxmlPackage)
        .values(delivery_id=delivery_id, message_id=message_id, document_id=document_id, data=data)
        .on_conflict_do_nothing(index_elements=[EdxmlPackage.delivery_id])
    )
    stored = await stored_package(session, delivery_id)
    assert stored is not None
    return stored


@dataclass(frozen=True)
class SentPackage:
    message_id: int
    delivery_id: int
    agency_code: str | None


async def packages_by_document_id(session: AsyncSession, document_id: str) -> list[SentPackage]:
    """The deliveries whose edXML package carried `document_id` (oldest first)."""
    rows = (
        await session.execute(
            select(EdxmlPackage.message_id, EdxmlPackage.delivery_id, Delivery.agency_code)
            .join(Delivery, Delivery.id == EdxmlPackage.delivery_id)
            .where(EdxmlPackage.document_id == document_id)
            .order_by(EdxmlPackage.delivery_id)
        )
    ).all()
    return [SentPackage(r.message_id, r.delivery_id, r.agency_code) for r in rows]


async def latest_statuses(
    session: AsyncSession, message_ids: list[int]
) -> dict[int, dict[str, Any]]:
    """The newest `status_received` detail per delivery of these (original) messages."""
    if not message_ids:
        return {}
    rows = (
        await session.execute(
            select(Event.delivery_id, Event.detail)
            .where(
                Event.kind == "status_received",
                Event.message_id.in_(message_ids),
                Event.delivery_id.is_not(None),
            )
            .order_by(Event.delivery_id, Event.id.desc())
        )
    ).all()
    latest: dict[int, dict[str, Any]] = {}
    for r in rows:  # newest first per delivery: the first seen is the latest status
        latest.setdefault(r.delivery_id, dict(r.detail or {}))
    return latest
