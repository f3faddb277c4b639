"""Routing (DESIGN §6) as a pure function: each rule, their order, and name matching."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.pipeline.routing import (
    AgencyIndex,
    AgencyRef,
    RouteInput,
    codes_in_subject,
    most_urgent,
    normalise_name,
    priority_of,
    route,
)

TAY_NINH = AgencyRef(
    "000.00.00.H53",
    "Ủy ban nhân dân tỉnh Tây Ninh",
    "vanthu@tayninh.gov.vn",
    aliases=("UBND tỉnh Tây Ninh",),
    domains=("tayninh.gov.vn",),
)
SNV_TN = AgencyRef(
    "000.31.00.H53",
    "Sở Nội vụ tỉnh Tây Ninh",
    "vanthu@snv.tayninh.gov.vn",
    domains=("snv.tayninh.gov.vn",),
)
SNV_QN = AgencyRef("000.31.00.H44", "Sở Nội vụ tỉnh Quảng Ninh", "vanthu@snv.quangninh.gov.vn")
BTP = AgencyRef("000.00.00.G09", "Bộ Tư pháp", "vbden@moj.gov.vn", domains=("moj.gov.vn",))
BNV = AgencyRef("000.00.00.G12", "Bộ Nội vụ", "vanthu@moha.gov.vn", domains=("moha.gov.vn",))
VPCP = AgencyRef(
    "000.00.00.G22",
    "Văn phòng Chính phủ",
    "vanthu@chinhphu.vn",
    aliases=("VPCP",),
    domains=("chinhphu.vn",),
)
HDND_DN = AgencyRef("000.00.00.H19", "Hội đồng nhân dân tỉnh Đồng Nai", "hdnd@dongnai.gov.vn")
HOA_BINH = AgencyRef("000.00.00.H23", "Ủy ban nhân dân tỉnh Hòa Bình", "vanthu@hoabinh.gov.vn")
CLOSED = AgencyRef(
    "000.00.00.H99", "Ủy ban nhân dân tỉnh Hà Tây", "vanthu@hatay.gov.vn", active=False
)
AGENCIES = [TAY_NINH, SNV_TN, SNV_QN, BTP, BNV, VPCP, HDND_DN, HOA_BINH, CLOSED]
INDEX = AgencyIndex.build(AGENCIES)
PROCESSING = frozenset({"vanban@gw.test.gov.vn"})
LOCAL = frozenset({"gw.test.gov.vn"})


def run(**kw: object) -> tuple[list[tuple[str, str | None, str]], list[str]]:
    kw.setdefault("processing_addresses", PROCESSING)
    kw.setdefault("local_domains", LOCAL)
    res = route(INDEX, RouteInput(**kw))  # type: ignore[arg-type]
    return [(d.recipient, d.agency_code, d.rule) for d in res.destinations], res.unresolved


# -- rule 1: edXML To codes --------------------------------------------------------------------


def test_edxml_codes_route_to_agency_inboxes() -> None:
    dests, unresolved = run(
        rcpt_to=["vanban@gw.test.gov.vn"],
        edxml_to_codes=["000.00.00.H53", "000.00.00.G09", "000.00.00.X01"],
    )
    assert dests == [
        ("vanthu@tayninh.gov.vn", "000.00.00.H53", "edxml"),
        ("vbden@moj.gov.vn", "000.00.00.G09", "edxml"),
    ]
    assert unresolved == ["000.00.00.X01"]


def test_edxml_codes_win_over_subject_and_recipient_lines() -> None:
    dests, _ = run(
        rcpt_to=["vanban@gw.test.gov.vn"],
        edxml_to_codes=["000.00.00.G09"],
        subject="Gửi [000.00.00.H53]",
        recipient_lines=["Bộ Nội vụ"],
    )
    assert dests == [("vbden@moj.gov.vn", "000.00.00.G09", "edxml")]


def test_inactive_agency_is_not_a_destination() -> None:
    dests, unresolved = run(rcpt_to=["vanban@gw.test.gov.vn"], edxml_to_codes=["000.00.00.H99"])
    assert dests == []
    assert unresolved == ["000.00.00.H99"]


def test_unknown_edxml_codes_fall_back_to_content() -> None:
    dests, unresolved = run(
        rcpt_to=["vanban@gw.test.gov.vn"],
        edxml_to_codes=["000.00.00.X01"],
        recipient_lines=["Bộ Tư pháp"],
    )
    assert dests == [("vbden@moj.gov.vn", "000.00.00.G09", "recipients")]
    assert unresolved == ["000.00.00.X01"]


# -- rule 2: envelope recipients ----------------------------------------------------------------


def test_envelope_address_and_domain_of_agencies_keep_the_envelope_address() -> None:
    dests, _ = run(rcpt_to=["vanthu@tayninh.gov.vn", "Giam.Doc@moj.gov.vn"])
    assert dests == [
        ("vanthu@tayninh.gov.vn", "000.00.00.H53", "envelope"),
        ("Giam.Doc@moj.gov.vn", "000.00.00.G09", "envelope"),
    ]


def test_envelope_subdomain_agency_is_told_apart_from_parent_domain() -> None:
    dests, _ = run(rcpt_to=["phongtccb@snv.tayninh.gov.vn"])
    assert dests == [("phongtccb@snv.tayninh.gov.vn", "000.31.00.H53", "envelope")]


def test_relay_traffic_ignores_document_content() -> None:
    """Mail relayed to an agency is not re-routed by what the document says."""
    dests, _ = run(
        rcpt_to=["vbden@moj.gov.vn"], recipient_lines=["Bộ Nội vụ"], subject="[000.00.00.H53]"
    )
    assert dests == [("vbden@moj.gov.vn", "000.00.00.G09", "envelope")]


def test_foreign_recipient_is_plain_relay_without_agency() -> None:
    dests, _ = run(rcpt_to=["someone@example.org", "vbden@moj.gov.vn"])
    assert dests == [
        ("vbden@moj.gov.vn", "000.00.00.G09", "envelope"),
        ("someone@example.org", None, "relay"),
    ]


def test_edxml_and_envelope_for_same_agency_make_one_delivery() -> None:
    dests, _ = run(
        rcpt_to=["chanhvp@tayninh.gov.vn"], edxml_to_codes=["000.00.00.H53", "000.00.00.G12"]
    )
    assert dests == [
        ("chanhvp@tayninh.gov.vn", "000.00.00.H53", "envelope"),
        ("vanthu@moha.gov.vn", "000.00.00.G12", "edxml"),
    ]


def test_processing_and_local_addresses_are_not_destinations() -> None:
    dests, _ = run(rcpt_to=["vanban@gw.test.gov.vn", "postmaster@gw.test.gov.vn"])
    assert dests == []


def test_duplicate_envelope_recipients_are_one_delivery() -> None:
    dests, _ = run(rcpt_to=["vbden@moj.gov.vn", "VBDEN@MOJ.GOV.VN"])
    assert len(dests) == 1


# -- rule 3: subject codes, then recipient lines --------------------------------------------------


def test_subject_codes_for_processing_address() -> None:
    dests, _ = run(
        rcpt_to=["VanBan@gw.test.gov.vn"],
        subject="[000.00.00.H53][000.00.00.G22] Công văn 15/UBND-VP",
        recipient_lines=["Bộ Tư pháp"],
    )
    assert dests == [
        ("vanthu@tayninh.gov.vn", "000.00.00.H53", "subject"),
        ("vanthu@chinhphu.vn", "000.00.00.G22", "subject"),
    ]


def test_recipient_lines_used_when_subject_has_no_known_code() -> None:
    dests, unresolved = run(
        rcpt_to=["vanban@gw.test.gov.vn"],
        subject="[000.00.00.Z77] V/v báo cáo",
        recipient_lines=["- Bộ Tư pháp;", "- Lưu: VT, VP.", "Như trên", "- Công ty ABC;"],
    )
    assert dests == [("vbden@moj.gov.vn", "000.00.00.G09", "recipients")]
    assert unresolved == ["000.00.00.Z77", "Công ty ABC"]


def test_local_domain_address_routes_by_content() -> None:
    dests, _ = run(rcpt_to=["vanthu@gw.test.gov.vn"], recipient_lines=["Bộ Nội vụ"])
    assert dests == [("vanthu@moha.gov.vn", "000.00.00.G12", "recipients")]


def test_content_routing_flag_without_processing_address() -> None:
    """Mail fetched over IMAP has no processing address in its envelope."""
    dests, _ = run(rcpt_to=[], recipient_lines=["Bộ Nội vụ"], content_routing=True)
    assert dests == [("vanthu@moha.gov.vn", "000.00.00.G12", "recipients")]


def test_content_is_not_read_without_processing_address() -> None:
    dests, _ = run(rcpt_to=["someone@example.org"], recipient_lines=["Bộ Nội vụ"])
    assert dests == [("someone@example.org", None, "relay")]


def test_several_lines_naming_one_agency_make_one_delivery() -> None:
    dests, _ = run(
        rcpt_to=["vanban@gw.test.gov.vn"],
        recipient_lines=[
            "UBND tỉnh Tây Ninh",
            "Ủy ban nhân dân tỉnh Tây Ninh;",
            "Bộ Tư pháp; Bộ Nội vụ",
        ],
    )
    assert [d[1] for d in dests] == ["000.00.00.H53", "000.00.00.G09", "000.00.00.G12"]


def test_nothing_resolved_gives_no_destination() -> None:
    dests, unresolved = run(
        rcpt_to=["vanban@gw.test.gov.vn"], recipient_lines=["Các sở, ban, ngành"]
    )
    assert dests == []
    assert unresolved == ["Các sở, ban, ngành"]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("Ủy ban nhân dân tỉnh Tây Ninh", "000.00.00.H53"),
        ("- UBND tỉnh Tây Ninh;", "000.00.00.H53"),
        ("ỦY BAN NHÂN DÂN TỈNH TÂY NINH", "000.00.00.H53"),
        ("Uỷ ban nhân dân tỉnh Tây Ninh.", "000.00.00.H53"),
        (unicodedata.normalize("NFD", "UBND tỉnh Tây Ninh"), "000.00.00.H53"),
        ("Chủ tịch UBND tỉnh Tây Ninh (để báo cáo);", "000.00.00.H53"),
        ("Đồng chí Phó Chủ tịch UBND tỉnh Tây Ninh;", "000.00.00.H53"),
        ("UBND tinh Tay Ninh", "000.00.00.H53"),
        ("UBND tỉnh Hoà Bình", "000.00.00.H23"),
        ("Uỷ ban nhân dân tỉnh Hòa Bình", "000.00.00.H23"),
        ("HĐND tỉnh Đồng Nai;", "000.00.00.H19"),
        ("+ Hội đồng nhân dân tỉnh Đồng Nai", "000.00.00.H19"),
        ("HDND tinh Dong Nai", "000.00.00.H19"),
        ("Bộ Tư pháp", "000.00.00.G09"),
        ("Bo Tu phap", "000.00.00.G09"),
        ("- Bộ Nội vụ (để báo cáo);", "000.00.00.G12"),
        ("Văn phòng Chính phủ", "000.00.00.G22"),
        ("VPCP", "000.00.00.G22"),
        ("Sở Nội vụ tỉnh Tây Ninh", "000.31.00.H53"),
        ("Giám đốc Sở Nội vụ tỉnh Quảng Ninh", "000.31.00.H44"),
        ("Sở Nội vụ", None),  # two provinces have one: ambiguous
        ("Lưu: VT, VP.", None),
        ("Như trên;", None),
        ("Cổng Thông tin điện tử Chính phủ", None),
        ("Các Bộ, cơ quan ngang Bộ", None),
        ("UBND tỉnh Hà Tây", None),  # inactive
        ("Ủy ban nhân dân tỉnh", None),  # a prefix of several
        ("Bộ", None),
        ("", None),
    ],
)
def test_recipient_line_matching(line: str, code: str | None) -> None:
    found = INDEX.match_line(line)
    assert (found.code if found else None) == code


def test_prefix_of_exactly_one_agency_matches() -> None:
    idx = AgencyIndex.build([SNV_TN, BTP])
    found = idx.match_line("- Sở Nội vụ;")
    assert found is not None and found.code == SNV_TN.code


def test_diacritics_matter_when_the_line_has_them() -> None:
    """A line with diacritics is never matched on the stripped form: Bộ ≠ Bồ."""
    idx = AgencyIndex.build([AgencyRef("000.00.00.G09", "Bộ Tư pháp", "a@b.vn")])
    assert idx.match_line("Bồ Tư pháp") is None


def test_dd_is_not_d_when_written() -> None:
    idx = AgencyIndex.build(
        [AgencyRef("000.00.00.H19", "Hội đồng nhân dân tỉnh Đồng Nai", "a@b.vn")]
    )
    assert idx.match_line("Hội đồng nhân dân tỉnh Dồng Nai") is None
    assert idx.match_line("Hoi dong nhan dan tinh Dong Nai") is not None


_DECORATIONS = st.tuples(
    st.sampled_from(["", "- ", "-", "+ ", "• ", "  "]),
    st.sampled_from(["", ";", ".", " ;", ";.", "./."]),
    st.sampled_from(["NFC", "NFD"]),
    st.sampled_from(["keep", "upper", "lower", "title"]),
)


@settings(max_examples=150, deadline=None)
@given(agency=st.sampled_from([a for a in AGENCIES if a.active]), deco=_DECORATIONS)
def test_any_decoration_of_a_name_matches_its_agency(agency: AgencyRef, deco: tuple) -> None:
    head, tail, form, case = deco
    name = {"keep": agency.name, "upper": agency.name.upper(), "lower": agency.name.lower()}.get(
        case, agency.name.title()
    )
    line = unicodedata.normalize(form, f"{head}{name}{tail}")
    found = INDEX.match_line(line)
    assert found is not None and found.code == agency.code


def test_normalise_name_expands_abbreviations_and_tone_placement() -> None:
    assert normalise_name("UBND TP. Hồ Chí Minh") == normalise_name(
        "Ủy ban nhân dân Thành phố Hồ Chí Minh"
    )
    assert normalise_name("Hoà") == normalise_name("Hòa")
    assert normalise_name("Thuỷ lợi") == normalise_name("Thủy lợi")
    assert normalise_name("Quyết") != normalise_name("Quyet")


def test_codes_in_subject() -> None:
    assert codes_in_subject("[000.00.00.H53] và 000.00.00.G22, 28.22.H17; v1.000.00.00.H53x") == [
        "000.00.00.H53",
        "000.00.00.G22",
        "28.22.H17",
    ]


def test_route_accepts_a_plain_agency_list() -> None:
    res = route(AGENCIES, RouteInput(rcpt_to=["vbden@moj.gov.vn"]))
    assert [d.agency_code for d in res.destinations] == ["000.00.00.G09"]


def test_urgency_priority() -> None:
    assert [
        priority_of(u) for u in ("Hỏa tốc hẹn giờ", "Hỏa tốc", "Thượng khẩn", "Khẩn", None)
    ] == [
        4,
        3,
        2,
        1,
        0,
    ]
    assert most_urgent([None, "Khẩn", "Hỏa tốc", "Thượng khẩn"]) == "Hỏa tốc"
    assert most_urgent([None, None]) is None
