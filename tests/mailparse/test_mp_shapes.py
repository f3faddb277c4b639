"""Each reading rule on several shapes of input, as positioned rows (the form every extractor
produces), so a rule is tested apart from any one renderer."""

from __future__ import annotations

import datetime as dt

import pytest

from mailparse.facts import read
from mailparse.meeting import read_meeting
from mailparse.text import Cell, Rows, rows_from_plain_text

MOTTO = ["CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc"]


def two(left: list[str], right: list[str]) -> Rows:
    """A two-column block: left cells at 0.05-0.45, right at 0.55-0.95, side by side."""
    rows: Rows = []
    for i in range(max(len(left), len(right))):
        row = []
        if i < len(left) and left[i]:
            row.append(Cell(left[i], 0.05, 0.45))
        if i < len(right) and right[i]:
            row.append(Cell(right[i], 0.55, 0.95))
        rows.append(row)
    return rows


def full(*lines: str) -> Rows:
    """Lines across the page as a PDF gives them (a Word paragraph would span 0..1)."""
    return [[Cell(t, 0.12, 0.88)] if t else [] for t in lines]


def doc(issuer: list[str], number: list[str], date: list[str], *rest: Rows) -> Rows:
    rows = two(issuer, MOTTO) + [[]] + two(number, date) + [[]]
    for block in rest:
        rows += block
    return rows


SIGN = two(
    ["Nơi nhận:", "- Như trên;", "- Lưu: VT."],
    ["KT. CHỦ TỊCH", "PHÓ CHỦ TỊCH", "", "Nguyễn Văn An"],
)


@pytest.mark.parametrize(
    ("lines", "issuer", "parent"),
    [
        (["ỦY BAN NHÂN DÂN", "TỈNH TIỀN GIANG"], "ỦY BAN NHÂN DÂN TỈNH TIỀN GIANG", None),
        (["HỘI ĐỒNG NHÂN DÂN", "TỈNH YÊN BÁI"], "HỘI ĐỒNG NHÂN DÂN TỈNH YÊN BÁI", None),
        (["UỶ BAN NHÂN DÂN", "THÀNH PHỐ HÀ NỘI"], "UỶ BAN NHÂN DÂN THÀNH PHỐ HÀ NỘI", None),
        (["ỦY BAN NHÂN DÂN", "XÃ TÂN PHÚ"], "ỦY BAN NHÂN DÂN XÃ TÂN PHÚ", None),
        (["BỘ TÀI CHÍNH", "TỔNG CỤC THUẾ"], "TỔNG CỤC THUẾ", "BỘ TÀI CHÍNH"),
        (["UBND TỈNH LONG AN", "SỞ Y TẾ"], "SỞ Y TẾ", "UBND TỈNH LONG AN"),
        (["BỘ TƯ PHÁP", "VĂN PHÒNG"], "VĂN PHÒNG", "BỘ TƯ PHÁP"),
        (
            ["ỦY BAN NHÂN DÂN", "TỈNH BẾN TRE", "SỞ NỘI VỤ"],
            "SỞ NỘI VỤ",
            "ỦY BAN NHÂN DÂN TỈNH BẾN TRE",
        ),
        (["VĂN PHÒNG CHÍNH PHỦ - BỘ NỘI VỤ"], "VĂN PHÒNG CHÍNH PHỦ - BỘ NỘI VỤ", None),
        (["VĂN PHÒNG CHÍNH PHỦ -", "BỘ NỘI VỤ"], "VĂN PHÒNG CHÍNH PHỦ - BỘ NỘI VỤ", None),
        (
            ["BỘ NÔNG NGHIỆP VÀ PHÁT TRIỂN", "NÔNG THÔN"],
            "BỘ NÔNG NGHIỆP VÀ PHÁT TRIỂN NÔNG THÔN",
            None,
        ),
        (["SỞ TÀI NGUYÊN VÀ MÔI", "TRƯỜNG"], "SỞ TÀI NGUYÊN VÀ MÔI TRƯỜNG", None),
        (
            ["BAN QUẢN LÝ CÁC KHU CÔNG NGHIỆP", "TỈNH BÌNH DƯƠNG"],
            "BAN QUẢN LÝ CÁC KHU CÔNG NGHIỆP TỈNH BÌNH DƯƠNG",
            None,
        ),
        (["CHÍNH PHỦ", "-------"], "CHÍNH PHỦ", None),
    ],
)
def test_issuer_lines(lines: list[str], issuer: str, parent: str | None) -> None:
    tf = read(doc(lines, ["Số: 12/UBND-VP"], ["Hà Nội, ngày 02 tháng 3 năm 2021"], SIGN))
    assert (tf.issuer, tf.parent_issuer) == (issuer, parent)


