"""Receipts to senders (Decree 30/2020: tell the sender the same day what became of a document).

`queue_notice` writes a notice into the outgoing queue inside the caller's transaction, so a
receipt exists exactly when the state change it reports commits. A notice has Vietnamese text
for people, a JSON part for programs, and for edXML senders an edXML status package (01 on
arrival, 02 on refusal); it is S/MIME-signed when the gateway has a key. Receipts are never
sent to a null sender, about the gateway's own mail, bounces or other automatic mail, nor when
switched off (globally or for the sender's domain).
"""

from __future__ import annotations

import datetime as dt
import email.generator
import email.policy
import io
import json
import logging
from dataclasses import dataclass
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config import Settings
from gateway.delivery.trace import edocgw_id
from gateway.outbound import (
    INTERNAL,
    Notice,
    address_header,
    auto_kind,
    enqueue,
    header,
    new_message_id,
)
from signing.sign import sign_smime
from store.deliveries import message_headers, message_raw
from store.models import Delivery, Document, Message

log = logging.getLogger("edocgw.receipts")

VN_TIME = dt.timezone(dt.timedelta(hours=7), "ICT")

# kind -> (subject prefix, lead sentence)
KINDS: dict[str, tuple[str, str]] = {
    "accepted": (
        "Xác nhận tiếp nhận văn bản",
        "Hệ thống đã tiếp nhận văn bản điện tử của quý cơ quan và đang chuyển đến nơi nhận.",
    ),
    "held": (
        "Văn bản đang chờ xử lý",
        "Văn bản đang được giữ lại để cán bộ quản trị xem xét trước khi chuyển đi.",
    ),
    "quarantined": (
        "Văn bản bị cách ly",
        "Văn bản có đóng dấu chỉ mức độ mật nên không được chuyển qua mạng Internet "
        "(Luật Bảo vệ bí mật nhà nước số 29/2018/QH14) và đã được cách ly.",
    ),
    "rejected": ("Văn bản bị từ chối", "Hệ thống đã từ chối văn bản điện tử của quý cơ quan."),
    "delivered": (
        "Văn bản đã được chuyển đến nơi nhận",
        "Văn bản đã được chuyển đến và được hệ thống thư của nơi nhận chấp nhận.",
    ),
    "failed": (
        "Không chuyển được văn bản",
        "Không thể chuyển văn bản đến nơi nhận dưới đây; văn bản đã bị trả lại.",
    ),
    "delayed": (
        "Văn bản chưa chuyển được",
        "Văn bản chưa chuyển được đến nơi nhận dưới đây; hệ thống vẫn đang tiếp tục thử lại.",
    ),
}
# edXML status codes (QCVN 102:2016): 01 arrived, 02 refused.
EDXML_STATUS = {"accepted": "01", "rejected": "02", "quarantined": "02", "failed": "02"}
STATE_VI = {
    "queued": "đang chờ gửi",
    "sending": "đang gửi",
    "delivered": "đã chuyển",
    "deferred": "đang thử lại",
    "bounced": "không chuyển được",
    "held": "đang giữ lại",
    "cancelled": "đã hủy",
}


@dataclass(frozen=True)
class _Original:
    id: int
    source: str
    mail_from: str
    subject: str | None
    header_message_id: str | None
    received_at: dt.datetime


def suppressed_domain(settings: Settings, sender: str) -> bool:
    domain = sender.rpartition("@")[2].lower().rstrip(".")
    return any(
        domain == d or domain.endswith("." + d)
        for d in (x.lower().strip().rstrip(".") for x in settings.receipts.exclude_domains)
    )


def from_address(settings: Settings) -> str:
    return settings.receipts.from_address or f"postmaster@{settings.gateway.hostname}"


