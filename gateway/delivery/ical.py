"""iCalendar invitations for a Giấy mời (issue 15): the VCALENDAR and the MIME shapes that carry it.

Pure (no I/O): `invitations.py` reads the facts and sends. An invitation is an iTIP REQUEST
(RFC 5546) carried as iMIP (RFC 6047): `text/calendar; method=REQUEST; charset=UTF-8`, built
with the `icalendar` library, which folds long lines on character boundaries (Vietnamese text
stays whole) and writes the VTIMEZONE for Asia/Ho_Chi_Minh.

Every value is derived from stored facts (the UID from the message's X-Edocgw-Id and the
document's part, DTSTAMP from the time the gateway accepted the message), so a retry, or the
second-message form, carries byte-identical calendar data and the same UID: a calendar updates
one event instead of adding a second one.

Two shapes:
- `wrap`: the original entity (its Content-* headers and its body, byte for byte, so document
  signatures and the meeting papers stay intact) becomes the first part of a new top-level
  multipart/mixed that keeps every other header of the original (From, Subject, Message-ID,
  ...), followed by one `invite.ics` part per meeting. One path for every original shape
  (text only, multipart/mixed, multipart/alternative) without re-serialising any of it.
- `second_message`: for an original that is S/MIME-signed (or enveloped) as a whole, which must
  travel untouched: a separate message, `Lịch họp: <subject>`, threaded to the original by
  In-Reply-To. The gateway wrote it, so it is from the gateway's address (under the issuing
  agency's name; replies go to the organizer): a From in the agency's own domain would fail
  DMARC at the receiver, the agency's DKIM key not having signed it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from email.header import Header
from email.utils import format_datetime, formataddr
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress

from mailparse.headers import header_block

VN_ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
PRODID = "-//edocgw//Giay moi//VI"
SMIME_WHOLE = (b"multipart/signed", b"application/pkcs7-mime", b"application/x-pkcs7-mime")


@dataclass(frozen=True)
class Meeting:
    """What the invitation says, from one Giấy mời's stored facts."""

    start: dt.datetime  # aware
    place: str | None
    subject: str  # the document's trích yếu, else the mail's subject
    part_path: str  # the document's part in the message (the UID's second half)
    kind: str | None = None
    number: str | None = None
    notation: str | None = None
    doc_date: dt.date | None = None
    issuer: str | None = None


@dataclass(frozen=True)
class Party:
    address: str
    name: str | None = None


def invitation_uid(xid: str, part_path: str, hostname: str) -> str:
    """The event's UID: the same for every attempt and every destination of this meeting."""
    digest = hashlib.sha256(f"{xid}\0{part_path}".encode()).hexdigest()[:32]
    return f"{digest}@{hostname}"


def describe(m: Meeting, xid: str) -> str:
    """DESCRIPTION: which document the event comes from, in the clerk's terms."""
    head = m.kind or "Giấy mời"
    if m.number:  # "số 12/GM-UBND"; a number left blank for the clerk: "ký hiệu GM-UBND"
        head += f" số {m.number}" + (f"/{m.notation}" if m.notation else "")
    elif m.notation:
        head += f" ký hiệu {m.notation}"
    if m.doc_date:
        head += f" ngày {m.doc_date:%d/%m/%Y}"
    if m.issuer:
        head += f" của {m.issuer}"
    lines = [head + ".", f"Trích yếu: {m.subject}"]
    if m.place:
        lines.append(f"Địa điểm: {m.place}")
    lines.append(f"Văn bản và tài liệu họp được gửi kèm thư (mã theo dõi: {xid}).")
    return "\n".join(lines)


