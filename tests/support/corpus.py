"""Generated Vietnamese administrative documents with ground truth (Decree 30/2020/NĐ-CP layout).

Other test suites import this to get realistic documents::

    from tests.support.corpus import CORPUS, make_pdf, make_docx, by_key
    pdf = make_pdf(by_key("ct-ttg-khan"))

Every :class:`DocSpec` renders the same facts as a real PDF (fpdf2 + DejaVu, so the text layer
is real) and as a DOCX (python-docx, header and signature blocks as two-column tables, as
ministries' templates do). ``DocSpec.truth()`` is what a reader must find."""

from __future__ import annotations

import datetime as dt
import functools
import io
from dataclasses import dataclass
from typing import Any

FONT_DIR = "/usr/share/fonts/truetype/dejavu"
MOTTO_1 = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO_2 = "Độc lập - Tự do - Hạnh phúc"


@dataclass(frozen=True)
class DocSpec:
    """One document: what is printed and, derived from it, the ground truth."""

    key: str
    kind: str  # Vietnamese type name as in DESIGN §4.3
    kind_abbr: str | None
    number: str
    notation: str  # as printed after the number (and year)
    issuer_lines: tuple[str, ...]  # top-left block; the last line is the issuing organ
    place: str | None
    date: dt.date | None
    subject: str
    signer_position: str
    signer_name: str
    year: int | None = None
    signer_competence: str | None = None
    urgency: str | None = None  # canonical value
    secrecy: str | None = None  # canonical value
    kinh_gui: tuple[str, ...] = ()
    noi_nhan: tuple[str, ...] = ()
    luu: str = "Lưu: VT, VP."
    body: tuple[str, ...] = ()
    agency_codes: tuple[str, ...] = ()
    title: str | None = None  # printed title; default: kind upper-cased (None for công văn)
    number_label: str = "Số: "
    date_style: str = "words"  # words | padded | numeric
    urgency_print: str | None = None  # how the urgency mark is spelt on paper
    flags: tuple[str, ...] = ()

    @property
    def issuer(self) -> str:
        """The last organ; a bare "ỦY BAN NHÂN DÂN" / "HỘI ĐỒNG NHÂN DÂN" line and the
        locality under it are one name."""
        if len(self.issuer_lines) == 2 and self.issuer_lines[0].endswith("NHÂN DÂN"):
            return " ".join(self.issuer_lines)
        return self.issuer_lines[-1]

    @property
    def parent_issuer(self) -> str | None:
        if len(self.issuer_lines) == 2 and self.issuer_lines[0].endswith("NHÂN DÂN"):
            return None
        return self.issuer_lines[-2] if len(self.issuer_lines) > 1 else None

    @property
    def signer(self) -> str:
        return self.signer_name

    @property
    def printed_number(self) -> str:
        year = f"/{self.year}" if self.year else ""
        return f"{self.number}{year}/{self.notation}"

    @property
    def printed_title(self) -> str | None:
        if self.title is not None:
            return self.title or None
        return None if self.kind == "Công văn" else self.kind.upper()

    @property
    def recipients(self) -> list[str]:
        out: list[str] = []
        for item in (*self.kinh_gui, *self.noi_nhan):
            if item.startswith("Như ") or item in out:
                continue
            out.append(item)
        return out

    def place_date_line(self) -> str | None:
        if self.date is None:
            return None
        d = self.date
        if self.date_style == "numeric":
            when = f"ngày {d.day}/{d.month}/{d.year}"
        elif self.date_style == "padded":
            when = f"ngày {d.day:02d} tháng {d.month:02d} năm {d.year}"
        else:
            day = f"{d.day:02d}" if d.day < 10 else str(d.day)
            month = f"{d.month:02d}" if d.month < 3 else str(d.month)  # Decree 30: 01, 02 padded
            when = f"ngày {day} tháng {month} năm {d.year}"
        return f"{self.place}, {when}" if self.place else when

    def truth(self) -> dict[str, Any]:
        """The facts a reader must report (the ``facts`` object of DESIGN §7, minus sources)."""
        return {
            "kind": self.kind,
            "kind_abbr": self.kind_abbr,
            "number": self.number,
            "year": self.year,
            "notation": self.notation,
            "issuer": self.issuer,
            "parent_issuer": self.parent_issuer,
            "place": self.place,
            "date": self.date.isoformat() if self.date else None,
            "subject": self.subject,
            "signer": self.signer,
            "signer_position": self.signer_position or None,
            "signer_competence": self.signer_competence,
            "urgency": self.urgency,
            "secrecy": self.secrecy,
            "recipients": self.recipients,
            "agency_codes": list(self.agency_codes),
            "meeting_start": None,
            "meeting_place": None,
        }

    def filename(self, ext: str) -> str:
        return f"{self.number}_{self.notation}.{ext}".replace("/", "_")

    def marks(self) -> list[str]:
        out = []
        if self.urgency:
            out.append(self.urgency_print or self.urgency.upper())
        if self.secrecy:
            out.append(self.secrecy.upper())
        return out


# -- the corpus ----------------------------------------------------------------------------

