"""edXML packages: round trips, a package shaped like the national axis samples, status packages."""

from __future__ import annotations

import datetime as dt

from mailparse import classify, edxml, parse
from mailparse.containers import make_attachment
from tests.support.corpus import by_key, make_edxml, pdf_bytes
from tests.support.mails import make_mail

NS = edxml.NS

# Shaped like the public samples of the national exchange axis: prefixed header, unprefixed
# AttachmentEncoded children, a legacy 3-group code, status-free MessageHeader.
AXIS_SAMPLE = f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML:edXML xmlns:edXML="{NS}">
  <edXML:edXMLEnvelope>
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From>
          <edXML:OrganId>000.00.00.G22</edXML:OrganId>
          <edXML:OrganizationInCharge>Chính phủ</edXML:OrganizationInCharge>
          <edXML:OrganName>Văn phòng Chính phủ</edXML:OrganName>
          <edXML:OrganAdd>16 Lê Hồng Phong, Ba Đình, Hà Nội</edXML:OrganAdd>
          <edXML:Email>vpcp@chinhphu.vn</edXML:Email>
        </edXML:From>
        <edXML:To><edXML:OrganId>000.00.00.H53</edXML:OrganId><edXML:OrganName>UBND tỉnh Tây Ninh</edXML:OrganName></edXML:To>
        <edXML:To><edXML:OrganId>28.22.H17</edXML:OrganId><edXML:OrganName>Sở Nội vụ tỉnh Tây Ninh</edXML:OrganName></edXML:To>
        <edXML:DocumentId>000.00.00.G22,2024/03/05,1234/VPCP-KSTT</edXML:DocumentId>
        <edXML:Code><edXML:CodeNumber>1234</edXML:CodeNumber><edXML:CodeNotation>VPCP-KSTT</edXML:CodeNotation></edXML:Code>
        <edXML:PromulgationInfo><edXML:Place>Hà Nội</edXML:Place><edXML:PromulgationDate>2024/03/05</edXML:PromulgationDate></edXML:PromulgationInfo>
        <edXML:DocumentType><edXML:Type>1</edXML:Type><edXML:TypeDetail>0</edXML:TypeDetail><edXML:TypeName>Công văn</edXML:TypeName></edXML:DocumentType>
        <edXML:Subject>V/v triển khai Trục liên thông văn bản quốc gia</edXML:Subject>
        <edXML:Content>Nội dung tóm tắt</edXML:Content>
        <edXML:SignerInfo><edXML:Competence>KT. BỘ TRƯỞNG, CHỦ NHIỆM</edXML:Competence><edXML:Position>PHÓ CHỦ NHIỆM</edXML:Position><edXML:FullName>Nguyễn Văn A</edXML:FullName></edXML:SignerInfo>
        <edXML:DueDate>2024/03/20</edXML:DueDate>
        <edXML:ToPlaces><edXML:Place>UBND tỉnh Tây Ninh</edXML:Place><edXML:Place>Sở Nội vụ tỉnh Tây Ninh</edXML:Place></edXML:ToPlaces>
        <edXML:OtherInfo><edXML:Priority>3</edXML:Priority><edXML:SphereOfPromulgation>Liên thông</edXML:SphereOfPromulgation><edXML:PageAmount>2</edXML:PageAmount></edXML:OtherInfo>
        <edXML:SteeringType>1</edXML:SteeringType>
      </edXML:MessageHeader>
      <edXML:TraceHeaderList><edXML:TraceHeader><edXML:OrganId>000.00.00.G22</edXML:OrganId><edXML:Timestamp>2024/03/05 10:00:00</edXML:Timestamp></edXML:TraceHeader></edXML:TraceHeaderList>
    </edXML:edXMLHeader>
    <edXML:edXMLBody><edXML:edXMLManifest version="1.0">
      <edXML:Reference><edXML:ContentId>cid:abc</edXML:ContentId><edXML:ContentType>application/pdf</edXML:ContentType><edXML:AttachmentName>1234_VPCP-KSTT.pdf</edXML:AttachmentName></edXML:Reference>
    </edXML:edXMLManifest></edXML:edXMLBody>
  </edXML:edXMLEnvelope>
  <AttachmentEncoded><Attachment><ContentId>cid:abc</ContentId><AttachmentName>1234_VPCP-KSTT.pdf</AttachmentName>
    <ContentType>application/pdf</ContentType><edXML:ContentTransferEncoded>JVBERi0xLjcKJeLjz9MK</edXML:ContentTransferEncoded></Attachment></AttachmentEncoded>
