"""Receipts to senders (Decree 30/2020: tell the sender the same day what became of a document).

`queue_notice` writes a notice into the outgoing queue inside the caller's transaction, so a
receipt exists exactly when the state change it reports commits. A notice has Vietnamese text
for people, a JSON part for programs, and for edXML senders an edXML status package (01 on
arrival, 02 on refusal); it is S/MIME-signed when the gateway has a key. Receipts are never
sent to a null sender, about the gateway's own mail, bounces or other automatic mail, nor when
switched off (globally or for the sender's domain).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Protocol

from config import Settings
from gateway.delivery.trace import edocgw_id
from gateway.notices.outbound import (
    INTERNAL,
    Notice,
    address_header,
    auto_kind,
    enqueue_many,
    header,
    new_message_id,
)
from mailparse.headers import MAX_HEADER_BLOCK, header_block
from signing.sign import sign_smime
from store.db import Transaction
from store.notices import (
    NoticeDestination,
    NoticeDocument,
    NoticeOriginal,
    notice_destinations,
    notice_documents,
    notice_originals,
)

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


def suppressed_domain(settings: Settings, sender: str) -> bool:
    domain = sender.rpartition("@")[2].lower().rstrip(".")
    return any(
        domain == d or domain.endswith("." + d)
        for d in (x.lower().strip().rstrip(".") for x in settings.receipts.exclude_domains)
    )


def from_address(settings: Settings) -> str:
    return settings.receipts.from_address or f"postmaster@{settings.gateway.hostname}"


@dataclass(frozen=True)
class NoticeRequest:
    """One notice to queue: `kind` about the message `message_id`."""

    message_id: int
    kind: str
    detail: dict[str, Any]


class HasId(Protocol):
    """The message a notice is about: anything that knows its id."""

    @property
    def id(self) -> int: ...


async def queue_notice(
    session: Transaction,
    settings: Settings,
    original: HasId,
    kind: str,
    detail: dict[str, Any],
) -> int | None:
    """Enqueue a `kind` notice about `original` to its envelope sender; None when suppressed."""
    return (await queue_notices(session, settings, [NoticeRequest(original.id, kind, detail)]))[0]


async def queue_notices(
    session: Transaction, settings: Settings, items: Sequence[NoticeRequest]
) -> list[int | None]:
    """`queue_notice` for many at once: three reads for the whole batch and one write, so
    receipts cost a batch a few statements rather than each message nine. Returns, per
    item, the notice's message id or None when it is suppressed."""
    for it in items:
        if it.kind not in KINDS:
            raise ValueError(
                f"unknown receipt kind {it.kind!r}; expected one of {', '.join(KINDS)}"
            )
    out: list[int | None] = [None] * len(items)
    if not settings.receipts.enabled or not items:
        return out
    ids = sorted({it.message_id for it in items})
    originals: dict[int, NoticeOriginal] = {}
    for orig in await notice_originals(session, ids, MAX_HEADER_BLOCK):
        if not orig.mail_from or orig.source == INTERNAL:
            continue
        if suppressed_domain(settings, orig.mail_from) or auto_kind(header_block(orig.head)):
            continue
        originals[orig.id] = orig
    if not originals:
        return out
    wanted = list(originals)
    docs = await notice_documents(session, wanted)
    deliveries = await notice_destinations(session, wanted)
    jobs: list[tuple[int, NoticeOriginal, NoticeRequest, bytes | None]] = []
    for i, it in enumerate(items):
        found = originals.get(it.message_id)
        if found is None:
            continue
        status_xml = None
        if it.kind in EDXML_STATUS and found.edxml_ref is not None:
            status_xml = edxml_status(found.edxml_ref, settings, it.kind, _reason(it.detail))
        jobs.append((i, found, it, status_xml))

    def build_all() -> list[tuple[int, Notice]]:
        return [
            (i, _build(settings, o, it.kind, it.detail, docs[o.id], deliveries[o.id], xml))
            for i, o, it, xml in jobs
        ]

    # S/MIME signing is RSA/ECDSA work (~1 ms a receipt, and the key files are read once):
    # with a key configured, the batch is built in a thread so the event loop keeps moving.
    signs = bool(settings.receipts.sign_cert and settings.receipts.sign_key)
    built = await asyncio.to_thread(build_all) if signs and jobs else build_all()
    new_ids = await enqueue_many(session, [(n, items[i].message_id) for i, n in built])
    for (i, _), new_id in zip(built, new_ids, strict=True):
        out[i] = new_id
    return out