_BODY_GENERIC = (
    "Thực hiện chỉ đạo của cấp trên về việc nâng cao hiệu quả công tác quản lý nhà nước, "
    "đề nghị các cơ quan, đơn vị khẩn trương rà soát, tổng hợp và báo cáo kết quả thực hiện "
    "trước ngày 30 tháng 6 năm 2024.",
    "Trong quá trình thực hiện, nếu có vướng mắc, các cơ quan, đơn vị phản ánh kịp thời để "
    "tổng hợp, báo cáo cấp có thẩm quyền xem xét, quyết định. Đảm bảo an toàn, bảo mật thông "
    "tin khi gửi, nhận văn bản điện tử.",
)
_BODY_QD = (
    "Căn cứ Luật Tổ chức chính quyền địa phương ngày 19 tháng 6 năm 2015;",
    "Theo đề nghị của Giám đốc Sở Nội vụ.",
    "QUYẾT ĐỊNH:",
    "Điều 1. Ban hành kèm theo Quyết định này nội dung nêu trên.",
    "Điều 2. Quyết định này có hiệu lực kể từ ngày ký. Chánh Văn phòng và thủ trưởng các cơ quan, "
    "đơn vị có liên quan chịu trách nhiệm thi hành Quyết định này./.",
)


def _d(y: int, m: int, d: int) -> dt.date:
    return dt.date(y, m, d)


UBND_TN = ("ỦY BAN NHÂN DÂN", "TỈNH TÂY NINH")
SNV_TN = ("UBND TỈNH TÂY NINH", "SỞ NỘI VỤ")

