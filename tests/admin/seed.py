"""A small, realistic delivery log written straight into the tables (as the pipeline and the
delivery workers would leave it): messages in every state, documents with facts, signatures,
deliveries in every state with their attempt events, receipts."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from email.message import EmailMessage

from sqlalchemy import update

from store import agencies, users
from store.db import Database
from store.events import append_event
from store.models import Delivery, Document, Message, Signature

ADMIN, ADMIN_PW = "quantri", "mat-khau-quan-tri"
CLERK, CLERK_PW = "vanthu", "mat-khau-van-thu"
H53, G22, H17 = "000.00.00.H53", "000.00.00.G22", "000.00.00.H17"


@dataclass
class Seeded:
    ids: dict[str, int] = field(default_factory=dict)  # message ids by name
    deliveries: dict[str, int] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict)


def mail(subject: str, sender: str, to: str, body: str, msgid: str) -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m["Message-ID"] = msgid
    m.set_content(body)
    return bytes(m)


async def seed(db: Database) -> Seeded:
    # The seed's own clock, not the import's: in a suite that ran past 15 minutes (a busy
    # machine), deliveries "due in 15 minutes" were due already and the service retried them.
    now = dt.datetime.now(dt.UTC)
    out = Seeded()
    async with db.transaction() as s:
        await users.add_user(s, ADMIN, ADMIN_PW, ["admin"])
        await users.add_user(s, CLERK, CLERK_PW, ["submit"])
        for code, name, addr in (
            (H53, "Ủy ban nhân dân tỉnh Tây Ninh", "vanthu@tayninh.gov.vn"),
            (G22, "Văn phòng Chính phủ", "vanthu@chinhphu.vn"),
            (H17, "Ủy ban nhân dân tỉnh Hòa Bình", "vanthu@hoabinh.gov.vn"),
        ):
            await agencies.upsert_agency(
                s, agencies.AgencyIn(code=code, name=name, address=addr).validate()
            )

    async def message(
        name: str,
        *,
        subject: str,
        sender: str,
        state: str,
        verdict: str | None,
        ago: dt.timedelta,
        rcpt: str = "vanban@localhost",
        urgency: str | None = None,
    ) -> int:
        raw = mail(subject, sender, rcpt, f"Kính gửi: các cơ quan.\n{subject}\n", f"<{name}@test>")
        async with db.transaction() as s:
            m = Message(
                received_at=now - ago,
                source="smtp",
                peer="127.0.0.1",
                mail_from=sender,
                rcpt_to=[rcpt],
                header_message_id=f"<{name}@test>",
                header_from=sender,
                subject=subject,
                size=len(raw),
                sha256=hashlib.sha256(raw).hexdigest(),
                raw=raw,
                state=state,
                verdict=verdict,
                urgency=urgency,
            )
            s.add(m)
            await s.flush()
            await append_event(s, "received", message_id=m.id, detail={"source": "smtp"})
            await append_event(s, "parsed", message_id=m.id, detail={"attachments": 1})
        out.ids[name], out.raw[name] = m.id, raw
        return m.id

    async def document(
        mid: int,
        filename: str,
        verdict: str,
        *,
        e_document: dict[str, object] | None = None,
        **facts: object,
    ) -> int:
        async with db.transaction() as s:
            d = Document(
                message_id=mid,
                e_document=e_document,
                part_path="2",
                filename=filename,
                declared_type="application/pdf",
                detected_type="pdf",
                size=1234,
                sha256="ab" * 32,
                verdict=verdict,
                sources={k: "text" for k in facts},
                **facts,
            )
            s.add(d)
            await s.flush()
            await append_event(s, "classified", message_id=mid, detail={"document": d.id})
            return d.id

    async def signature(mid: int, doc: int, verdict: str, reason: str | None, cn: str) -> None:
        async with db.transaction() as s:
            s.add(
                Signature(
                    message_id=mid,
                    document_id=doc,
                    format="pades",
                    verdict=verdict,
                    reason=reason,
                    signer_cn=cn,
                    signer_o="Văn phòng Chính phủ",
                    signer_uid="CCCD:001099012345",
                    serial="1f2e3d",
                    issuer_cn="CA phục vụ các cơ quan Nhà nước",
                    signing_time=now - dt.timedelta(days=1),
                    signing_time_source="self-reported",
                    covers_whole_file=True,
                    detail="chữ ký hợp lệ" if verdict == "valid" else "nội dung đã bị sửa",
                )
            )
            await append_event(s, "verified", message_id=mid, detail={"verdict": verdict})

    async def delivery(
        name: str,
        mid: int,
        code: str | None,
        recipient: str,
        state: str,
        attempts: list[tuple[int, str]],
        priority: int = 0,
    ) -> int:
        async with db.transaction() as s:
            d = Delivery(
                message_id=mid,
                recipient=recipient,
                agency_code=code,
                state=state,
                priority=priority,
                attempts=len(attempts),
                last_reply_code=attempts[-1][0] if attempts else None,
                last_reply=attempts[-1][1] if attempts else None,
                delivered_at=now - dt.timedelta(minutes=1) if state == "delivered" else None,
                next_attempt_at=now + dt.timedelta(minutes=15),
            )
            s.add(d)
            await s.flush()
            await append_event(
                s, "routed", message_id=mid, delivery_id=d.id, detail={"rule": "edxml"}
            )
            for code_, text in attempts:
                await append_event(
                    s,
                    "attempt",
                    message_id=mid,
                    delivery_id=d.id,
                    detail={
                        "reply_code": code_,
                        "reply": text,
                        "mx": "mx." + recipient.split("@")[1],
                    },
                )
            if state in ("delivered", "deferred", "bounced"):
                await append_event(s, state, message_id=mid, delivery_id=d.id, detail={})
        out.deliveries[name] = d.id
        return d.id

    # 1. A Chỉ thị of the Prime Minister, signed, delivered to the Government Office.
    mid = await message(
        "chithi",
        subject="Chỉ thị 15/CT-TTg về tăng cường công tác chuyển đổi số",
        sender="vanthu@chinhphu.vn",
        state="processed",
        verdict="valid",
        ago=dt.timedelta(hours=3),
        urgency="Khẩn",
    )
    doc = await document(
        mid,
        "15-CT-TTg.pdf",
        "valid",
        kind="Chỉ thị",
        kind_abbr="CT",
        number="15",
        notation="CT-TTg",
        issuer="Thủ tướng Chính phủ",
        place="Hà Nội",
        doc_date=dt.date(2024, 5, 22),
        subject="Về tăng cường công tác chuyển đổi số",
        signer="Phạm Minh Chính",
        urgency="Khẩn",
        recipients=["Văn phòng Chính phủ"],
        agency_codes=[G22],
    )
    await signature(mid, doc, "valid", None, "Phạm Minh Chính")
    await delivery(
        "chithi-g22",
        mid,
        G22,
        "vanthu@chinhphu.vn",
        "delivered",
        [(250, "2.0.0 Ok: queued as A1")],
        1,
    )
    async with db.transaction() as s:
        await append_event(
            s,
            "receipt_sent",
            message_id=mid,
            detail={"type": "delivery", "to": "vanthu@chinhphu.vn"},
        )

    # 2. A Công văn to Tây Ninh whose server keeps answering 421: deferred.
    mid = await message(
        "congvan",
        subject="V/v triển khai phần mềm quản lý văn bản",
        sender="vanthu@hoabinh.gov.vn",
        state="processed",
        verdict="invalid",
        ago=dt.timedelta(minutes=50),
    )
    doc = await document(
        mid,
        "123-UBND-VP.pdf",
        "invalid",
        kind="Công văn",
        number="123",
        notation="UBND-VP",
        issuer="UBND tỉnh Hòa Bình",
        recipients=["UBND tỉnh Tây Ninh"],
        agency_codes=[H53],
        e_document={
            "conformant": False,
            "personal_signer": "Nguyễn Văn An",
            "organisation_signer": None,
            "problems": ["signature_not_valid", "no_organisation_signature"],
        },
    )
    await signature(mid, doc, "invalid", "digest_mismatch", "Nguyễn Văn An")
    await delivery(
        "congvan-h53",
        mid,
        H53,
        "vanthu@tayninh.gov.vn",
        "deferred",
        [(421, "4.7.0 Try again later"), (421, "4.7.0 Try again later")],
    )

    # 3. A Giấy mời nobody could route: held, no deliveries.
    mid = await message(
        "giaymoi",
        subject="Giấy mời họp trực tuyến",
        sender="phongtc@localhost",
        state="held",
        verdict="unsigned",
        ago=dt.timedelta(minutes=20),
    )
    await document(
        mid,
        "giay-moi.pdf",
        "unsigned",
        kind="Giấy mời",
        kind_abbr="GM",
        number="07",
        notation="GM-STC",
        recipients=["Sở Tài chính tỉnh Long An"],
    )
    async with db.transaction() as s:
        await append_event(s, "held", message_id=mid, detail={"reason": "no destination"})

    # 4. A Mật document: quarantined.
    mid = await message(
        "mat",
        subject="Báo cáo tình hình an ninh (MẬT)",
        sender="vanthu@hoabinh.gov.vn",
        state="quarantined",
        verdict="valid",
        ago=dt.timedelta(minutes=5),
    )
    await document(
        mid, "bao-cao.pdf", "valid", kind="Báo cáo", kind_abbr="BC", number="02", notation="BC-CA",
        secrecy="Mật",
    )  # fmt: skip
    async with db.transaction() as s:
        await append_event(s, "quarantined", message_id=mid, detail={"reason": "secrecy: Mật"})

    # 5. A relay message bounced by Hòa Bình, plus one queued to Tây Ninh.
    mid = await message(
        "thongbao",
        subject="Thông báo kết luận cuộc họp",
        sender="vanthu@chinhphu.vn",
        state="processed",
        verdict="unsigned",
        ago=dt.timedelta(days=2),
    )
    await delivery(
        "thongbao-h17",
        mid,
        H17,
        "vanthu@hoabinh.gov.vn",
        "bounced",
        [(550, "5.1.1 User unknown")],
    )
    await delivery("thongbao-h53", mid, H53, "vanthu@tayninh.gov.vn", "queued", [])
    async with db.transaction() as s:
        await s.execute(
            update(Delivery)
            .where(Delivery.id == out.deliveries["thongbao-h53"])
            .values(next_attempt_at=now)
        )
    return out
