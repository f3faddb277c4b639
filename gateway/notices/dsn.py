"""RFC 3464 delivery status notifications: `multipart/report; report-type=delivery-status`.

A DSN goes to the original's envelope sender with a null envelope sender of its own, and is
never made for a message with a null sender, for the gateway's own notices, or for another
report: a bounce is never bounced. It carries a human part (Vietnamese, then English), the
machine-readable `message/delivery-status`, and the original's headers.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from dataclasses import dataclass
from email.utils import format_datetime

from config import Settings
from gateway.notices.outbound import (
    INTERNAL,
    Notice,
    address_header,
    auto_kind,
    enqueue,
    header,
    new_message_id,
)
from mailparse.headers import MAX_HEADER_BLOCK, header_block
from store.db import Transaction
from store.deliveries import message_head

ACTIONS = ("failed", "delayed", "delivered")


@dataclass(frozen=True)
class RecipientStatus:
    recipient: str
    action: str  # failed | delayed | delivered
    status: str  # enhanced status code, e.g. 5.1.1
    diagnostic: str  # the last reply, one line
    remote_mta: str = ""
    last_attempt: dt.datetime | None = None
    will_retry_until: dt.datetime | None = None


@dataclass(frozen=True)
class Original:
    message_id: int
    mail_from: str
    source: str
    received_at: dt.datetime
    subject: str = ""
    xid: str = ""


def _date(value: dt.datetime) -> str:
    return format_datetime(value.astimezone(dt.UTC))


def _addr_type(addr: str) -> str:
    return f"rfc822; {addr}" if addr.isascii() else f"utf-8; {addr}"


def _field(value: str) -> str:
    return " ".join(value.split()).encode("ascii", "replace").decode()[:900]


def _human(reporting_mta: str, orig: Original, r: RecipientStatus) -> str:
    when = orig.received_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if r.action == "delayed":
        until = (
            r.will_retry_until.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            if r.will_retry_until
            else "?"
        )
        vi = (
            f"Đây là thông báo tự động của hệ thống chuyển văn bản điện tử {reporting_mta}.\n\n"
            f"Thư gửi lúc {when} chưa chuyển được đến:\n\n  <{r.recipient}>: {r.diagnostic}\n\n"
            f"Hệ thống vẫn đang tiếp tục thử lại đến {until}; quý cơ quan không cần gửi lại.\n"
        )
        en = (
            f"This is the mail system at {reporting_mta}.\n\nYour message of {when} has not "
            f"yet been delivered to <{r.recipient}>: {r.diagnostic}\n\nDelivery will be "
            f"retried until {until}; you do not need to send it again.\n"
        )
    else:
        vi = (
            f"Đây là thông báo tự động của hệ thống chuyển văn bản điện tử {reporting_mta}.\n\n"
            f"Không chuyển được thư gửi lúc {when} đến:\n\n  <{r.recipient}>: {r.diagnostic}\n\n"
            "Thư đã bị trả lại; phần đầu thư gốc được đính kèm bên dưới.\n"
        )
        en = (
            f"This is the mail system at {reporting_mta}.\n\nYour message of {when} could "
            f"not be delivered to <{r.recipient}>: {r.diagnostic}\n\nThe headers of the "
            "original message are attached.\n"
        )
    return vi + "\n-- \n" + en


def build_dsn(
    *,
    reporting_mta: str,
    from_address: str,
    original: Original,
    original_headers: bytes,
    recipient: RecipientStatus,
) -> tuple[str, bytes]:
    """(Message-ID, bytes) of a DSN about one recipient of `original`."""
    if recipient.action not in ACTIONS:
        raise ValueError(f"DSN action {recipient.action!r}")
    boundary = "=_edocgw_dsn_" + secrets.token_hex(12)
    msgid = new_message_id(reporting_mta)
    now = dt.datetime.now(dt.UTC)
    if recipient.action == "delayed":
        subject = "Thư chưa chuyển được (Delayed Mail): " + (original.subject or "")
    else:
        subject = "Thư bị trả lại (Undelivered Mail Returned to Sender): " + (
            original.subject or ""
        )
    head = b"".join(
        [
            address_header("From", "Mail Delivery System", from_address),
            header("To", f"<{original.mail_from}>"),
            header("Subject", subject.strip()),
            header("Date", format_datetime(now)),
            header("Message-ID", msgid),
            header("Auto-Submitted", "auto-replied"),
            header("MIME-Version", "1.0"),
            header(
                "Content-Type",
                f'multipart/report; report-type=delivery-status; boundary="{boundary}"',
            ),
        ]
    )
    human = base64.encodebytes(_human(reporting_mta, original, recipient).encode()).replace(
        b"\n", b"\r\n"
    )
    per_message = [f"Reporting-MTA: dns; {reporting_mta}"]
    if original.xid:
        per_message.append(f"X-Edocgw-Id: {original.xid}")
    per_message.append(f"Arrival-Date: {_date(original.received_at)}")
    r = recipient
    per_rcpt = [
        f"Final-Recipient: {_addr_type(r.recipient)}",
        f"Action: {r.action}",
        f"Status: {r.status}",
    ]
    if r.remote_mta:
        per_rcpt.append(f"Remote-MTA: dns; {_field(r.remote_mta)}")
    diag_type = "smtp" if r.diagnostic[:3].isdigit() else "x-edocgw"
    per_rcpt.append(f"Diagnostic-Code: {diag_type}; {_field(r.diagnostic)}")
    if r.last_attempt:
        per_rcpt.append(f"Last-Attempt-Date: {_date(r.last_attempt)}")
    if r.will_retry_until:
        per_rcpt.append(f"Will-Retry-Until: {_date(r.will_retry_until)}")
    status = ("\r\n".join(per_message) + "\r\n\r\n" + "\r\n".join(per_rcpt) + "\r\n").encode()
    headers = original_headers.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n").rstrip(b"\r\n")
    cte = "7bit" if headers.isascii() else "8bit"
    b = f"--{boundary}\r\n".encode()
    body = b"".join(
        [
            b"This is a MIME-encapsulated delivery status notification.\r\n\r\n",
            b,
            b"Content-Type: text/plain; charset=utf-8\r\n",
            b"Content-Description: Notification\r\n",
            b"Content-Transfer-Encoding: base64\r\n\r\n",
            human,
            b,
            b"Content-Type: message/delivery-status\r\n",
            b"Content-Description: Delivery report\r\n\r\n",
            status,
            b,
            b"Content-Type: text/rfc822-headers\r\n",
            b"Content-Description: Headers of the original message\r\n",
            f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode(),
            headers,
            b"\r\n",
            f"--{boundary}--\r\n".encode(),
        ]
    )
    return msgid, head + b"\r\n" + body


async def queue_dsn(
    session: Transaction,
    settings: Settings,
    original: Original,
    recipient: RecipientStatus,
    *,
    priority: int = 0,
) -> int | None:
    """Enqueue a DSN to the original's envelope sender; None when one must not be sent."""
    if not original.mail_from or original.source == INTERNAL:
        return None
    headers = header_block(await message_head(session, original.message_id, MAX_HEADER_BLOCK))
    if auto_kind(headers) == "report":
        return None
    host = settings.gateway.hostname
    msgid, raw = build_dsn(
        reporting_mta=host,
        from_address=f"MAILER-DAEMON@{host}",
        original=original,
        original_headers=headers,
        recipient=recipient,
    )
    notice = Notice(
        kind=f"dsn/{recipient.action}",
        raw=raw,
        recipients=(original.mail_from,),
        header_message_id=msgid,
        header_from=f"MAILER-DAEMON@{host}",
        subject=f"DSN {recipient.action}: {original.subject or ''}".strip(),
    )
    return await enqueue(session, notice, about=original.message_id, priority=priority)