CORPUS: list[DocSpec] = [
    DocSpec(
        "ct-ttg-khan",
        "Chỉ thị",
        "CT",
        "15",
        "CT-TTg",
        ("THỦ TƯỚNG CHÍNH PHỦ",),
        "Hà Nội",
        _d(2024, 3, 5),
        "Về việc tăng cường công tác phòng, chống dịch bệnh",
        "THỦ TƯỚNG",
        "Trần Minh Khoa",
        urgency="Khẩn",
        noi_nhan=(
            "Các Bộ, cơ quan ngang Bộ, cơ quan thuộc Chính phủ",
            "UBND các tỉnh, thành phố trực thuộc trung ương",
        ),
        luu="Lưu: VT, KGVX (2b).",
        body=_BODY_GENERIC,
        agency_codes=("000.00.00.G22",),
    ),
    DocSpec(
        "cv-bnv",
        "Công văn",
        None,
        "05",
        "BNV-VP",
        ("BỘ NỘI VỤ",),
        "Hà Nội",
        _d(2024, 1, 8),
        "V/v hướng dẫn triển khai lưu trữ hồ sơ điện tử",
        "CHÁNH VĂN PHÒNG",
        "Lê Thị Hồng Nhung",
        signer_competence="TL. BỘ TRƯỞNG",
        kinh_gui=("Văn phòng Chính phủ",),
        noi_nhan=("Như trên", "Bộ trưởng (để báo cáo)"),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "nd-cp",
        "Nghị định",
        "NĐ",
        "30",
        "NĐ-CP",
        ("CHÍNH PHỦ",),
        "Hà Nội",
        _d(2020, 3, 5),
        "Về công tác văn thư",
        "THỦ TƯỚNG",
        "Nguyễn Văn Phúc",
        year=2020,
        signer_competence="TM. CHÍNH PHỦ",
        noi_nhan=("Ban Bí thư Trung ương Đảng", "Thủ tướng, các Phó Thủ tướng Chính phủ"),
        luu="Lưu: VT, TCCV (2b).",
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "qd-ubnd",
        "Quyết định",
        "QĐ",
        "45",
        "QĐ-UBND",
        UBND_TN,
        "Tây Ninh",
        _d(2024, 3, 15),
        "Về việc ban hành Quy chế quản lý văn bản điện tử",
        "CHỦ TỊCH",
        "Phạm Văn Hùng",
        signer_competence="TM. ỦY BAN NHÂN DÂN",
        noi_nhan=("Như Điều 3", "Thường trực Tỉnh ủy", "Sở Thông tin và Truyền thông"),
        body=_BODY_QD,
        agency_codes=("000.00.00.H53",),
    ),
    DocSpec(
        "qd-misspelt",
        "Quyết định",
        "QĐ",
        "123",
        "QD-UBND",
        ("UBND HUYỆN GÒ DẦU",),
        "Gò Dầu",
        _d(2023, 11, 20),
        "Về việc thành lập Tổ công tác chuyển đổi số",
        "CHỦ TỊCH",
        "Võ Thanh Tâm",
        noi_nhan=("Như Điều 3", "UBND tỉnh Tây Ninh"),
        body=_BODY_QD,
        flags=("notation_spelling:QD",),
    ),
    DocSpec(
        "tb-snv",
        "Thông báo",
        "TB",
        "12",
        "TB-SNV",
        SNV_TN,
        "Tây Ninh",
        _d(2024, 2, 2),
        "Kết luận của Giám đốc Sở tại cuộc họp giao ban tháng 01 năm 2024",
        "CHÁNH VĂN PHÒNG",
        "Đặng Thị Mai",
        signer_competence="TL. GIÁM ĐỐC",
        noi_nhan=("Các phòng, đơn vị thuộc Sở",),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "kh-ubnd",
        "Kế hoạch",
        "KH",
        "210",
        "KH-UBND",
        ("ỦY BAN NHÂN DÂN", "THÀNH PHỐ HỒ CHÍ MINH"),
        "Thành phố Hồ Chí Minh",
        _d(2023, 12, 28),
        "Triển khai Đề án 06 năm 2024",
        "PHÓ CHỦ TỊCH",
        "Bùi Quang Vinh",
        signer_competence="KT. CHỦ TỊCH",
        noi_nhan=("Bộ Công an", "Các sở, ban, ngành Thành phố"),
        body=_BODY_GENERIC,
        agency_codes=("000.00.00.H29",),
    ),
    DocSpec(
        "bc-stc",
        "Báo cáo",
        "BC",
        "88",
        "BC-STC",
        ("UBND TỈNH LÂM ĐỒNG", "SỞ TÀI CHÍNH"),
        "Lâm Đồng",
        _d(2024, 4, 10),
        "Tình hình thực hiện dự toán ngân sách quý I năm 2024",
        "GIÁM ĐỐC",
        "Hoàng Anh Tuấn",
        kinh_gui=("Ủy ban nhân dân tỉnh Lâm Đồng",),
        noi_nhan=("Như trên", "Bộ Tài chính"),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "ttr-snv",
        "Tờ trình",
        "TTr",
        "34",
        "TTr-SNV",
        SNV_TN,
        "Tây Ninh",
        _d(2024, 5, 6),
        "Về việc đề nghị phê duyệt Đề án vị trí việc làm",
        "PHÓ GIÁM ĐỐC",
        "Ngô Thị Lan",
        signer_competence="KT. GIÁM ĐỐC",
        kinh_gui=("Ủy ban nhân dân tỉnh Tây Ninh",),
        noi_nhan=("Như trên", "Ban Giám đốc Sở"),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "gm-vpcp",
        "Giấy mời",
        "GM",
        "101",
        "GM-VPCP",
        ("VĂN PHÒNG CHÍNH PHỦ",),
        "Hà Nội",
        _d(2024, 6, 17),
        "Dự Hội nghị trực tuyến về cải cách thủ tục hành chính",
        "PHÓ CHỦ NHIỆM",
        "Đỗ Mạnh Cường",
        signer_competence="KT. BỘ TRƯỞNG, CHỦ NHIỆM",
        urgency="Thượng khẩn",
        kinh_gui=("Bộ Nội vụ", "Bộ Tư pháp", "Ủy ban nhân dân tỉnh Tây Ninh"),
        noi_nhan=("Như trên", "Cổng Thông tin điện tử Chính phủ"),
        body=_BODY_GENERIC,
        agency_codes=("000.00.00.G22", "000.00.00.G09"),
    ),
    DocSpec(
        "hd-snv",
        "Hướng dẫn",
        "HD",
        "07",
        "HD-SNV",
        ("UBND TỈNH QUẢNG NINH", "SỞ NỘI VỤ"),
        "Quảng Ninh",
        _d(2024, 1, 25),
        "Thực hiện chế độ báo cáo thống kê ngành Nội vụ",
        "GIÁM ĐỐC",
        "Trịnh Văn Sơn",
        noi_nhan=("Các sở, ban, ngành", "UBND các huyện, thị xã, thành phố"),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "cd-ttg-hoatoc",
        "Công điện",
        "CĐ",
        "85",
        "CĐ-TTg",
        ("THỦ TƯỚNG CHÍNH PHỦ",),
        "Hà Nội",
        _d(2024, 9, 6),
        "Về việc tập trung ứng phó khẩn cấp với bão số 3",
        "PHÓ THỦ TƯỚNG",
        "Lê Văn Thành",
        signer_competence="KT. THỦ TƯỚNG",
        urgency="Hỏa tốc",
        urgency_print="HOẢ TỐC",
        noi_nhan=("Ban Bí thư Trung ương Đảng", "Bộ Quốc phòng", "Bộ Công an"),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "nq-hdnd",
        "Nghị quyết",
        "NQ",
        "19",
        "NQ-HĐND",
        ("HỘI ĐỒNG NHÂN DÂN", "TỈNH ĐỒNG NAI"),
        "Đồng Nai",
        _d(2023, 12, 8),
        "Quy định mức chi hỗ trợ công tác chuyển đổi số",
        "CHỦ TỊCH",
        "Thái Bảo",
        year=2023,
        noi_nhan=("Ủy ban Thường vụ Quốc hội", "Chính phủ"),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "tt-bnv",
        "Thông tư",
        "TT",
        "01",
        "TT-BNV",
        ("BỘ NỘI VỤ",),
        "Hà Nội",
        _d(2011, 1, 19),
        "Hướng dẫn thể thức và kỹ thuật trình bày văn bản hành chính",
        "THỨ TRƯỞNG",
        "Trần Anh Tuấn",
        year=2011,
        signer_competence="KT. BỘ TRƯỞNG",
        noi_nhan=("Văn phòng Trung ương Đảng", "Văn phòng Quốc hội"),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "luat-qh",
        "Luật",
        None,
        "29",
        "QH14",
        ("QUỐC HỘI",),
        None,
        None,
        "BẢO VỆ BÍ MẬT NHÀ NƯỚC",
        "CHỦ TỊCH QUỐC HỘI",
        "Nguyễn Thị Kim",
        year=2018,
        number_label="Luật số: ",
        luu="",
        body=(
            "Luật này đã được Quốc hội nước Cộng hòa xã hội chủ nghĩa Việt Nam khóa XIV, kỳ họp thứ 6 "
            "thông qua ngày 15 tháng 11 năm 2018.",
        ),
    ),
    DocSpec(
        "qc-bqp-mat",
        "Quy chế",
        "QC",
        "03",
        "QC-BQP",
        ("BỘ QUỐC PHÒNG",),
        "Hà Nội",
        _d(2022, 7, 1),
        "Bảo vệ bí mật nhà nước trong Quân đội",
        "THỨ TRƯỞNG",
        "Phan Văn Giang",
        signer_competence="KT. BỘ TRƯỞNG",
        secrecy="Mật",
        noi_nhan=("Các cơ quan, đơn vị trực thuộc Bộ",),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "qyd-dhqg",
        "Quy định",
        "QyĐ",
        "07",
        "QyĐ-ĐHQG",
        ("ĐẠI HỌC QUỐC GIA HÀ NỘI",),
        "Hà Nội",
        _d(2023, 4, 14),
        "Về quản lý văn bản điện tử trong Đại học Quốc gia Hà Nội",
        "GIÁM ĐỐC",
        "Lê Quân",
        noi_nhan=("Các đơn vị thành viên",),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "ctr-ubnd",
        "Chương trình",
        "CTr",
        "16",
        "CTr-UBND",
        ("ỦY BAN NHÂN DÂN", "THÀNH PHỐ ĐÀ NẴNG"),
        "Đà Nẵng",
        _d(2024, 2, 20),
        "Công tác cải cách hành chính năm 2024",
        "PHÓ CHỦ TỊCH",
        "Hồ Kỳ Minh",
        signer_competence="KT. CHỦ TỊCH",
        noi_nhan=("Bộ Nội vụ", "Thường trực Thành ủy"),
        body=_BODY_GENERIC,
        agency_codes=("000.00.00.H17",),
    ),
    DocSpec(
        "pa-sct",
        "Phương án",
        "PA",
        "02",
        "PA-SCT",
        ("UBND TỈNH BÌNH DƯƠNG", "SỞ CÔNG THƯƠNG"),
        "Bình Dương",
        _d(2024, 3, 1),
        "Bảo đảm cung ứng điện mùa khô năm 2024",
        "GIÁM ĐỐC",
        "Lý Văn Hiền",
        noi_nhan=("UBND tỉnh Bình Dương", "Công ty Điện lực Bình Dương"),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "da-bnv",
        "Đề án",
        "ĐA",
        "11",
        "ĐA-BNV",
        ("BỘ NỘI VỤ",),
        "Hà Nội",
        _d(2023, 10, 12),
        "Số hóa tài liệu lưu trữ giai đoạn 2024 - 2030",
        "BỘ TRƯỞNG",
        "Phạm Thị Thanh",
        noi_nhan=("Thủ tướng Chính phủ", "Văn phòng Chính phủ"),
        body=_BODY_GENERIC,
        agency_codes=("000.00.00.G12",),
    ),
    DocSpec(
        "bb-hop",
        "Biên bản",
        "BB",
        "04",
        "BB-VP",
        ("SỞ Y TẾ TỈNH CẦN THƠ", "VĂN PHÒNG"),
        "Cần Thơ",
        _d(2024, 5, 21),
        "Họp Hội đồng thi đua, khen thưởng năm 2024",
        "CHỦ TRÌ CUỘC HỌP",
        "Dương Văn Lực",
        noi_nhan=("Các thành viên Hội đồng",),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "hd-hop-dong",
        "Hợp đồng",
        "HĐ",
        "15",
        "HĐ-TTCNTT",
        ("SỞ THÔNG TIN VÀ TRUYỀN THÔNG", "TRUNG TÂM CÔNG NGHỆ THÔNG TIN"),
        "Huế",
        _d(2024, 8, 2),
        "Cung cấp dịch vụ hạ tầng máy chủ",
        "GIÁM ĐỐC",
        "Tôn Nữ Hạnh",
        noi_nhan=("Bên B",),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "guq",
        "Giấy ủy quyền",
        "GUQ",
        "02",
        "GUQ-CTY",
        ("TỔNG CÔNG TY BƯU ĐIỆN", "CÔNG TY BƯU CHÍNH"),
        "Hải Phòng",
        _d(2024, 7, 9),
        "Ủy quyền ký hợp đồng dịch vụ bưu chính công ích",
        "GIÁM ĐỐC",
        "Mạc Văn Khánh",
        noi_nhan=("Người được ủy quyền",),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "ggt",
        "Giấy giới thiệu",
        "GGT",
        "56",
        "GGT-VP",
        ("BỘ TƯ PHÁP", "VĂN PHÒNG"),
        "Hà Nội",
        _d(2024, 4, 3),
        "Giới thiệu ông Nguyễn Văn Bình đến liên hệ công tác",
        "PHÓ CHÁNH VĂN PHÒNG",
        "Đinh Thu Trang",
        signer_competence="KT. CHÁNH VĂN PHÒNG",
        kinh_gui=("Sở Tư pháp tỉnh Tây Ninh",),
        noi_nhan=("Như trên",),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "pg",
        "Phiếu gửi",
        "PG",
        "09",
        "PG-VP",
        ("BỘ KẾ HOẠCH VÀ ĐẦU TƯ", "VĂN PHÒNG"),
        "Hà Nội",
        _d(2024, 1, 5),
        "Gửi tài liệu phục vụ phiên họp Chính phủ",
        "CHÁNH VĂN PHÒNG",
        "Kiều Văn Đức",
        kinh_gui=("Văn phòng Chính phủ",),
        noi_nhan=("Như trên",),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "tc-bng",
        "Thông cáo",
        "TC",
        "01",
        "TC-BNG",
        ("BỘ NGOẠI GIAO",),
        "Hà Nội",
        _d(2024, 9, 11),
        "Về chuyến thăm chính thức Việt Nam của Thủ tướng nước bạn",
        "NGƯỜI PHÁT NGÔN",
        "Phạm Thu Hằng",
        noi_nhan=("Các cơ quan báo chí",),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "dan-sgtvt",
        "Dự án",
        "DA",
        "05",
        "DA-SGTVT",
        ("UBND TỈNH AN GIANG", "SỞ GIAO THÔNG VẬN TẢI"),
        "An Giang",
        _d(2023, 6, 30),
        "Nâng cấp tuyến đường tỉnh 941",
        "GIÁM ĐỐC",
        "Châu Văn Tài",
        noi_nhan=("UBND tỉnh An Giang", "Sở Kế hoạch và Đầu tư"),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "bgn",
        "Bản ghi nhớ",
        "BGN",
        "01",
        "BGN-ĐHĐN",
        ("ĐẠI HỌC ĐÀ NẴNG",),
        "Đà Nẵng",
        _d(2024, 10, 4),
        "Hợp tác đào tạo nguồn nhân lực công nghệ số",
        "GIÁM ĐỐC",
        "Nguyễn Ngọc Vũ",
        noi_nhan=("Các trường đại học thành viên",),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "btt",
        "Bản thỏa thuận",
        "BTT",
        "02",
        "BTT-SYT",
        ("UBND TỈNH NGHỆ AN", "SỞ Y TẾ"),
        "Nghệ An",
        _d(2024, 2, 27),
        "Phối hợp khám chữa bệnh từ xa",
        "GIÁM ĐỐC",
        "Trương Thị Hoa",
        noi_nhan=("Bệnh viện Hữu nghị Đa khoa Nghệ An",),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "gnp",
        "Giấy nghỉ phép",
        "GNP",
        "17",
        "GNP-VP",
        ("SỞ NỘI VỤ TỈNH HÀ NAM", "VĂN PHÒNG"),
        "Hà Nam",
        _d(2024, 7, 22),
        "Cấp giấy nghỉ phép năm 2024 cho bà Lê Thị Thu",
        "CHÁNH VĂN PHÒNG",
        "Vũ Đình Nam",
        noi_nhan=("Bà Lê Thị Thu",),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "pc",
        "Phiếu chuyển",
        "PC",
        "23",
        "PC-VPCP",
        ("VĂN PHÒNG CHÍNH PHỦ",),
        "Hà Nội",
        _d(2024, 3, 19),
        "Chuyển đơn kiến nghị của công dân",
        "VỤ TRƯỞNG VỤ TỔNG HỢP",
        "Hà Văn Quyết",
        signer_competence="TL. BỘ TRƯỞNG, CHỦ NHIỆM",
        kinh_gui=("Ủy ban nhân dân tỉnh Tây Ninh",),
        noi_nhan=("Như trên",),
        body=_BODY_GENERIC,
        agency_codes=("000.00.00.H53",),
    ),
    DocSpec(
        "pb",
        "Phiếu báo",
        "PB",
        "08",
        "PB-KBNN",
        ("BỘ TÀI CHÍNH", "KHO BẠC NHÀ NƯỚC"),
        "Hà Nội",
        _d(2024, 11, 1),
        "Báo số dư tài khoản tiền gửi",
        "TRƯỞNG PHÒNG",
        "Lò Văn Piểng",
        signer_competence="TL. TỔNG GIÁM ĐỐC",
        noi_nhan=("Đơn vị sử dụng ngân sách",),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "cv-ubnd-tuyetmat",
        "Công văn",
        None,
        "1234",
        "UBND-VP",
        UBND_TN,
        "Tây Ninh",
        _d(2024, 6, 3),
        "V/v bảo vệ an ninh tuyến biên giới",
        "CHỦ TỊCH",
        "Phạm Văn Hùng",
        signer_competence="TM. ỦY BAN NHÂN DÂN",
        secrecy="Tuyệt mật",
        urgency="Hỏa tốc",
        kinh_gui=("Bộ Chỉ huy Quân sự tỉnh", "Công an tỉnh"),
        noi_nhan=("Như trên",),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "cv-stttt-toimat",
        "Công văn",
        None,
        "456",
        "STTTT-CNTT",
        ("UBND TỈNH TÂY NINH", "SỞ THÔNG TIN VÀ TRUYỀN THÔNG"),
        "Tây Ninh",
        _d(2024, 8, 14),
        "V/v triển khai hệ thống quản lý văn bản và điều hành mới",
        "PHÓ GIÁM ĐỐC",
        "Tạ Quang Huy",
        signer_competence="KT. GIÁM ĐỐC",
        secrecy="Tối mật",
        kinh_gui=("Các sở, ban, ngành tỉnh",),
        noi_nhan=("Như trên", "UBND tỉnh Tây Ninh"),
        body=_BODY_GENERIC,
        agency_codes=("28.22.H17",),
        flags=("legacy_agency_code:28.22.H17",),
    ),
    DocSpec(
        "cv-vpcp-padded",
        "Công văn",
        None,
        "7890",
        "VPCP-KSTT",
        ("VĂN PHÒNG CHÍNH PHỦ",),
        "Hà Nội",
        _d(2023, 2, 1),
        "V/v kết nối, liên thông văn bản điện tử qua Trục liên thông văn bản quốc gia",
        "VỤ TRƯỞNG",
        "Ngô Hải Phan",
        signer_competence="TL. BỘ TRƯỞNG, CHỦ NHIỆM",
        date_style="padded",
        kinh_gui=("Các Bộ, cơ quan ngang Bộ", "UBND các tỉnh, thành phố trực thuộc trung ương"),
        noi_nhan=("Như trên", "Cục Bưu điện Trung ương"),
        body=_BODY_GENERIC,
        agency_codes=("000.00.00.G22",),
    ),
    DocSpec(
        "cv-numeric-date",
        "Công văn",
        None,
        "321",
        "SGDĐT-VP",
        ("UBND THÀNH PHỐ CẦN THƠ", "SỞ GIÁO DỤC VÀ ĐÀO TẠO"),
        "Cần Thơ",
        _d(2023, 8, 15),
        "V/v chuẩn bị năm học mới 2023 - 2024",
        "GIÁM ĐỐC",
        "Lâm Thị Ngọc",
        date_style="numeric",
        kinh_gui=("Các trường trung học phổ thông",),
        noi_nhan=("Như trên",),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "qd-ttg-normative",
        "Quyết định",
        "QĐ",
        "28",
        "QĐ-TTg",
        ("THỦ TƯỚNG CHÍNH PHỦ",),
        "Hà Nội",
        _d(2018, 7, 12),
        "Về việc gửi, nhận văn bản điện tử giữa các cơ quan trong hệ thống hành chính nhà nước",
        "THỦ TƯỚNG",
        "Nguyễn Hữu Phước",
        year=2018,
        noi_nhan=("Ban Bí thư Trung ương Đảng", "Các Bộ, cơ quan ngang Bộ"),
        body=_BODY_QD,
    ),
    DocSpec(
        "kh-hoatoc-hengio",
        "Kế hoạch",
        "KH",
        "77",
        "KH-BCĐ",
        ("UBND TỈNH KHÁNH HÒA", "BAN CHỈ ĐẠO PHÒNG CHỐNG THIÊN TAI"),
        "Khánh Hòa",
        _d(2024, 10, 30),
        "Sơ tán dân khỏi vùng nguy hiểm trước khi bão đổ bộ",
        "TRƯỞNG BAN",
        "Lê Hữu Hoàng",
        urgency="Hỏa tốc hẹn giờ",
        noi_nhan=("Ban Chỉ đạo Quốc gia về phòng, chống thiên tai", "UBND các huyện, thị xã"),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "bc-khan",
        "Báo cáo",
        "BC",
        "150",
        "BC-UBND",
        ("ỦY BAN NHÂN DÂN", "TỈNH TÂY NINH"),
        "Tây Ninh",
        _d(2024, 9, 25),
        "Kết quả khắc phục hậu quả mưa lũ",
        "PHÓ CHỦ TỊCH",
        "Nguyễn Thanh Ngọc",
        signer_competence="KT. CHỦ TỊCH",
        urgency="Khẩn",
        kinh_gui=("Thủ tướng Chính phủ",),
        noi_nhan=("Như trên", "Bộ Nông nghiệp và Phát triển nông thôn"),
        body=_BODY_GENERIC,
        agency_codes=("000.00.00.H53", "000.00.00.G22"),
    ),
    DocSpec(
        "tb-q-giamdoc",
        "Thông báo",
        "TB",
        "66",
        "TB-BV",
        ("SỞ Y TẾ TỈNH BÌNH ĐỊNH", "BỆNH VIỆN ĐA KHOA TỈNH"),
        "Bình Định",
        _d(2024, 12, 2),
        "Lịch tiếp công dân tháng 12 năm 2024",
        "",
        "Mai Xuân Thu",
        signer_competence="Q. GIÁM ĐỐC",
        noi_nhan=("Các khoa, phòng",),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "ttr-tuq",
        "Tờ trình",
        "TTr",
        "09",
        "TTr-TTCNTT",
        ("SỞ THÔNG TIN VÀ TRUYỀN THÔNG", "TRUNG TÂM CÔNG NGHỆ THÔNG TIN"),
        "Vĩnh Long",
        _d(2024, 4, 18),
        "Đề nghị thuê dịch vụ chữ ký số cho cán bộ, công chức",
        "GIÁM ĐỐC TRUNG TÂM",
        "Huỳnh Văn Hậu",
        signer_competence="TUQ. GIÁM ĐỐC SỞ",
        kinh_gui=("Sở Thông tin và Truyền thông tỉnh Vĩnh Long",),
        noi_nhan=("Như trên",),
        body=_BODY_GENERIC,
    ),
    DocSpec(
        "cv-no-colon",
        "Công văn",
        None,
        "58",
        "BTP-VP",
        ("BỘ TƯ PHÁP",),
        "Hà Nội",
        _d(2024, 5, 29),
        "V/v góp ý dự thảo Thông tư quy định chi tiết về văn thư điện tử",
        "CHÁNH VĂN PHÒNG",
        "Lại Văn Trung",
        signer_competence="TL. BỘ TRƯỞNG",
        number_label="Số ",
        kinh_gui=("Bộ Nội vụ",),
        noi_nhan=("Như trên",),
        body=_BODY_GENERIC,
        agency_codes=("000.00.00.G09",),
    ),
    DocSpec(
        "nq-cp-thuongkhan",
        "Nghị quyết",
        "NQ",
        "01",
        "NQ-CP",
        ("CHÍNH PHỦ",),
        "Hà Nội",
        _d(2024, 1, 5),
        "Về nhiệm vụ, giải pháp chủ yếu thực hiện Kế hoạch phát triển kinh tế - xã hội năm 2024",
        "THỦ TƯỚNG",
        "Đặng Quốc Khánh",
        signer_competence="TM. CHÍNH PHỦ",
        urgency="Thượng khẩn",
        noi_nhan=("Ban Bí thư Trung ương Đảng", "Văn phòng Quốc hội"),
        body=_BODY_GENERIC,
    ),
]