</edXML:edXML>""".encode()


def test_axis_sample_is_read_with_every_field() -> None:
    pkg = edxml.read_package(AXIS_SAMPLE)
    assert pkg.from_code == "000.00.00.G22" and pkg.from_organ is not None
    assert pkg.from_organ.name == "Văn phòng Chính phủ" and pkg.from_organ.in_charge == "Chính phủ"
    assert pkg.from_organ.address == "16 Lê Hồng Phong, Ba Đình, Hà Nội"
    assert pkg.to_codes == ["000.00.00.H53", "28.22.H17"]
    assert "legacy_agency_code:28.22.H17" in pkg.flags
    assert pkg.document_id == "000.00.00.G22,2024/03/05,1234/VPCP-KSTT"
    assert (pkg.code_number, pkg.code_notation) == ("1234", "VPCP-KSTT")
    assert (pkg.place, pkg.promulgation_date) == ("Hà Nội", dt.date(2024, 3, 5))
    assert (pkg.type_code, pkg.type_detail, pkg.type_name) == ("1", "0", "Công văn")
    assert (
        pkg.subject == "V/v triển khai Trục liên thông văn bản quốc gia"
        and pkg.content == "Nội dung tóm tắt"
    )
    assert (pkg.signer_competence, pkg.signer_position, pkg.signer_full_name) == (
        "KT. BỘ TRƯỞNG, CHỦ NHIỆM",
        "PHÓ CHỦ NHIỆM",
        "Nguyễn Văn A",
    )
    assert pkg.due_date == dt.date(2024, 3, 20)
    assert pkg.priority == 3 and pkg.urgency == "Hỏa tốc"
    assert pkg.other_info["SphereOfPromulgation"] == "Liên thông"
    assert pkg.steering_type == 1
    assert pkg.to_places == ["UBND tỉnh Tây Ninh", "Sở Nội vụ tỉnh Tây Ninh"]
    (att,) = pkg.attachments
    assert (att.content_id, att.name, att.content_type) == (
        "cid:abc",
        "1234_VPCP-KSTT.pdf",
        "application/pdf",
    )
    assert att.data.startswith(b"%PDF-1.7")


def test_axis_sample_facts_come_from_the_header() -> None:
    facts = classify(make_attachment("1", "goi-tin.edxml", None, AXIS_SAMPLE))
    d = facts.to_dict()
    assert (d["kind"], d["kind_abbr"], d["number"], d["notation"]) == (
        "Công văn",
        None,
        "1234",
        "VPCP-KSTT",
    )
    assert (
        d["date"] == "2024-03-05"
        and d["urgency"] == "Hỏa tốc"
        and d["issuer"] == "Văn phòng Chính phủ"
    )
    assert (d["signer"], d["signer_position"], d["signer_competence"]) == (
        "Nguyễn Văn A",
        "PHÓ CHỦ NHIỆM",
        "KT. BỘ TRƯỞNG, CHỦ NHIỆM",
    )
    assert d["agency_codes"] == ["000.00.00.H53", "28.22.H17"]
    assert facts.to_codes == ["000.00.00.H53", "28.22.H17"] and facts.from_code == "000.00.00.G22"
    assert set(d["sources"].values()) == {"edxml"}
    assert "legacy_agency_code:28.22.H17" in facts.flags


def test_document_package_round_trip_with_prefix_and_attachments() -> None:
    doc = by_key("nd-cp")
    raw = make_edxml(
        doc,
        to_codes=("000.00.00.H53", "000.00.00.G09"),
        attachments=(("30_NĐ-CP.pdf", pdf_bytes(doc.key)),),
    )
    assert b"<edXML:MessageHeader>" in raw and b"<MessageHeader" not in raw
    pkg = edxml.read_package(raw)
    again = edxml.read_package(edxml.write_package(pkg))
    assert again == pkg
    assert pkg.to_codes == ["000.00.00.H53", "000.00.00.G09"]
    assert pkg.attachments[0].data == pdf_bytes(doc.key)
    facts = classify(make_attachment("1", None, None, raw))
    assert (facts.number, facts.year, facts.notation, facts.kind) == (
        "30",
        2020,
        "NĐ-CP",
        "Nghị định",
    )


def test_status_package_round_trip_and_both_placements() -> None:
    st = edxml.StatusPackage(
        response_for=edxml.ResponseFor(
            "000.00.00.G22",
            "1234/VPCP-KSTT",
            dt.date(2024, 3, 5),
            "000.00.00.G22,2024/03/05,1234/VPCP-KSTT",
        ),
        from_organ=edxml.Organ(code="000.00.00.H53", name="UBND tỉnh Tây Ninh"),
        staff_info=edxml.StaffInfo("Văn thư", "Trần Thị B", "vanthu@tayninh.gov.vn", "0900000000"),
        status_code="02",
        description="Từ chối: sai địa chỉ nhận",
        timestamp=dt.datetime(2024, 3, 5, 10, 30, 0),
    )
    raw = edxml.write_status(st)
    assert b"<edXML:Status>" in raw
    back = edxml.read_status(raw)
    assert back == st and back.status_text == "Từ chối tiếp nhận"
    # Some senders put the fields straight into MessageHeader.
    moved = raw.replace(b"edXML:Status>", b"edXML:MessageHeader>")
    assert edxml.read_status(moved) == st


def test_edxml_in_a_mail_opens_its_attachments_and_dtds_are_refused() -> None:
    msg = parse(make_mail("Gói tin", [("goi.edxml", AXIS_SAMPLE, "application/xml")]))
    (att,) = msg.attachments
    assert att.detected_type == "edxml"
    assert [(c.filename, c.detected_type) for c in att.children] == [("1234_VPCP-KSTT.pdf", "pdf")]
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><edXML:edXML xmlns:edXML="'
        + NS.encode()
        + b'">&a;</edXML:edXML>'
    )
    facts = classify(make_attachment("1", None, None, bomb))
    assert any(f.startswith("edxml_unreadable") for f in facts.flags)
