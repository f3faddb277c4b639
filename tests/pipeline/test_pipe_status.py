"""Issue 15 §2: which mail carries an edXML status package, and what it says (pure)."""

from __future__ import annotations

import datetime as dt
import email.policy
from email.message import EmailMessage

import pytest

from gateway.pipeline.status import find_status, status_summary
from mailparse import parse
from mailparse.edxml import Organ, ResponseFor, StatusPackage, write_status
from tests.support.corpus import by_key, make_edxml

DOC_ID = "000.00.00.H53,2024/03/05,15/CT-TTg"
NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"


def _mail(xml: bytes, *, as_body: bool = False, ctype: str = "application/xml") -> bytes:
    m = EmailMessage(policy=email.policy.SMTP)
    m["From"] = "vanban@lamdong.gov.vn"
    m["To"] = "vanthu@tayninh.gov.vn"
    m["Subject"] = "Trạng thái văn bản"
    main, sub = ctype.split("/")
    if as_body:
        m.set_content(xml, maintype=main, subtype=sub)
    else:
        m.set_content("Thông báo trạng thái.")
        m.add_attachment(xml, maintype=main, subtype=sub, filename="status.edxml")
    return m.as_bytes()


def _in_header(code: str, *, prefix: bool, description: str = "") -> bytes:
    p = "edXML:" if prefix else ""
    decl = f'xmlns:edXML="{NS}"' if prefix else f'xmlns="{NS}"'
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><{p}edXML {decl}><{p}edXMLEnvelope>'
        f"<{p}edXMLHeader><{p}MessageHeader><{p}ResponseFor><{p}DocumentId>{DOC_ID}"
        f"</{p}DocumentId></{p}ResponseFor><{p}From><{p}OrganId>000.00.00.H36</{p}OrganId>"
        f"</{p}From><{p}StatusCode>{code}</{p}StatusCode><{p}Description>{description}"
        f"</{p}Description><{p}Timestamp>2024/03/06 08:15:00</{p}Timestamp></{p}MessageHeader>"
        f"</{p}edXMLHeader></{p}edXMLEnvelope></{p}edXML>"
    ).encode()


def _status(code: str) -> bytes:
    return write_status(
        StatusPackage(
            response_for=ResponseFor(document_id=DOC_ID),
            from_organ=Organ(code="000.00.00.H36", name="UBND tỉnh Lâm Đồng"),
            status_code=code,
            description="Đã vào sổ",
            timestamp=dt.datetime(2024, 3, 6, 8, 0),
        )
    )


def _find(raw: bytes):
    return find_status(parse(raw).all_attachments())


@pytest.mark.parametrize(
    ("code", "meaning"),
    [("01", "arrived"), ("03", "accepted"), ("06", "completed"), ("13", "recall requested"),
     ("15", "recall agreed"), ("16", "recall refused")],
)  # fmt: skip
def test_status_element_codes(code: str, meaning: str) -> None:
    st = _find(_mail(_status(code)))
    assert st is not None
    assert (st.document_id, st.code, st.meaning, st.from_code) == (
        DOC_ID,
        code,
        meaning,
        "000.00.00.H36",
    )
    assert st.timestamp == "2024-03-06T08:00:00"
    assert status_summary(st.detail()) == f"{code} {meaning} (000.00.00.H36)"


@pytest.mark.parametrize("prefix", [True, False])
def test_fields_inside_message_header_prefixed_or_not(prefix: bool) -> None:
    st = _find(_mail(_in_header("2", prefix=prefix, description="Sai thẩm quyền")))
    assert st is not None
    assert (st.code, st.meaning, st.description) == ("02", "refused", "Sai thẩm quyền")
    assert st.text == "Từ chối tiếp nhận"


def test_status_as_the_mail_body_and_as_text_xml() -> None:
    st = _find(_mail(_status("05"), as_body=True, ctype="text/xml"))
    assert st is not None and st.code == "05" and st.meaning == "in progress"


def test_unknown_code_is_kept_and_flagged() -> None:
    st = _find(_mail(_in_header("99", prefix=True)))
    assert st is not None and st.code == "99" and st.meaning is None
    assert "unknown_status_code:99" in st.flags


def test_document_packages_and_other_xml_are_not_statuses() -> None:
    doc = make_edxml(by_key("ct-ttg-khan"))
    assert _find(_mail(doc)) is None
    assert (
        _find(_mail(b'<?xml version="1.0"?><Status><StatusCode>01</StatusCode></Status>')) is None
    )
    assert _find(_mail(b"<edXML:edXML broken")) is None