def by_key(key: str) -> DocSpec:
    return next(d for d in CORPUS if d.key == key)


# -- PDF -----------------------------------------------------------------------------------


def _fonts(pdf: Any) -> None:
    pdf.add_font("DejaVu", "", f"{FONT_DIR}/DejaVuSans.ttf")
    pdf.add_font("DejaVu", "B", f"{FONT_DIR}/DejaVuSans-Bold.ttf")


def make_pdf(doc: DocSpec) -> bytes:
    """Render the document on A4 in the Decree 30 layout with a real Unicode text layer."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_creator("edocgw tests")
    pdf.set_compression(True)
    _fonts(pdf)
    pdf.set_margins(20, 15, 15)
    pdf.set_auto_page_break(True, 20)
    pdf.add_page()
    lx, lw, rx, rw = 15.0, 80.0, 100.0, 100.0

    def cell(
        x: float, y: float, w: float, text: str, style: str = "", size: float = 11, align: str = "C"
    ) -> None:
        pdf.set_font("DejaVu", style, size)
        pdf.set_xy(x, y)
        pdf.cell(w, 5.5, text, align=align)

    y = 15.0
    left = list(doc.issuer_lines)
    right = [MOTTO_1, MOTTO_2]
    for i in range(max(len(left), len(right))):
        if i < len(left):
            cell(lx, y, lw, left[i], "B" if i == len(left) - 1 else "", 10.5)
        if i < len(right):
            cell(rx, y, rw, right[i], "B", 10.5 if i == 0 else 11)
        y += 5.5
    pdf.line(lx + 25, y + 0.5, lx + lw - 25, y + 0.5)
    pdf.line(rx + 25, y + 0.5, rx + rw - 25, y + 0.5)
    y += 4
    cell(lx, y, lw, f"{doc.number_label}{doc.printed_number}", "", 11)
    pd = doc.place_date_line()
    if pd:
        cell(rx, y, rw, pd, "", 11)
    y += 6
    if doc.kind == "Công văn":
        pdf.set_font("DejaVu", "", 10.5)
        pdf.set_xy(lx + 5, y)
        pdf.multi_cell(lw - 10, 5, doc.subject, align="C")
        y = pdf.get_y() + 1
    for mark in doc.marks():
        pdf.set_font("DejaVu", "B", 12)
        width = pdf.get_string_width(mark) + 6
        pdf.set_xy(lx + (lw - width) / 2, y)
        pdf.cell(width, 7, mark, border=1, align="C")
        y += 9
    y += 4
    pdf.set_xy(20, y)
    title = doc.printed_title
    if title:
        pdf.set_font("DejaVu", "B", 13)
        pdf.cell(175, 7, title, align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("DejaVu", "B", 12)
        pdf.multi_cell(175, 6, doc.subject, align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    if doc.kinh_gui:
        pdf.set_font("DejaVu", "", 12)
        if len(doc.kinh_gui) == 1:
            pdf.cell(
                175, 6, f"Kính gửi: {doc.kinh_gui[0]}.", align="C", new_x="LMARGIN", new_y="NEXT"
            )
        else:
            pdf.set_x(50)
            pdf.cell(25, 6, "Kính gửi:")
            for i, item in enumerate(doc.kinh_gui):
                end = "." if i == len(doc.kinh_gui) - 1 else ";"
                pdf.set_x(75)
                pdf.cell(120, 6, f"- {item}{end}", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
    pdf.set_font("DejaVu", "", 11.5)
    for para in doc.body:
        pdf.multi_cell(175, 6, "      " + para, align="J", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)
    if doc.agency_codes:
        pdf.multi_cell(
            175,
            6,
            "      Mã định danh điện tử: " + ", ".join(doc.agency_codes) + ".",
            new_x="LMARGIN",
            new_y="NEXT",
        )
    pdf.ln(6)
    if pdf.get_y() > 220:
        pdf.add_page()
    y = pdf.get_y()
    # Signature block: Nơi nhận on the left, signer on the right, aligned from the same line.
    items = [f"- {r};" for r in doc.noi_nhan] + ([f"- {doc.luu}"] if doc.luu else [])
    if items:
        cell(lx + 5, y, lw, "Nơi nhận:", "B", 10.5, "L")
        for i, item in enumerate(items):
            cell(lx + 5, y + 5 + i * 4.5, lw, item, "", 9.5, "L")
    sy = y
    for line in (doc.signer_competence, doc.signer_position):
        if line:
            cell(rx, sy, rw, line, "B", 11)
            sy += 5.5
    cell(rx, max(sy + 22, y + 5 + len(items) * 4.5 + 4), rw, doc.signer_name, "B", 11)
    return bytes(pdf.output())


# -- DOCX ----------------------------------------------------------------------------------


def make_docx(doc: DocSpec) -> bytes:
    """The same document as Word writes it: header and signature blocks in borderless tables."""
    import docx
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Pt

    d = docx.Document()
    style = d.styles["Normal"]
    style.font.name = "Times New Roman"
    style.font.size = Pt(13)

    def fill(cell: Any, lines: list[str], bold_last: bool = False, bold_all: bool = False) -> None:
        cell.paragraphs[0].text = ""
        for i, line in enumerate(lines):
            p = cell.paragraphs[0] if i == 0 else cell.add_paragraph()
            run = p.add_run(line)
            run.bold = bold_all or (bold_last and i == len(lines) - 1)
            p.alignment = WD_ALIGN_PARAGRAPH.CENTER

    head = d.add_table(rows=2, cols=2)
    fill(head.cell(0, 0), list(doc.issuer_lines), bold_last=True)
    fill(head.cell(0, 1), [MOTTO_1, MOTTO_2], bold_all=True)
    left = [f"{doc.number_label}{doc.printed_number}"]
    if doc.kind == "Công văn":
        left.append(doc.subject)
    left.extend(doc.marks())
    fill(head.cell(1, 0), left)
    fill(head.cell(1, 1), [doc.place_date_line() or ""])
    title = doc.printed_title
    if title:
        p = d.add_paragraph()
        p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        p.add_run(title).bold = True
        p = d.add_paragraph()
        p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        p.add_run(doc.subject).bold = True
    if len(doc.kinh_gui) == 1:
        p = d.add_paragraph(f"Kính gửi: {doc.kinh_gui[0]}.")
        p.alignment = WD_ALIGN_PARAGRAPH.CENTER
    elif doc.kinh_gui:
        d.add_paragraph("Kính gửi:")
        for i, item in enumerate(doc.kinh_gui):
            d.add_paragraph(f"- {item}{'.' if i == len(doc.kinh_gui) - 1 else ';'}")
    for para in doc.body:
        d.add_paragraph(para)
    if doc.agency_codes:
        d.add_paragraph("Mã định danh điện tử: " + ", ".join(doc.agency_codes) + ".")
    sig = d.add_table(rows=1, cols=2)
    items = [f"- {r};" for r in doc.noi_nhan] + ([f"- {doc.luu}"] if doc.luu else [])
    left_cell = sig.cell(0, 0)
    left_cell.paragraphs[0].text = ""
    if items:
        left_cell.paragraphs[0].add_run("Nơi nhận:").bold = True
        for item in items:
            left_cell.add_paragraph(item)
    right = [x for x in (doc.signer_competence, doc.signer_position) if x] + [
        "",
        "",
        doc.signer_name,
    ]
    fill(sig.cell(0, 1), right, bold_all=True)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


@functools.cache
def pdf_bytes(key: str) -> bytes:
    """Cached PDF of a corpus document (rendering takes ~20 ms)."""
    return make_pdf(by_key(key))


@functools.cache
def docx_bytes(key: str) -> bytes:
    """Cached DOCX of a corpus document."""
    return make_docx(by_key(key))


def make_edxml(
    doc: DocSpec,
    to_codes: tuple[str, ...] = ("000.00.00.H53",),
    from_code: str = "000.00.00.G22",
    attachments: tuple[tuple[str, bytes], ...] = (),
) -> bytes:
    """An edXML package carrying the document's facts in its header, like the national axis."""
    from mailparse import edxml

    prio = {None: 0, "Khẩn": 1, "Thượng khẩn": 2, "Hỏa tốc": 3, "Hỏa tốc hẹn giờ": 4}[doc.urgency]
    d = doc.date or dt.date(2024, 1, 1)
    pkg = edxml.EdxmlPackage(
        from_organ=edxml.Organ(code=from_code, name=doc.issuer, in_charge=doc.issuer_lines[0]),
        to=[edxml.Organ(code=c, name=f"Cơ quan {c}") for c in to_codes],
        document_id=f"{from_code},{d:%Y/%m/%d},{doc.printed_number}",
        code_number=doc.number,
        code_notation=doc.notation if not doc.year else f"{doc.year}/{doc.notation}",
        place=doc.place,
        promulgation_date=doc.date,
        type_code="1",
        type_detail="0",
        type_name=doc.kind,
        subject=doc.subject,
        content=" ".join(doc.body)[:200],
        signer_competence=doc.signer_competence,
        signer_position=doc.signer_position,
        signer_full_name=doc.signer_name,
        priority=prio,
        other_info={
            "SphereOfPromulgation": "Lưu hành nội bộ",
            "TyperNotation": "VT",
            "PromulgationAmount": "1",
            "PageAmount": "2",
        },
        steering_type=1,
        to_places=list(doc.recipients),
        attachments=[
            edxml.EdxmlAttachment(content_id=f"cid:{i}", name=name, content_type=None, data=data)
            for i, (name, data) in enumerate(attachments, start=1)
        ],
    )
    return edxml.write_package(pkg)


__all__ = [
    "CORPUS",
    "DocSpec",
    "by_key",
    "docx_bytes",
    "make_docx",
    "make_edxml",
    "make_pdf",
    "pdf_bytes",
]
