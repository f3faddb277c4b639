"""The edXML bridge (issue 15): what an `edxml` agency receives instead of the original mail.

A mail carrying one edXML package (QCVN 102:2016, explicit `edXML:` prefix) built from the
stored message and its documents' facts: From/OrganId the sending agency (the registered
agency whose inbox or domain sent the mail, else `[gateway] agency_code`), To/OrganId the
destination, Code, PromulgationInfo, DocumentType, Subject, SignerInfo and OtherInfo/Priority
from the facts, and every original attachment, byte for byte, in AttachmentEncoded. With
`[receipts] sign_cert/sign_key` the package is XMLDSig-signed by the gateway.

It is built on the delivery's first attempt and stored (`store.edxml_packages`); retries send
the stored bytes, so the receiver sees one package (one DocumentId, one signature) however
often it is offered. The mail's own header block is stable too; the delivery service puts the
usual trace headers (same X-Edocgw-Id) in front.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.policy
import hashlib
import re
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path

from config import Settings
from gateway.delivery.trace import edocgw_id
from mailparse import parse
from mailparse.edxml import (
    PRIORITY_URGENCY,
    EdxmlAttachment,
    EdxmlError,
    EdxmlPackage,
    Organ,
    read_package,
    write_package,
)
from signing.xmlsign import sign_xml_enveloped
from store import edxml_packages as repo
from store.db import Database
from store.deliveries import ClaimedDelivery
from store.edxml_packages import PackageSource
from store.models import Document

COMPETENCE = ("TM.", "Q.", "KT.", "TL.", "TUQ.")
_URGENCY_PRIORITY = {v: k for k, v in PRIORITY_URGENCY.items() if v}
_UNSAFE = re.compile(r"[^0-9A-Za-z.\-]+")


async def package_mail(db: Database, settings: Settings, d: ClaimedDelivery) -> bytes:
    """The edXML mail for delivery `d`: the stored one, else built now and stored."""
    async with db.transaction() as s:
        stored = await repo.stored_package(s, d.id)
    if stored is not None:
        return stored
    async with db.transaction() as s:
        src = await repo.package_source(s, d.message_id, d.agency_code)
    document_id, data = await asyncio.to_thread(build_mail, src, settings, d.recipient)
    async with db.transaction() as s:
        return await repo.store_package(s, d.id, d.message_id, document_id, data)


def build_mail(src: PackageSource, settings: Settings, recipient: str) -> tuple[str, bytes]:
    """(DocumentId, the complete mail) — synchronous: parsing and signing are CPU work."""
    pkg = build_package(src, settings)
    xml = write_package(pkg)
    r = settings.receipts
    if r.sign_cert and r.sign_key:
        xml = sign_xml_enveloped(
            xml, Path(r.sign_cert).read_bytes(), Path(r.sign_key).read_bytes(), "edXMLHeader"
        )
    return pkg.document_id or "", _mail(src, settings, recipient, pkg, xml)


def build_package(src: PackageSource, settings: Settings) -> EdxmlPackage:
    parsed = parse(src.raw)
    original = _original_package(parsed.all_attachments())
    docs = {doc.part_path: doc for doc in src.documents}
    main = _main_document(src.documents)
    sender_code = (
        (src.sender.code if src.sender else None)
        or settings.gateway.agency_code
        or (original.from_code if original else None)
        or settings.receipts.organ_code
        or ""
    )
    sender_name = (
        (src.sender.name if src.sender else (main.issuer if main is not None else None))
        or settings.receipts.organ_name
        or None
    )
    f = main
    number = f.number if f is not None else None
    notation = f.notation if f is not None else None
    if notation and f is not None and f.year:
        notation = f"{f.year}/{notation}"
    doc_date = f.doc_date if f is not None else None
    competence, position, name = _signer(f)
    urgency = (f.urgency if f is not None else None) or src.urgency
    pkg = EdxmlPackage(
        from_organ=Organ(code=sender_code, name=sender_name),
        to=[
            Organ(
                code=src.destination.code,
                name=src.destination.name,
                email=src.destination.address,
            )
        ]
        if src.destination
        else [],
        code_number=number,
        code_notation=notation,
        place=f.place if f is not None else None,
        promulgation_date=doc_date,
        type_code=f.kind_abbr if f is not None else None,
        type_name=f.kind if f is not None else None,
        subject=(f.subject if f is not None else None) or src.subject,
        signer_competence=competence,
        signer_position=position,
        signer_full_name=name,
        priority=_URGENCY_PRIORITY.get(urgency or "", 0),
    )
    pkg.document_id = (original.document_id if original else None) or _document_id(
        sender_code, doc_date, number, notation, src
    )
    for i, att in enumerate(parsed.attachments, start=1):
        doc = docs.get(att.part_path)
        pkg.attachments.append(
            EdxmlAttachment(
                content_id=f"cid:{i:03d}.{src.message_id}@edocgw",
                name=att.filename or (doc.filename if doc else None) or f"tep-{i}",
                content_type=att.declared_type or "application/octet-stream",
                data=att.data,
            )
        )
    return pkg


def _original_package(atts: Sequence[object]) -> EdxmlPackage | None:
    """The edXML package the original mail carried, if any (its DocumentId is kept)."""
    for att in atts:
        if getattr(att, "detected_type", None) == "edxml":
            try:
                return read_package(att.data)  # type: ignore[attr-defined]
            except EdxmlError:
                continue
    return None


def _main_document(docs: Sequence[Document]) -> Document | None:
    """The document the package describes: the one with the most facts (first on a tie)."""
    if not docs:
        return None

    def score(doc: Document) -> int:
        return sum(
            1
            for v in (doc.kind, doc.number, doc.notation, doc.doc_date, doc.subject, doc.signer)
            if v
        )

    return max(docs, key=lambda doc: (score(doc), -doc.id))


def _signer(doc: Document | None) -> tuple[str | None, str | None, str | None]:
    """Competence, position and name of the signer as the reading stored them; rows stored
    before they were kept apart hold `"KT. CHỦ TỊCH, PHÓ CHỦ TỊCH, Nguyễn Văn A"` in one."""
    if doc is None or not doc.signer:
        return None, None, None
    if doc.signer_position or doc.signer_competence or "," not in doc.signer:
        return doc.signer_competence, doc.signer_position, doc.signer
    parts = [p.strip() for p in doc.signer.split(",") if p.strip()]
    competence = parts.pop(0) if parts and parts[0].upper().startswith(COMPETENCE) else None
    name = parts.pop() if parts else None
    return competence, ", ".join(parts) or None, name


def _document_id(
    sender: str,
    day: dt.date | None,
    number: str | None,
    notation: str | None,
    src: PackageSource,
) -> str:
    """`<sender code>,<YYYY/MM/DD>,<number>/<notation>` (QCVN 102); a document without a
    number gets the gateway's own reference in its place, so the id is still unique."""
    when = day or dt.datetime.fromisoformat(src.received_at_iso).date()
    code = "/".join(x for x in (number, notation) if x) or f"EDOCGW-{src.message_id}"
    return f"{sender},{when.strftime('%Y/%m/%d')},{code}"