def _build(
    settings: Settings,
    orig: NoticeOriginal,
    kind: str,
    detail: dict[str, Any],
    docs: Sequence[NoticeDocument],
    deliveries: Sequence[NoticeDestination],
    status_xml: bytes | None,
) -> Notice:
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
    return Notice(
        kind=f"receipt/{kind}",
        raw=b"".join(head) + entity,
        recipients=(orig.mail_from,),
        header_message_id=msgid,
        header_from=sender,
        subject=subject,
    )


def _reason(detail: dict[str, Any]) -> str | None:
    for key in ("reason", "reply", "error"):
        if detail.get(key):
            return str(detail[key])
    return None


def _doc_dict(d: NoticeDocument) -> dict[str, Any]:
    return {
        "filename": d.filename,
        "kind": d.kind,
        "number": d.number,
        "notation": d.notation,
        "verdict": d.verdict,
    }


def _json_part(
    settings: Settings,
    orig: NoticeOriginal,
    kind: str,
    detail: dict[str, Any],
    docs: Sequence[NoticeDocument],
    deliveries: Sequence[NoticeDestination],
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
    orig: NoticeOriginal,
    kind: str,
    detail: dict[str, Any],
    docs: Sequence[NoticeDocument],
    deliveries: Sequence[NoticeDestination],
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
        for dest in shown:
            agency = f" ({dest.agency_code})" if dest.agency_code else ""
            lines.append(f"  - {dest.recipient}{agency}: {STATE_VI.get(dest.state, dest.state)}")
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
    """multipart/mixed of the text, the JSON and the edXML status, each part base64 with
    CRLF lines (written directly: `email.generator` was most of a receipt's CPU)."""
    boundary = f"=_edocgw_{secrets.token_hex(12)}"
    parts = [
        _part(b'text/plain; charset="utf-8"', text.encode(), None),
        _part(b"application/json", payload, "bien-nhan.json"),
    ]
    if status_xml is not None:
        parts.append(_part(b"application/xml", status_xml, "trang-thai.edxml"))
    sep = b"--" + boundary.encode()
    return (
        b'Content-Type: multipart/mixed; boundary="' + boundary.encode() + b'"\r\n'
        b"MIME-Version: 1.0\r\n\r\n"
        + b"".join(sep + b"\r\n" + part for part in parts)
        + sep
        + b"--\r\n"
    )


def _part(content_type: bytes, data: bytes, filename: str | None) -> bytes:
    head = b"Content-Type: " + content_type + b"\r\nMIME-Version: 1.0\r\n"
    head += b"Content-Transfer-Encoding: base64\r\n"
    if filename is not None:
        head += f'Content-Disposition: attachment; filename="{filename}"\r\n'.encode("ascii")
    body = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return head + b"\r\n" + body


def edxml_status(ref: dict[str, Any], settings: Settings, kind: str, reason: str | None) -> bytes:
    """An edXML status package answering the edXML document the pipeline found in the
    message (`ref`, stored with it as `messages.edxml_ref`)."""
    from mailparse.edxml import Organ, ResponseFor, StaffInfo, StatusPackage, write_status

    day = ref.get("promulgation_date")
    code = "/".join(x for x in (ref.get("code_number"), ref.get("code_notation")) if x) or None
    rs = settings.receipts
    status = StatusPackage(
        response_for=ResponseFor(
            organ_id=ref.get("from_code"),
            code=code,
            promulgation_date=dt.date.fromisoformat(day) if day else None,
            document_id=ref.get("document_id"),
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