@pytest.mark.parametrize(
    ("number_lines", "number", "year", "notation"),
    [
        (["Số: 06/QC-TT.HĐND-UBND"], "06", None, "QC-TT.HĐND-UBND"),
        (["Số:      /TTr-VPCP"], None, None, "TTr-VPCP"),
        (["Số: ......../QĐ-UBND"], None, None, "QĐ-UBND"),
        (["Số: 1234/QĐ-", "UBND"], "1234", None, "QĐ-UBND"),
        (["Số:", "45/2024/QĐ-UBND"], "45", 2024, "QĐ-UBND"),
        (["Số: 30/2020/NĐ-CP"], "30", 2020, "NĐ-CP"),
        (["Số: 215 /BC-SNV"], "215", None, "BC-SNV"),
        (["Số: 3077/BGDĐT-GDTrH"], "3077", None, "BGDĐT-GDTrH"),
    ],
)
def test_number_and_notation(
    number_lines: list[str], number: str | None, year: int | None, notation: str
) -> None:
    tf = read(doc(["BỘ NỘI VỤ"], number_lines, ["Hà Nội, ngày 5 tháng 6 năm 2024"], SIGN))
    assert (tf.number, tf.year, tf.notation) == (number, year, notation)


@pytest.mark.parametrize(
    ("date_lines", "place", "date"),
    [
        (["Hà Nội, ngày 14 tháng 01 năm", "2009"], "Hà Nội", dt.date(2009, 1, 14)),
        (
            ["Thành phố Hồ Chí Minh, ngày 25", "tháng 12 năm 2023"],
            "Thành phố Hồ Chí Minh",
            dt.date(2023, 12, 25),
        ),
        (["TP. Hồ Chí Minh, ngày 5/3/2024"], "TP. Hồ Chí Minh", dt.date(2024, 3, 5)),
        (["Tiền Giang, ngày      tháng      năm 2024"], "Tiền Giang", None),
    ],
)
def test_place_and_date(date_lines: list[str], place: str, date: dt.date | None) -> None:
    tf = read(doc(["ỦY BAN NHÂN DÂN", "TỈNH TIỀN GIANG"], ["Số: 1/UBND-VP"], date_lines, SIGN))
    assert (tf.place, tf.date) == (place, date)


def test_place_date_sharing_a_row_with_a_wrapped_subject() -> None:
    rows = doc(
        ["BỘ NỘI VỤ"],
        ["Số: 05/BNV-VP", "V/v hướng dẫn triển khai lưu", "trữ hồ sơ điện tử"],
        ["Hà Nội, ngày 08 tháng 01 năm", "2024"],
        full("Kính gửi: Văn phòng Chính phủ.", "", "Thực hiện chỉ đạo của cấp trên."),
        SIGN,
    )
    tf = read(rows)
    assert tf.subject == "V/v hướng dẫn triển khai lưu trữ hồ sơ điện tử"
    assert (tf.place, tf.date) == ("Hà Nội", dt.date(2024, 1, 8))
    assert tf.kinh_gui == ["Văn phòng Chính phủ"]


def test_a_subject_over_three_lines_under_the_title() -> None:
    rows = doc(
        ["CHÍNH PHỦ"],
        ["Số: 30/2020/NĐ-CP"],
        ["Hà Nội, ngày 05 tháng 3 năm 2020"],
        full(
            "NGHỊ ĐỊNH",
            "Quy định chi tiết một số điều của Luật",
            "Tổ chức chính quyền địa phương",
            "về công tác văn thư",
            "",
            "Căn cứ Luật Tổ chức Chính phủ;",
        ),
        SIGN,
    )
    tf = read(rows)
    assert tf.title_kind == "Nghị định"
    assert (
        tf.subject
        == "Quy định chi tiết một số điều của Luật Tổ chức chính quyền địa phương về công tác văn thư"
    )


def test_noi_nhan_shapes() -> None:
    left = [
        "Nơi nhận:",
        "- Như Điều 3;",
        "- Thủ tướng, các Phó Thủ tướng Chính",
        "phủ (để b/c);",
        "- Các Bộ, cơ quan ngang Bộ;",
        "- Sở Tài chính; Sở Nội vụ;",
        "- UBND các huyện, thị xã, thành",
        "phố;",
        "- Như trên;",
        "- Lưu: VT, TH (2b).",
    ]
    right = ["TM. ỦY BAN NHÂN DÂN", "CHỦ TỊCH", "", "", "", "Lê Văn Hưởng"]
    rows = doc(
        ["ỦY BAN NHÂN DÂN", "TỈNH TIỀN GIANG"],
        ["Số: 9/QĐ-UBND"],
        ["Tiền Giang, ngày 1 tháng 4 năm 2022"],
        two(left, right),
    )
    tf = read(rows)
    assert tf.noi_nhan == [
        "Thủ tướng, các Phó Thủ tướng Chính phủ (để b/c)",
        "Các Bộ, cơ quan ngang Bộ",
        "Sở Tài chính",
        "Sở Nội vụ",
        "UBND các huyện, thị xã, thành phố",
    ]
    assert (tf.competence, tf.position, tf.name) == (
        "TM. ỦY BAN NHÂN DÂN",
        "CHỦ TỊCH",
        "Lê Văn Hưởng",
    )