def _filename(pkg: EdxmlPackage) -> str:
    stem = _UNSAFE.sub("-", "-".join(x for x in (pkg.code_number, pkg.code_notation) if x))
    return f"{stem.strip('-') or 'vanban'}.edxml"


def _mail(
    src: PackageSource, settings: Settings, recipient: str, pkg: EdxmlPackage, xml: bytes
) -> bytes:
    hostname = settings.gateway.hostname
    sender = settings.receipts.from_address or f"postmaster@{hostname}"
    m = EmailMessage(policy=email.policy.SMTP)
    m["From"] = sender
    m["To"] = recipient
    original_from = parseaddr(src.header_from or "")[1] or src.mail_from
    if original_from:
        m["Reply-To"] = original_from
    m["Subject"] = pkg.subject or src.subject or "Văn bản điện tử"
    m["Date"] = format_datetime(dt.datetime.fromisoformat(src.received_at_iso).astimezone(dt.UTC))
    digest = hashlib.sha256(f"{recipient}\0{pkg.document_id}".encode()).hexdigest()[:16]
    m["Message-ID"] = f"<edxml.{digest}.{edocgw_id(src.message_id, hostname)}>"
    m.set_content(
        "Gói tin edXML (QCVN 102:2016/BTTTT) của văn bản điện tử được đính kèm thư này.\n"
        f"Mã văn bản (DocumentId): {pkg.document_id}\n"
    )
    m.add_attachment(xml, maintype="application", subtype="xml", filename=_filename(pkg))
    return m.as_bytes()
