"""edXML document and status packages (QCVN 102:2016/BTTTT, amended 2022): read and write.

Reading is tolerant (elements matched by local name, status fields in either place, dates in
several forms); writing always uses the explicit ``edXML:`` prefix, as some receivers demand."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass, field

from lxml import etree

from .agency import LEGACY, STRICT
from .textenc import nfc

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
_P = f"{{{NS}}}"
_MAX_XML = 96 * 1024 * 1024

STATUS_CODES: dict[str, str] = {
    "01": "Đã đến",
    "02": "Từ chối tiếp nhận",
    "03": "Đã tiếp nhận",
    "04": "Phân công",
    "05": "Đang xử lý",
    "06": "Hoàn thành",
    "13": "Đề nghị lấy lại",
    "15": "Đồng ý lấy lại/cập nhật",
    "16": "Từ chối lấy lại/cập nhật",
}
PRIORITY_URGENCY: dict[int, str | None] = {
    0: None,
    1: "Khẩn",
    2: "Thượng khẩn",
    3: "Hỏa tốc",
    4: "Hỏa tốc hẹn giờ",
}


class EdxmlError(ValueError):
    """The bytes are not a readable edXML package."""


@dataclass
class Organ:
    """A sender or addressee (``From``/``To``)."""

    code: str | None = None
    name: str | None = None
    in_charge: str | None = None
    address: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


@dataclass
class EdxmlAttachment:
    content_id: str
    name: str | None
    content_type: str | None
    data: bytes
    description: str | None = None


@dataclass
class ResponseFor:
    organ_id: str | None = None
    code: str | None = None
    promulgation_date: dt.date | None = None
    document_id: str | None = None


@dataclass
class EdxmlPackage:
    """The header facts of a document package and its attachments."""

    from_organ: Organ | None = None
    to: list[Organ] = field(default_factory=list)
    document_id: str | None = None
    code_number: str | None = None
    code_notation: str | None = None
    place: str | None = None
    promulgation_date: dt.date | None = None
    type_code: str | None = None
    type_detail: str | None = None
    type_name: str | None = None
    subject: str | None = None
    content: str | None = None
    signer_competence: str | None = None
    signer_position: str | None = None
    signer_full_name: str | None = None
    due_date: dt.date | None = None
    priority: int | None = None
    other_info: dict[str, str] = field(default_factory=dict)
    steering_type: int | None = None
    to_places: list[str] = field(default_factory=list)
    response_for: list[ResponseFor] = field(default_factory=list)
    attachments: list[EdxmlAttachment] = field(default_factory=list)
    has_signature: bool = False
    flags: list[str] = field(default_factory=list)

    @property
    def from_code(self) -> str | None:
        return self.from_organ.code if self.from_organ else None

    @property
    def to_codes(self) -> list[str]:
        return [o.code for o in self.to if o.code]

    @property
    def urgency(self) -> str | None:
        return PRIORITY_URGENCY.get(self.priority) if self.priority is not None else None


@dataclass
class StaffInfo:
    department: str | None = None
    staff: str | None = None
    email: str | None = None
    mobile: str | None = None


@dataclass
class StatusPackage:
    """An answer about a document: arrived, refused, accepted, … (DESIGN §4.4)."""

    response_for: ResponseFor = field(default_factory=ResponseFor)
    from_organ: Organ | None = None
    staff_info: StaffInfo = field(default_factory=StaffInfo)
    status_code: str = "01"
    description: str | None = None
    timestamp: dt.datetime | None = None
    flags: list[str] = field(default_factory=list)

    @property
    def status_text(self) -> str | None:
        return STATUS_CODES.get(self.status_code)


# -- reading -------------------------------------------------------------------------------


def _load(data: bytes) -> etree._Element:
    if len(data) > _MAX_XML:
        raise EdxmlError("package too large")
    head = data[:65536]
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise EdxmlError("DTDs are not accepted in edXML")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=True,
        remove_comments=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise EdxmlError(f"not well-formed XML: {exc.msg}") from None
    if root is None or etree.QName(root).localname not in ("edXML", "edXMLEnvelope"):
        raise EdxmlError("root element is not edXML")
    return root


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _child(el: etree._Element | None, *names: str) -> etree._Element | None:
    """First descendant along a path of local names (namespace-agnostic)."""
    for name in names:
        if el is None:
            return None
        el = next((c for c in el if _local(c) == name), None)
    return el


def _children(el: etree._Element | None, name: str) -> list[etree._Element]:
    return [c for c in el if _local(c) == name] if el is not None else []


def _text(el: etree._Element | None, *names: str) -> str | None:
    node = _child(el, *names) if names else el
    if node is None or node.text is None:
        return None
    value = nfc(" ".join(node.text.split()))
    return value or None


def _find(root: etree._Element, name: str) -> etree._Element | None:
    return next((e for e in root.iter() if _local(e) == name), None)


def parse_date(value: str | None) -> dt.date | None:
    """``YYYY/MM/DD`` as the standard says; ``YYYY-MM-DD`` and ``DD/MM/YYYY`` tolerated."""
    if not value:
        return None
    value = value.strip().split(" ")[0].split("T")[0]
    for fmt in ("%Y/%m/%d", "%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y"):
        try:
            return dt.datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    return None


def _parse_timestamp(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    value = value.strip()
    for fmt in ("%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%d/%m/%Y %H:%M:%S"):
        try:
            return dt.datetime.strptime(value[:19], fmt)
        except ValueError:
            continue
    day = parse_date(value)
    return dt.datetime(day.year, day.month, day.day) if day else None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _organ(el: etree._Element | None, flags: list[str]) -> Organ | None:
    if el is None:
        return None
    organ = Organ(
        code=_text(el, "OrganId"),
        name=_text(el, "OrganName"),
        in_charge=_text(el, "OrganizationInCharge"),
        address=_text(el, "OrganAdd"),
        email=_text(el, "Email"),
        telephone=_text(el, "Telephone"),
        fax=_text(el, "Fax"),
        website=_text(el, "Website"),
    )
    if organ.code and not STRICT.match(organ.code):
        flags.append(
            f"legacy_agency_code:{organ.code}"
            if LEGACY.match(organ.code)
            else f"bad_agency_code:{organ.code}"
        )
    return organ


def _response_for(el: etree._Element | None) -> ResponseFor:
    return ResponseFor(
        organ_id=_text(el, "OrganId"),
        code=_text(el, "Code"),
        promulgation_date=parse_date(_text(el, "PromulgationDate")),
        document_id=_text(el, "DocumentId"),
    )


def read_package(data: bytes, *, attachments: bool = True) -> EdxmlPackage:
    """Read a document package; raises :class:`EdxmlError` when it is not edXML at all.
    ``attachments=False`` reads the header only (no base64 decoding of the files)."""
    root = _load(data)
    pkg = EdxmlPackage()
    header = _find(root, "MessageHeader")
    if header is None:
        pkg.flags.append("no_message_header")
    else:
        pkg.from_organ = _organ(_child(header, "From"), pkg.flags)
        pkg.to = [o for o in (_organ(t, pkg.flags) for t in _children(header, "To")) if o]
        pkg.document_id = _text(header, "DocumentId")
        pkg.code_number = _text(header, "Code", "CodeNumber")
        pkg.code_notation = _text(header, "Code", "CodeNotation")
        info = _child(header, "PromulgationInfo")
        pkg.place = _text(info, "Place")
        pkg.promulgation_date = parse_date(_text(info, "PromulgationDate") or _text(info, "Date"))
        pkg.type_code = _text(header, "DocumentType", "Type")
        pkg.type_detail = _text(header, "DocumentType", "TypeDetail")
        pkg.type_name = _text(header, "DocumentType", "TypeName")
        pkg.subject = _text(header, "Subject")
        pkg.content = _text(header, "Content")
        signer = _child(header, "SignerInfo")
        pkg.signer_competence = _text(signer, "Competence")
        pkg.signer_position = _text(signer, "Position")
        pkg.signer_full_name = _text(signer, "FullName")
        pkg.due_date = parse_date(_text(header, "DueDate"))
        other = _child(header, "OtherInfo")
        for item in other if other is not None else []:
            value = _text(item)
            if value is not None and _local(item):
                pkg.other_info[_local(item)] = value
        pkg.priority = _int(pkg.other_info.get("Priority"))
        pkg.steering_type = _int(_text(header, "SteeringType"))
        pkg.to_places = [
            p for p in (_text(e) for e in _children(_child(header, "ToPlaces"), "Place")) if p
        ]
        pkg.response_for = [_response_for(r) for r in _children(header, "ResponseFor")]
    pkg.has_signature = any(_local(e) == "Signature" for e in root.iter())
    if attachments:
        _read_attachments(root, pkg)
    return pkg


def _read_attachments(root: etree._Element, pkg: EdxmlPackage) -> None:
    refs: dict[str, etree._Element] = {}
    for ref in (e for e in root.iter() if _local(e) == "Reference"):
        cid = _text(ref, "ContentId")
        if cid:
            refs[cid] = ref
    for att in (e for e in root.iter() if _local(e) == "Attachment"):
        cid = _text(att, "ContentId") or ""
        encoded = _child(att, "ContentTransferEncoded")
        raw = "".join(encoded.itertext()) if encoded is not None else ""
        try:
            payload = base64.b64decode("".join(raw.split()), validate=False)
        except (binascii.Error, ValueError):
            pkg.flags.append(f"bad_attachment_encoding:{cid}")
            payload = b""
        ref = refs.get(cid)
        pkg.attachments.append(
            EdxmlAttachment(
                content_id=cid,
                name=_text(att, "AttachmentName") or _text(ref, "AttachmentName"),
                content_type=_text(att, "ContentType") or _text(ref, "ContentType"),
                data=payload,
                description=_text(ref, "Description"),
            )
        )
    found = {a.content_id for a in pkg.attachments}
    pkg.flags.extend(f"missing_attachment:{cid}" for cid in refs if cid not in found)


def read_status(data: bytes) -> StatusPackage:
    """Read a status package; the fields may sit in ``MessageHeader`` or in ``Status``."""
    root = _load(data)
    st = StatusPackage()
    holder = _find(root, "Status")
    if holder is None:
        holder = _find(root, "MessageHeader")
    if holder is None:
        raise EdxmlError("no Status or MessageHeader element")
    st.response_for = _response_for(_child(holder, "ResponseFor"))
    st.from_organ = _organ(_child(holder, "From"), st.flags)
    staff = _child(holder, "StaffInfo")
    st.staff_info = StaffInfo(
        department=_text(staff, "Department"),
        staff=_text(staff, "Staff"),
        email=_text(staff, "Email"),
        mobile=_text(staff, "Mobile"),
    )
    code = _text(holder, "StatusCode") or ""
    st.status_code = code.zfill(2) if code.isdigit() else code
    if st.status_code not in STATUS_CODES:
        st.flags.append(f"unknown_status_code:{code}")
    st.description = _text(holder, "Description")
    st.timestamp = _parse_timestamp(_text(holder, "Timestamp"))
    return st


# -- writing -------------------------------------------------------------------------------


def _el(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    node = etree.SubElement(parent, _P + name)
    if text is not None:
        node.text = text
    return node


def _date_str(value: dt.date | None) -> str | None:
    return value.strftime("%Y/%m/%d") if value else None


def _write_organ(parent: etree._Element, tag: str, organ: Organ) -> None:
    node = _el(parent, tag)
    for name, value in (
        ("OrganId", organ.code),
        ("OrganizationInCharge", organ.in_charge),
        ("OrganName", organ.name),
        ("OrganAdd", organ.address),
        ("Email", organ.email),
        ("Telephone", organ.telephone),
        ("Fax", organ.fax),
        ("Website", organ.website),
    ):
        if value is not None:
            _el(node, name, value)


def _write_response_for(parent: etree._Element, rf: ResponseFor) -> None:
    node = _el(parent, "ResponseFor")
    _el(node, "OrganId", rf.organ_id or "")
    _el(node, "Code", rf.code or "")
    _el(node, "PromulgationDate", _date_str(rf.promulgation_date) or "")
    _el(node, "DocumentId", rf.document_id or "")


def _envelope() -> tuple[etree._Element, etree._Element, etree._Element]:
    root = etree.Element(_P + "edXML", nsmap={"edXML": NS})
    env = _el(root, "edXMLEnvelope")
    header = _el(env, "edXMLHeader")
    return root, env, header


def _serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def write_package(pkg: EdxmlPackage) -> bytes:
    """Serialise a document package with attachments base64-encoded by ContentId."""
    root, env, header = _envelope()
    mh = _el(header, "MessageHeader")
    _write_organ(mh, "From", pkg.from_organ or Organ())
    for organ in pkg.to:
        _write_organ(mh, "To", organ)
    for rf in pkg.response_for:
        _write_response_for(mh, rf)
    _el(mh, "DocumentId", pkg.document_id or "")
    code = _el(mh, "Code")
    _el(code, "CodeNumber", pkg.code_number or "")
    _el(code, "CodeNotation", pkg.code_notation or "")
    info = _el(mh, "PromulgationInfo")
    _el(info, "Place", pkg.place or "")
    _el(info, "PromulgationDate", _date_str(pkg.promulgation_date) or "")
    dtype = _el(mh, "DocumentType")
    _el(dtype, "Type", pkg.type_code or "")
    if pkg.type_detail is not None:
        _el(dtype, "TypeDetail", pkg.type_detail)
    _el(dtype, "TypeName", pkg.type_name or "")
    _el(mh, "Subject", pkg.subject or "")
    if pkg.content is not None:
        _el(mh, "Content", pkg.content)
    signer = _el(mh, "SignerInfo")
    _el(signer, "Competence", pkg.signer_competence or "")
    _el(signer, "Position", pkg.signer_position or "")
    _el(signer, "FullName", pkg.signer_full_name or "")
    if pkg.due_date:
        _el(mh, "DueDate", _date_str(pkg.due_date))
    if pkg.to_places:
        places = _el(mh, "ToPlaces")
        for place in pkg.to_places:
            _el(places, "Place", place)
    other = _el(mh, "OtherInfo")
    info_items = dict(pkg.other_info)
    info_items["Priority"] = str(pkg.priority if pkg.priority is not None else 0)
    for name, value in info_items.items():
        _el(other, name, value)
    _el(mh, "SteeringType", str(pkg.steering_type if pkg.steering_type is not None else 0))
    body = _el(env, "edXMLBody")
    manifest = _el(body, "edXMLManifest")
    manifest.set("version", "1.0")
    encoded = _el(root, "AttachmentEncoded") if pkg.attachments else None
    for att in pkg.attachments:
        ref = _el(manifest, "Reference")
        _el(ref, "ContentId", att.content_id)
        _el(ref, "ContentType", att.content_type or "application/octet-stream")
        _el(ref, "AttachmentName", att.name or "")
        if att.description is not None:
            _el(ref, "Description", att.description)
        node = _el(encoded, "Attachment")  # type: ignore[arg-type]
        _el(node, "ContentId", att.content_id)
        _el(node, "AttachmentName", att.name or "")
        _el(node, "ContentType", att.content_type or "application/octet-stream")
        _el(node, "ContentTransferEncoded", base64.b64encode(att.data).decode("ascii"))
    return _serialise(root)


def write_status(st: StatusPackage) -> bytes:
    """Serialise a status package (fields under ``edXML:Status`` in the header)."""
    root, env, header = _envelope()
    status = _el(header, "Status")
    _write_response_for(status, st.response_for)
    _write_organ(status, "From", st.from_organ or Organ())
    staff = _el(status, "StaffInfo")
    _el(staff, "Department", st.staff_info.department or "")
    _el(staff, "Staff", st.staff_info.staff or "")
    _el(staff, "Email", st.staff_info.email or "")
    _el(staff, "Mobile", st.staff_info.mobile or "")
    _el(status, "StatusCode", st.status_code)
    _el(status, "Description", st.description or "")
    _el(status, "Timestamp", (st.timestamp or dt.datetime.now()).strftime("%Y/%m/%d %H:%M:%S"))
    _el(env, "edXMLBody")
    return _serialise(root)