@pytest.mark.parametrize(
    ("right", "competence", "position", "name"),
    [
        (
            ["KT. CHỦ TỊCH", "PHÓ CHỦ TỊCH", "", "Nguyễn Văn A"],
            "KT. CHỦ TỊCH",
            "PHÓ CHỦ TỊCH",
            "Nguyễn Văn A",
        ),
        (["GIÁM ĐỐC", "(Đã ký)", "Trần Thị Bích Ngọc"], None, "GIÁM ĐỐC", "Trần Thị Bích Ngọc"),
        (
            ["TL. BỘ TRƯỞNG", "VỤ TRƯỞNG VỤ TỔ CHỨC", "CÁN BỘ", "", "Hoàng Minh"],
            "TL. BỘ TRƯỞNG",
            "VỤ TRƯỞNG VỤ TỔ CHỨC CÁN BỘ",
            "Hoàng Minh",
        ),
        (
            ["KT. BỘ TRƯỞNG, CHỦ", "NHIỆM", "PHÓ CHỦ NHIỆM", "Đỗ Mạnh Cường"],
            "KT. BỘ TRƯỞNG, CHỦ NHIỆM",
            "PHÓ CHỦ NHIỆM",
            "Đỗ Mạnh Cường",
        ),
    ],
)
def test_signer_block(right: list[str], competence: str | None, position: str, name: str) -> None:
    rows = doc(
        ["BỘ NỘI VỤ"],
        ["Số: 1/BNV-VP"],
        ["Hà Nội, ngày 1 tháng 4 năm 2022"],
        two(["Nơi nhận:", "- Sở Nội vụ;", "- Lưu: VT."], right),
    )
    tf = read(rows)
    assert (tf.competence, tf.position, tf.name) == (competence, position, name)


@pytest.mark.parametrize(
    ("text", "start", "place"),
    [
        (
            "Thời gian: 08 giờ 00 phút, thứ Năm, ngày 16/5/2024.\nĐịa điểm: Hội trường tầng 3, Trụ sở UBND tỉnh.",
            "2024-05-16T08:00:00+07:00",
            "Hội trường tầng 3, Trụ sở UBND tỉnh",
        ),
        (
            "- Thời gian: 14h30, ngày 20 tháng 5 năm 2024.\n- Địa điểm: Phòng họp số 2, Sở Nội vụ, TP. Hồ Chí Minh.",
            "2024-05-20T14:30:00+07:00",
            "Phòng họp số 2, Sở Nội vụ, TP. Hồ Chí Minh",
        ),
        (
            "Văn phòng tổ chức cuộc họp vào lúc 8h00 ngày 21/5/2024 tại Phòng họp A, Văn phòng Chính phủ.",
            "2024-05-21T08:00:00+07:00",
            "Phòng họp A, Văn phòng Chính phủ",
        ),
        (
            "1. Thời gian: Vào hồi 15 giờ 30, ngày 03 tháng 6 năm 2024 (thứ Hai).\n2. Địa điểm: Hội trường A, Trung tâm Hội nghị tỉnh\n3. Thành phần: Như nơi nhận.",
            "2024-06-03T15:30:00+07:00",
            "Hội trường A, Trung tâm Hội nghị tỉnh",
        ),
        (
            "Thời gian: thứ Sáu, ngày 07/6/2024, lúc 7 giờ 30.\nĐịa điểm: Nhà văn hóa xã Tân Phú",
            "2024-06-07T07:30:00+07:00",
            "Nhà văn hóa xã Tân Phú",
        ),
    ],
)
def test_meeting_lines(text: str, start: str, place: str) -> None:
    got_start, got_place = read_meeting(rows_from_plain_text(text), 2024)
    assert got_start is not None and got_start.isoformat() == start
    assert got_place == place


def test_no_meeting_in_an_ordinary_letter() -> None:
    text = "Đề nghị các đơn vị báo cáo trước ngày 30 tháng 6 năm 2024.\nTrân trọng./."
    assert read_meeting(rows_from_plain_text(text), 2024) == (None, None)


@pytest.mark.parametrize(
    "title", ["QUYẾT ĐỊNH", "Q U Y Ế T   Đ Ị N H", "QUYẾT ĐỊNH:", "T Ờ  T R Ì N H"]
)
def test_title_plain_and_letter_spaced(title: str) -> None:
    rows = doc(
        ["ỦY BAN NHÂN DÂN", "TỈNH TIỀN GIANG"],
        ["Số: 9/QĐ-UBND"],
        ["Tiền Giang, ngày 1 tháng 4 năm 2022"],
        full(title, "Về việc thành lập Tổ công tác", "", "Căn cứ Luật Tổ chức chính quyền;"),
        SIGN,
    )
    tf = read(rows)
    assert tf.title_kind == ("Tờ trình" if "T Ờ" in title else "Quyết định")
    assert tf.subject == "Về việc thành lập Tổ công tác"