def build_calendar(
    m: Meeting,
    *,
    uid: str,
    organizer: Party,
    attendee: Party,
    stamp: dt.datetime,
    duration: dt.timedelta,
    description: str,
) -> bytes:
    """The VCALENDAR (METHOD:REQUEST, one VEVENT, its VTIMEZONE) as UTF-8 with CRLF lines."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("method", "REQUEST")
    ev = Event()
    ev.add("uid", uid)
    ev.add("dtstamp", stamp.astimezone(dt.UTC))
    start = m.start.astimezone(VN_ZONE)
    ev.add("dtstart", start)
    ev.add("dtend", start + duration)
    ev.add("sequence", 0)
    ev.add("status", "CONFIRMED")
    ev.add("transp", "OPAQUE")
    ev.add("summary", m.subject)
    if m.place:
        ev.add("location", m.place)
    ev.add("description", description)
    org = vCalAddress(f"mailto:{organizer.address}")
    if organizer.name:
        org.params["CN"] = organizer.name
    ev.add("organizer", org)
    att = vCalAddress(f"mailto:{attendee.address}")
    if attendee.name:
        att.params["CN"] = attendee.name
    att.params["ROLE"] = "REQ-PARTICIPANT"
    att.params["PARTSTAT"] = "NEEDS-ACTION"
    att.params["RSVP"] = "TRUE"
    ev.add("attendee", att)
    cal.add_component(ev)
    cal.add_missing_timezones()
    return cal.to_ical()


def calendar_part(ics: bytes, eol: bytes, *, filename: str | None = "invite.ics") -> bytes:
    """One MIME entity holding `ics`: base64, so it needs no 8BITMIME on the way; with a
    `filename` an attachment (the form Gmail, Outlook and Thunderbird open as an invitation)."""
    head = [b'Content-Type: text/calendar; charset="UTF-8"; method=REQUEST']
    if filename:
        head[0] += f'; name="{filename}"'.encode()
        head.append(f'Content-Disposition: attachment; filename="{filename}"'.encode())
    head.append(b"Content-Transfer-Encoding: base64")
    body = base64.encodebytes(ics).replace(b"\n", eol)
    return eol.join(head) + eol + eol + body


def is_signed_whole(raw: bytes) -> bool:
    """Whether the message is S/MIME signed (or enveloped) as a whole: its top-level
    Content-Type is multipart/signed or application/(x-)pkcs7-mime. Such a message must not
    change at all, so the invitation travels as a second message."""
    for name, value in _fields(header_block(raw)):
        if name == b"content-type":
            ctype = value.split(b":", 1)[1].split(b";", 1)[0].strip().lower()
            return ctype in SMIME_WHOLE
    return False


def _fields(block: bytes) -> list[tuple[bytes, bytes]]:
    """(lower-case name, raw field with its continuation lines and line ends)."""
    out: list[tuple[bytes, bytes]] = []
    for line in block.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + line)
        else:
            out.append((line.split(b":", 1)[0].strip().lower(), line))
    return out


def _boundary(seed: str, raw: bytes) -> bytes:
    """A boundary derived from `seed` (stable across retries) that `raw` does not contain."""
    n = 0
    while True:
        digest = hashlib.sha256(f"{seed}\0{n}".encode()).hexdigest()[:24]
        b = f"=_edocgw_invite_{digest}".encode()
        if b not in raw:
            return b
        n += 1


def wrap(raw: bytes, parts: Sequence[bytes], eol: bytes, seed: str) -> bytes:
    """`raw` as the first part of a new multipart/mixed followed by `parts`: the original's
    headers other than Content-* stay on top; its Content-* headers and body, unchanged,
    make the first part (no Content-Type there means text/plain, as it did at the top)."""
    block = header_block(raw)
    rest = raw[len(block) :]
    if rest.startswith(b"\r\n"):
        body = rest[2:]
    elif rest.startswith(b"\n"):
        body = rest[1:]
    else:  # no empty line: headers only
        body = rest
    top: list[bytes] = []
    inner: list[bytes] = []
    has_version = False
    for name, field in _fields(block):
        if not field.endswith(b"\n"):
            field += eol
        if name.startswith(b"content-"):
            inner.append(field)
        else:
            has_version |= name == b"mime-version"
            top.append(field)
    boundary = _boundary(seed, raw)
    if not has_version:
        top.append(b"MIME-Version: 1.0" + eol)
    top.append(b'Content-Type: multipart/mixed; boundary="' + boundary + b'"' + eol)
    if not body.isascii():
        top.append(b"Content-Transfer-Encoding: 8bit" + eol)
    delimiter = b"--" + boundary
    out = [b"".join(top), eol, delimiter, eol, b"".join(inner), eol, body]
    for part in parts:
        out += [eol, delimiter, eol, part]
    out += [eol, delimiter, b"--", eol]
    return b"".join(out)


def second_message(
    *,
    sender: str,
    sender_name: str | None,
    reply_to: str,
    recipient: str,
    subject: str,
    date: dt.datetime,
    message_id: str,
    in_reply_to: str | None,
    text: str,
    calendars: Sequence[bytes],
    eol: bytes = b"\r\n",
) -> bytes:
    """The invitation alone, for an original that must travel untouched. One meeting: the
    iMIP shape clients show as a meeting request (multipart/alternative of the text and the
    text/calendar); several: multipart/mixed, the text and one invite.ics per meeting. Built
    from stored values only, so every attempt sends the same bytes."""
    nl = eol.decode()
    headers = [
        ("From", formataddr((sender_name, sender), charset="utf-8")),
        ("Reply-To", reply_to),
        ("To", recipient),
        # encoded words of their own: the email package's folder drops the space between an
        # encoded word and the next word ("số 30" arrived as "số30")
        ("Subject", Header(f"Lịch họp: {subject}", "utf-8").encode(linesep=nl)),
        ("Date", format_datetime(date.astimezone(dt.UTC))),
        ("Message-ID", message_id),
    ]
    if in_reply_to:
        headers += [("In-Reply-To", in_reply_to), ("References", in_reply_to)]
    headers.append(("MIME-Version", "1.0"))
    boundary = _boundary(message_id, b"")
    subtype = b"alternative" if len(calendars) == 1 else b"mixed"
    text_part = (
        b'Content-Type: text/plain; charset="UTF-8"' + eol
        + b"Content-Transfer-Encoding: base64" + eol + eol
        + base64.encodebytes(text.replace("\n", "\r\n").encode()).replace(b"\n", eol)
    )  # fmt: skip
    if len(calendars) == 1:
        cal_parts = [calendar_part(calendars[0], eol, filename=None)]
    else:
        cal_parts = [
            calendar_part(ics, eol, filename="invite.ics" if i == 1 else f"invite-{i}.ics")
            for i, ics in enumerate(calendars, start=1)
        ]
    out = [f"{k}: {v}{nl}".encode() for k, v in headers]
    out.append(b"Content-Type: multipart/" + subtype + b'; boundary="' + boundary + b'"' + eol)
    out.append(eol)
    for part in [text_part, *cal_parts]:
        out += [b"--", boundary, eol, part, eol]
    out += [b"--", boundary, b"--", eol]
    return b"".join(out)
