"""Meeting invitations on delivery (issue 15): a Giấy mời with a meeting time reaches each
destination with an iCalendar REQUEST (built in `ical.py`).

`prepare` reads the message's Giấy mời facts (nothing for any other message: its bytes go out
exactly as before) and shapes what is sent:
- the original, not S/MIME-signed as a whole (also an edXML agency's package mail): one message,
  the original wrapped in a multipart/mixed beside its `invite.ics` part(s);
- S/MIME-signed (or enveloped) as a whole: the original untouched, then a second message with
  the invitation. Both go through the service's one send path, so each gets the trace headers
  (the same X-Edocgw-Id) and the gateway's DKIM signature.

Nothing is delivered twice when that can be avoided: once the original of a two-message delivery
is accepted, that is committed (`store.invitations`) before the invitation is sent; a retry
(after a refused or lost invitation, in any process) then sends only the invitation. A server
that refuses the invitation for good, or still defers it when the delivery's lifetime ends, does
not turn an accepted document into a bounce: the delivery is recorded as delivered, with the
refusal in its reply and its events (`invitation_refused`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parseaddr

from config import Settings
from gateway.delivery.ical import (
    VN_ZONE,
    Meeting,
    Party,
    build_calendar,
    calendar_part,
    describe,
    invitation_uid,
    is_signed_whole,
    second_message,
    wrap,
)
from gateway.delivery.smtp import Result
from gateway.delivery.trace import edocgw_id, line_ending
from store import invitations as repo
from store.db import Database
from store.deliveries import ClaimedDelivery
from store.invitations import MeetingSource

log = logging.getLogger("edocgw.delivery")


@dataclass(frozen=True)
class Invitation:
    uids: tuple[str, ...]
    first: bytes  # the original with its invitation part(s), or the original untouched
    second: bytes | None  # the invitation alone, when the original must not change
    expires_at: dt.datetime | None = None  # the delivery's end ([delivery] max_age)


async def prepare(
    db: Database, settings: Settings, d: ClaimedDelivery, raw: bytes
) -> Invitation | None:
    """The invitation for delivery `d` of `raw`, or None when the message has no Giấy mời
    with a meeting time (or invitations are off, or the gateway itself wrote the mail)."""
    if not settings.delivery.meeting_invitations or d.source == "internal":
        return None
    if d.has_meeting is False:  # read with the claim: no query for the usual mail
        return None
    async with db.transaction() as s:
        src = await repo.meeting_source(s, d.message_id, d.agency_code)
    if src is None:
        return None
    inv = await asyncio.to_thread(build, src, settings, d.recipient, raw)  # copies `raw`
    return dataclasses.replace(inv, expires_at=d.created_at + settings.delivery.max_age)


def meetings(src: MeetingSource) -> list[Meeting]:
    """One meeting per start time: a Giấy mời sent as both PDF and DOCX is one meeting (the
    document with the most facts describes it)."""
    by_start: dict[object, Meeting] = {}
    for doc in src.documents:
        m = Meeting(
            start=doc.meeting_start,
            place=doc.meeting_place,
            subject=" ".join((doc.subject or src.subject or "Giấy mời họp").split()),
            part_path=doc.part_path,
            kind=doc.kind,
            number=doc.number,
            notation=doc.notation,
            doc_date=doc.doc_date,
            issuer=doc.issuer,
        )
        seen = by_start.get(doc.meeting_start)
        if seen is None or _known(m) > _known(seen):
            by_start[doc.meeting_start] = m
    return list(by_start.values())


def _known(m: Meeting) -> int:
    return sum(1 for v in (m.place, m.number, m.notation, m.doc_date, m.issuer) if v)


def organizer(src: MeetingSource, fallback: str) -> Party:
    """The issuing agency's inbox from the agency directory, else the From address, else the
    envelope sender (replies to the invitation go there)."""
    if src.sender is not None:
        return Party(src.sender.address, src.sender.name)
    name, address = parseaddr(src.header_from or "")
    if "@" in address:
        return Party(address, name or None)
    return Party(src.mail_from if "@" in src.mail_from else fallback)


def build(src: MeetingSource, settings: Settings, recipient: str, raw: bytes) -> Invitation:
    hostname = settings.gateway.hostname
    gateway_sender = settings.receipts.from_address or f"postmaster@{hostname}"
    xid = edocgw_id(src.message_id, hostname)
    org = organizer(src, gateway_sender)
    attendee = Party(recipient, src.destination.name if src.destination else None)
    eol = line_ending(raw)
    found = meetings(src)
    uids = tuple(invitation_uid(xid, m.part_path, hostname) for m in found)
    calendars = [
        build_calendar(
            m,
            uid=uid,
            organizer=org,
            attendee=attendee,
            stamp=src.received_at,
            duration=settings.delivery.meeting_duration,
            description=describe(m, xid),
        )
        for m, uid in zip(found, uids, strict=True)
    ]
    if not is_signed_whole(raw):
        parts = [
            calendar_part(ics, eol, filename="invite.ics" if i == 1 else f"invite-{i}.ics")
            for i, ics in enumerate(calendars, start=1)
        ]
        return Invitation(uids, wrap(raw, parts, eol, seed=f"{xid}\0{recipient}"), None)
    digest = hashlib.sha256(recipient.lower().encode()).hexdigest()[:16]
    reply_to = (src.header_message_id or "").strip()
    second = second_message(
        sender=gateway_sender,
        sender_name=org.name or parseaddr(src.header_from or "")[0] or None,
        reply_to=org.address,
        recipient=recipient,
        subject=found[0].subject,
        date=src.received_at,
        message_id=f"<invite.{digest}.{xid}>",
        in_reply_to=reply_to if reply_to.startswith("<") and reply_to.endswith(">") else None,
        text=_text(found, xid),
        calendars=calendars,
        eol=eol,
    )
    return Invitation(uids, raw, second)


def _text(found: list[Meeting], xid: str) -> str:
    lines = ["Lịch họp (iCalendar) theo giấy mời gửi kèm văn bản điện tử.", ""]
    for m in found:
        start = m.start.astimezone(VN_ZONE)
        lines.append(describe(m, xid).splitlines()[0])
        lines.append(f"Thời gian: {start:%H giờ %M} ngày {start:%d/%m/%Y}")
        if m.place:
            lines.append(f"Địa điểm: {m.place}")
        lines.append("")
    lines.append(
        "Văn bản gốc có chữ ký số (S/MIME) được chuyển nguyên vẹn trong thư riêng "
        f"cùng mã theo dõi X-Edocgw-Id: {xid}."
    )
    return "\n".join(lines) + "\n"


Send = Callable[[bytes], Awaitable[Result]]


async def deliver(db: Database, d: ClaimedDelivery, inv: Invitation, send: Send) -> Result:
    """Send the invitation's message(s) through `send` (trace headers, DKIM, SMTP)."""
    note: tuple[tuple[str, str], ...] = (("invitation", " ".join(inv.uids)),)
    if inv.second is None:
        return _noted(d, dataclasses.replace(await send(inv.first), extra=note))
    async with db.transaction() as s:
        original_reply = await repo.original_reply(s, d.id)
    if original_reply is None:
        first = await send(inv.first)
        if first.outcome != "delivered":
            return first
        original_reply = first.reply
        async with db.transaction() as s:  # before the second: a retry must not resend it
            await repo.mark_original_accepted(s, d.id, first.reply)
    second = await send(inv.second)
    note += (("invitation_message", "second"),)
    expired = inv.expires_at is not None and dt.datetime.now(dt.UTC) >= inv.expires_at
    if second.outcome == "permanent" or (second.outcome == "temporary" and expired):
        # the document arrived; only the invitation did not: no bounce, no DSN for it
        why = "refused" if second.outcome == "permanent" else "not accepted before it expired"
        log.info(  # the destination's choice, not a fault of the gateway
            f"delivery {d.id}: the meeting invitation was {why}: {second.reply}",
            extra={"delivery": d.id, "message_id": d.message_id},
        )
        return Result(
            "delivered",
            250,
            f"{original_reply}; the meeting invitation was {why}: {second.reply}",
            second.host,
            second.tls,
            extra=(*note, ("invitation_refused", second.reply)),
        )
    return _noted(d, dataclasses.replace(second, extra=note))


def _noted(d: ClaimedDelivery, result: Result) -> Result:
    if result.outcome == "delivered":
        log.info(
            f"delivery {d.id} to {d.recipient}: meeting invitation {dict(result.extra)['invitation']}",
            extra={"delivery": d.id, "message_id": d.message_id},
        )
    return result