async def queue_notice(
    session: AsyncSession,
    settings: Settings,
    original: Message,
    kind: str,
    detail: dict[str, Any],
) -> int | None:
    """Enqueue a `kind` notice about `original` to its envelope sender; None when suppressed."""
    if kind not in KINDS:
        raise ValueError(f"unknown receipt kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not settings.receipts.enabled:
        return None
    row = (
        await session.execute(
            select(
                Message.id,
                Message.source,
                Message.mail_from,
                Message.subject,
                Message.header_message_id,
                Message.received_at,
            ).where(Message.id == original.id)
        )
    ).one()
    orig = _Original(**row._asdict())
    if not orig.mail_from or orig.source == INTERNAL or suppressed_domain(settings, orig.mail_from):
        return None
    if auto_kind(await message_headers(session, orig.id)):
        return None
    docs = (
        (await session.execute(select(Document).where(Document.message_id == orig.id)))
        .scalars()
        .all()
    )
    deliveries = (
        (
            await session.execute(
                select(Delivery).where(Delivery.message_id == orig.id).order_by(Delivery.id)
            )
        )
        .scalars()
        .all()
    )
    status_xml = None
    if kind in EDXML_STATUS and any(d.detected_type == "edxml" for d in docs):
        status_xml = edxml_status(
            await message_raw(session, orig.id), settings, kind, _reason(detail)
        )
    now = dt.datetime.now(dt.UTC)
    payload = _json_part(settings, orig, kind, detail, docs, deliveries, now)
    text = _text_part(settings, orig, kind, detail, docs, deliveries)
    entity = _entity(text, payload, status_xml)
    cert, key = settings.receipts.sign_cert, settings.receipts.sign_key
    if cert and key:
        entity = sign_entity(entity, Path(cert), Path(key))
    sender = from_address(settings)
    subject = f"{KINDS[kind][0]}: {orig.subject or '(không có tiêu đề)'}"
    msgid = new_message_id(settings.gateway.hostname)
    head = [
        address_header("From", "Hệ thống chuyển văn bản điện tử", sender),
        header("To", f"<{orig.mail_from}>"),
        header("Subject", subject),
        header("Date", format_datetime(now)),
        header("Message-ID", msgid),
        header("Auto-Submitted", "auto-replied"),
        header("X-Edocgw-Notice", kind),
        header("X-Edocgw-Ref", edocgw_id(orig.id, settings.gateway.hostname)),
    ]
    if orig.header_message_id:
        head += [
            header("In-Reply-To", orig.header_message_id),
            header("References", orig.header_message_id),
        ]
    notice = Notice(
        kind=f"receipt/{kind}",
        raw=b"".join(head) + entity,
        recipients=(orig.mail_from,),
        header_message_id=msgid,
        header_from=sender,
        subject=subject,
    )
    return await enqueue(session, notice, about=orig.id)


def _reason(detail: dict[str, Any]) -> str | None:
    for key in ("reason", "reply", "error"):
        if detail.get(key):
            return str(detail[key])
    return None


def _doc_dict(d: Document) -> dict[str, Any]:
    return {
        "filename": d.filename,
        "kind": d.kind,
        "number": d.number,
        "notation": d.notation,
        "verdict": d.verdict,
    }


def _json_part(
    settings: Settings,
    orig: _Original,
    kind: str,
    detail: dict[str, Any],
    docs: Any,
    deliveries: Any,
    now: dt.datetime,
) -> bytes:
    data = {
        "type": "edocgw-receipt",
        "version": 1,
        "kind": kind,
        "time": now.isoformat(),
        "gateway": settings.gateway.hostname,
        "message_id": orig.header_message_id,
        "x_edocgw_id": edocgw_id(orig.id, settings.gateway.hostname),
        "edocgw_message": orig.id,
        "received_at": orig.received_at.isoformat(),
        "subject": orig.subject,
        "documents": [_doc_dict(d) for d in docs],
        "destinations": [
            {
                "recipient": d.recipient,
                "agency": d.agency_code,
                "state": d.state,
                "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
            }
            for d in deliveries
        ],
        "detail": detail,
    }
    return json.dumps(data, ensure_ascii=False, indent=2, default=str).encode()


def _text_part(
    settings: Settings,
    orig: _Original,
    kind: str,
    detail: dict[str, Any],
    docs: Any,
    deliveries: Any,
) -> str:
    when = orig.received_at.astimezone(VN_TIME).strftime("%H:%M ngày %d/%m/%Y")
    lines = [
        f"Kính gửi: {orig.mail_from}",
        "",
        KINDS[kind][1],
        "",
        "Thông tin thư:",
        f"  - Tiêu đề: {orig.subject or '(không có)'}",
        f"  - Message-ID: {orig.header_message_id or '(không có)'}",
        f"  - Thời điểm hệ thống nhận: {when} (giờ Việt Nam)",
        f"  - Mã theo dõi (X-Edocgw-Id): {edocgw_id(orig.id, settings.gateway.hostname)}",
    ]
    if docs:
        lines += ["", "Văn bản:"]
        for d in docs:
            ref = "/".join(x for x in (d.number, d.notation) if x) or "(chưa rõ số, ký hiệu)"
            lines.append(
                f"  - Số, ký hiệu {ref} — {d.kind or 'văn bản'} ({d.filename or d.part_path})"
            )
    focus = detail.get("recipient")
    shown = [d for d in deliveries if not focus or d.recipient == focus]
    if shown:
        lines += ["", "Nơi nhận:"]
        for d in shown:
            agency = f" ({d.agency_code})" if d.agency_code else ""
            lines.append(f"  - {d.recipient}{agency}: {STATE_VI.get(d.state, d.state)}")
    reason = _reason(detail)
    if reason:
        lines += ["", f"Chi tiết: {reason}"]
    lines += [
        "",
        "Đây là thư tự động của hệ thống chuyển văn bản điện tử "
        f"{settings.gateway.hostname}; xin đừng trả lời thư này.",
    ]
    return "\n".join(lines) + "\n"


def _entity(text: str, payload: bytes, status_xml: bytes | None) -> bytes:
    outer = MIMEMultipart("mixed")
    outer.attach(MIMEText(text, "plain", "utf-8"))
    js = MIMEApplication(payload, "json")
    js.add_header("Content-Disposition", "attachment", filename="bien-nhan.json")
    outer.attach(js)
    if status_xml is not None:
        xml = MIMEApplication(status_xml, "xml")
        xml.add_header("Content-Disposition", "attachment", filename="trang-thai.edxml")
        outer.attach(xml)
    buf = io.BytesIO()
    email.generator.BytesGenerator(buf, policy=email.policy.SMTP).flatten(outer)  # type: ignore[arg-type]
    return buf.getvalue()


def edxml_status(raw: bytes, settings: Settings, kind: str, reason: str | None) -> bytes | None:
    """An edXML status package answering the edXML document in `raw` (None if unreadable)."""
    from mailparse import parse
    from mailparse.edxml import (
        EdxmlError,
        Organ,
        ResponseFor,
        StaffInfo,
        StatusPackage,
        read_package,
        write_status,
    )

    pkg = None
    stack = list(parse(raw).attachments)
    while stack and pkg is None:
        att = stack.pop(0)
        if att.detected_type == "edxml":
            try:
                pkg = read_package(att.data)
            except EdxmlError:
                pkg = None
        stack.extend(getattr(att, "children", None) or [])
    if pkg is None:
        return None
    code = "/".join(x for x in (pkg.code_number, pkg.code_notation) if x) or None
    rs = settings.receipts
    status = StatusPackage(
        response_for=ResponseFor(
            organ_id=pkg.from_code,
            code=code,
            promulgation_date=pkg.promulgation_date,
            document_id=pkg.document_id,
        ),
        from_organ=Organ(
            code=rs.organ_code or None,
            name=rs.organ_name or settings.gateway.hostname,
            email=from_address(settings),
        ),
        staff_info=StaffInfo(department="Hệ thống chuyển văn bản điện tử"),
        status_code=EDXML_STATUS[kind],
        description=reason or KINDS[kind][1],
        timestamp=dt.datetime.now(VN_TIME).replace(tzinfo=None),
    )
    return write_status(status)


# -- S/MIME signing -------------------------------------------------------------------------

_KEYS: dict[tuple[str, str], tuple[bytes, bytes]] = {}


def _key_material(cert: Path, key: Path) -> tuple[bytes, bytes]:
    """The PEM files, read once (they are small; later calls do no I/O)."""
    k = (str(cert), str(key))
    if k not in _KEYS:
        _KEYS[k] = (cert.read_bytes(), key.read_bytes())
    return _KEYS[k]


def sign_entity(entity: bytes, cert: Path, key: Path) -> bytes:
    """The MIME entity wrapped in `multipart/signed` (S/MIME, detached, SHA-256)."""
    cert_pem, key_pem = _key_material(cert, key)
    return sign_smime(entity, cert_pem, key_pem)
