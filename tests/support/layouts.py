"""Generated documents in the layouts real agencies use, with the truth for each.

Unlike :mod:`tests.support.corpus` (hand-written documents, one layout), this draws documents
from pools of organs (ministries and their departments, provinces, districts, joint issuers),
types, signers, subjects, recipients and meeting lines, with a seeded random generator, and
varies how they are laid out: the two-column header table of the Decree 30 templates (with
different column widths), a typed single-column header, issuer names over two lines, long
names wrapped by the layout, dates wrapped before the year, drafts with no number yet,
notations over two lines, Nơi nhận with several recipients on one line, Giấy mời with meeting
lines in several spellings.

Renderings: DOCX (python-docx), PDF by LibreOffice from that DOCX (``render_pdfs_with_libreoffice``:
many files in one ``soffice`` call), and PDF drawn directly by fpdf2 (a second producer)."""

from __future__ import annotations

import datetime as dt
import io
import random
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FONT_DIR = "/usr/share/fonts/truetype/dejavu"
MOTTO_1 = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO_2 = "Độc lập - Tự do - Hạnh phúc"
VN = dt.timezone(dt.timedelta(hours=7))


@dataclass(frozen=True)
class Organ:
    lines: tuple[str, ...]  # as printed in the header, top to bottom
    issuer: str  # the truth
    parent: str | None
    abbr: str
    place: str
    level: str  # "central" | "province" | "district" | "department"


@dataclass
class LayoutDoc:
    key: str
    kind: str
    abbr: str | None
    organ: Organ
    number: str | None
    year: int | None
    notation: str
    date: dt.date | None
    place: str
    subject: str
    competence: str | None
    position: str
    name: str
    urgency: str | None = None
    secrecy: str | None = None
    kinh_gui: list[str] = field(default_factory=list)
    kinh_gui_style: str = "line"  # line | list | semicolon
    noi_nhan: list[list[str]] = field(default_factory=list)  # printed lines, items per line
    luu: str = "Lưu: VT."
    body: list[str] = field(default_factory=list)
    meeting_start: dt.datetime | None = None
    meeting_place: str | None = None
    layout: str = "table"  # table | single | typed (two columns by centred tab stops)
    left_width: float = 0.42
    issuer_breaks: bool = False  # issuer lines as one paragraph with manual breaks
    number_split: bool = False
    date_break: bool = False
    rule_text: bool = False  # a typed "-------" under the issuer and the motto
    subject_split: str = "none"  # none | break | paragraphs: how Word users wrap a subject
    noi_nhan_breaks: bool = False  # the Nơi nhận list as one paragraph with manual breaks

    def truth(self) -> dict[str, Any]:
        recipients: list[str] = []
        for item in self.kinh_gui + [i for line in self.noi_nhan for i in line]:
            if not item.startswith("Như ") and item not in recipients:
                recipients.append(item)
        return {
            "kind": self.kind,
            "number": self.number,
            "year": self.year,
            "notation": self.notation,
            "issuer": self.organ.issuer,
            "parent_issuer": self.organ.parent,
            "place": self.place,
            "date": self.date.isoformat() if self.date else None,
            "subject": self.subject,
            "signer": self.name,
            "signer_position": self.position,
            "signer_competence": self.competence,
            "urgency": self.urgency,
            "secrecy": self.secrecy,
            "recipients": recipients,
            "meeting_start": self.meeting_start.isoformat() if self.meeting_start else None,
            "meeting_place": self.meeting_place,
        }

    # -- what is printed ------------------------------------------------------------------

    def number_line(self) -> str:
        num = self.number if self.number else "        "
        year = f"/{self.year}" if self.year else ""
        return f"Số: {num}{year}/{self.notation}"

    def place_date(self) -> str:
        if self.date is None:
            return f"{self.place}, ngày      tháng      năm 2024"
        d = self.date
        day = f"{d.day:02d}" if d.day < 10 else str(d.day)
        month = f"{d.month:02d}" if d.month < 3 else str(d.month)
        return f"{self.place}, ngày {day} tháng {month} năm {d.year}"

    def marks(self) -> list[str]:
        return [m.upper() for m in (self.urgency, self.secrecy) if m]

    def noi_nhan_lines(self) -> list[str]:
        lines = ["- " + "; ".join(items) + ";" for items in self.noi_nhan]
        return lines + [f"- {self.luu}"]


# -- pools ---------------------------------------------------------------------------------

PROVINCES = (
    ("TIỀN GIANG", "Tiền Giang", "TỈNH"), ("YÊN BÁI", "Yên Bái", "TỈNH"),
    ("TÂY NINH", "Tây Ninh", "TỈNH"), ("NGHỆ AN", "Nghệ An", "TỈNH"),
    ("QUẢNG NINH", "Quảng Ninh", "TỈNH"), ("ĐỒNG NAI", "Đồng Nai", "TỈNH"),
    ("LÂM ĐỒNG", "Lâm Đồng", "TỈNH"), ("CÀ MAU", "Cà Mau", "TỈNH"),
    ("BẮC NINH", "Bắc Ninh", "TỈNH"), ("THỪA THIÊN HUẾ", "Thừa Thiên Huế", "TỈNH"),
    ("HÀ GIANG", "Hà Giang", "TỈNH"), ("KIÊN GIANG", "Kiên Giang", "TỈNH"),
    ("HỒ CHÍ MINH", "Thành phố Hồ Chí Minh", "THÀNH PHỐ"),
    ("HẢI PHÒNG", "Hải Phòng", "THÀNH PHỐ"), ("CẦN THƠ", "Cần Thơ", "THÀNH PHỐ"),
    ("ĐÀ NẴNG", "Đà Nẵng", "THÀNH PHỐ"), ("BÌNH ĐỊNH", "Bình Định", "TỈNH"),
)  # fmt: skip
DISTRICTS = (
    ("CHÂU THÀNH", "Châu Thành"), ("GÒ DẦU", "Gò Dầu"), ("LỤC YÊN", "Lục Yên"),
    ("THANH CHƯƠNG", "Thanh Chương"), ("ĐẦM HÀ", "Đầm Hà"), ("BẾN CÁT", "Bến Cát"),
)  # fmt: skip
DEPARTMENTS = (
    ("SỞ NỘI VỤ", "SNV"), ("SỞ Y TẾ", "SYT"), ("SỞ TÀI CHÍNH", "STC"),
    ("SỞ TÀI NGUYÊN VÀ MÔI TRƯỜNG", "STNMT"), ("SỞ GIÁO DỤC VÀ ĐÀO TẠO", "SGDĐT"),
    ("SỞ THÔNG TIN VÀ TRUYỀN THÔNG", "STTTT"), ("BAN QUẢN LÝ CÁC KHU CÔNG NGHIỆP", "BQL"),
    ("THANH TRA TỈNH", "TTr"),
)  # fmt: skip
CENTRAL = (
    Organ(("BỘ NỘI VỤ",), "BỘ NỘI VỤ", None, "BNV", "Hà Nội", "central"),
    Organ(("VĂN PHÒNG CHÍNH PHỦ",), "VĂN PHÒNG CHÍNH PHỦ", None, "VPCP", "Hà Nội", "central"),
    Organ(("BỘ TÀI CHÍNH", "TỔNG CỤC THUẾ"), "TỔNG CỤC THUẾ", "BỘ TÀI CHÍNH", "TCT", "Hà Nội", "department"),
    Organ(("BỘ TÀI CHÍNH", "KHO BẠC NHÀ NƯỚC"), "KHO BẠC NHÀ NƯỚC", "BỘ TÀI CHÍNH", "KBNN", "Hà Nội", "department"),
    Organ(("BỘ Y TẾ", "CỤC QUẢN LÝ DƯỢC"), "CỤC QUẢN LÝ DƯỢC", "BỘ Y TẾ", "QLD", "Hà Nội", "department"),
    Organ(("BỘ NỘI VỤ", "VỤ TỔ CHỨC - BIÊN CHẾ"), "VỤ TỔ CHỨC - BIÊN CHẾ", "BỘ NỘI VỤ", "TCBC", "Hà Nội", "department"),
    Organ(("BỘ GIÁO DỤC VÀ ĐÀO TẠO",), "BỘ GIÁO DỤC VÀ ĐÀO TẠO", None, "BGDĐT", "Hà Nội", "central"),
    Organ(("BỘ NÔNG NGHIỆP VÀ PHÁT TRIỂN NÔNG THÔN",), "BỘ NÔNG NGHIỆP VÀ PHÁT TRIỂN NÔNG THÔN", None, "BNN", "Hà Nội", "central"),
    Organ(("BỘ THÔNG TIN VÀ TRUYỀN THÔNG",), "BỘ THÔNG TIN VÀ TRUYỀN THÔNG", None, "BTTTT", "Hà Nội", "central"),
    Organ(("VĂN PHÒNG CHÍNH PHỦ - BỘ NỘI VỤ",), "VĂN PHÒNG CHÍNH PHỦ - BỘ NỘI VỤ", None, "VPCP-BNV", "Hà Nội", "central"),
    Organ(("BỘ TÀI CHÍNH - BỘ KẾ HOẠCH VÀ ĐẦU TƯ",), "BỘ TÀI CHÍNH - BỘ KẾ HOẠCH VÀ ĐẦU TƯ", None, "BTC-BKHĐT", "Hà Nội", "central"),
    Organ(("BỘ QUỐC PHÒNG",), "BỘ QUỐC PHÒNG", None, "BQP", "Hà Nội", "central"),
)  # fmt: skip

SURNAMES = (
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Huỳnh",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Ngô",
    "Dương",
)
MIDDLES = ("Văn", "Thị", "Minh", "Thanh", "Quốc", "Hữu", "Ngọc", "Đức", "Thu", "Hoài", "")
GIVEN = ("An", "Bình", "Cường", "Dũng", "Hà", "Hùng", "Lan", "Long", "Mai", "Nam", "Phúc", "Quang", "Sơn", "Tâm", "Thảo", "Trung", "Tuấn", "Vy", "Xuân", "Yến")  # fmt: skip

TOPICS = (
    "triển khai Kế hoạch chuyển đổi số năm {y}",
    "tăng cường công tác phòng, chống thiên tai, tìm kiếm cứu nạn",
    "rà soát, sắp xếp tổ chức bộ máy các cơ quan chuyên môn",
    "góp ý dự thảo Nghị định sửa đổi, bổ sung một số điều của Nghị định số 30/2020/NĐ-CP",
    "thực hiện chế độ báo cáo thống kê ngành nội vụ",
    "ban hành Quy chế quản lý, sử dụng chữ ký số trong cơ quan nhà nước",
    "tổ chức Hội nghị sơ kết 6 tháng đầu năm {y} và triển khai nhiệm vụ 6 tháng cuối năm",
    "đẩy mạnh giải ngân vốn đầu tư công và thực hiện các chương trình mục tiêu quốc gia",
    "phê duyệt danh mục thủ tục hành chính được thực hiện tiếp nhận, trả kết quả qua dịch vụ bưu chính công ích",
    "kiện toàn Ban Chỉ đạo cải cách hành chính",
    "hướng dẫn lưu trữ hồ sơ điện tử",
    "xử lý kiến nghị của cử tri trước kỳ họp thứ {n}",
)
RECIPIENTS = (
    "Văn phòng Chính phủ", "Bộ Nội vụ", "Bộ Tài chính", "Bộ Kế hoạch và Đầu tư",
    "Thường trực Tỉnh ủy", "Thường trực HĐND tỉnh", "Chủ tịch, các Phó Chủ tịch UBND tỉnh",
    "Các Sở, ban, ngành tỉnh", "UBND các huyện, thị xã, thành phố", "Sở Nội vụ",
    "Sở Thông tin và Truyền thông", "Cổng Thông tin điện tử tỉnh",
    "Các Bộ, cơ quan ngang Bộ, cơ quan thuộc Chính phủ",
    "Trung tâm Phục vụ hành chính công tỉnh", "Kho bạc Nhà nước tỉnh",
    "Ban Quản lý dự án đầu tư xây dựng các công trình dân dụng và công nghiệp tỉnh",
    "Lãnh đạo Văn phòng", "Các phòng chuyên môn thuộc Sở",
)  # fmt: skip
BODY = (
    "Thực hiện chỉ đạo của cấp trên về việc nâng cao hiệu quả công tác quản lý nhà nước, "
    "đề nghị các cơ quan, đơn vị khẩn trương rà soát, tổng hợp và báo cáo kết quả thực hiện "
    "trước ngày 30 tháng 6 năm 2024.",
    "Trong quá trình thực hiện, nếu có vướng mắc, các cơ quan, đơn vị phản ánh kịp thời về "
    "Văn phòng để tổng hợp, báo cáo cấp có thẩm quyền xem xét, quyết định; bảo đảm an toàn, "
    "bảo mật thông tin khi gửi, nhận văn bản điện tử.",
    "Căn cứ Luật Tổ chức chính quyền địa phương ngày 19 tháng 6 năm 2015; Luật sửa đổi, bổ sung "
    "một số điều của Luật Tổ chức Chính phủ và Luật Tổ chức chính quyền địa phương ngày 22 "
    "tháng 11 năm 2019;",
    "Giao Sở Nội vụ chủ trì, phối hợp với các cơ quan liên quan theo dõi, đôn đốc việc thực "
    "hiện; định kỳ hằng quý báo cáo kết quả về Ủy ban nhân dân tỉnh.",
)
MEETING_PLACES = (
    "Hội trường tầng 3, Trụ sở Ủy ban nhân dân tỉnh",
    "Phòng họp số 2, Sở Nội vụ, số 12 đường Lê Lợi, phường 1",
    "Phòng họp trực tuyến, Văn phòng Chính phủ, số 1 Hoàng Hoa Thám, Ba Đình, Hà Nội",
    "Hội trường A, Trung tâm Hội nghị tỉnh",
    "Phòng họp Ban Thường vụ, tầng 2, nhà B",
)
WEEKDAYS = ("thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy", "Chủ nhật")
KINDS = (
    ("Công văn", None, 6), ("Quyết định", "QĐ", 3), ("Thông báo", "TB", 2), ("Kế hoạch", "KH", 2),
    ("Báo cáo", "BC", 2), ("Tờ trình", "TTr", 2), ("Giấy mời", "GM", 3), ("Nghị quyết", "NQ", 1),
    ("Chỉ thị", "CT", 1), ("Hướng dẫn", "HD", 1), ("Quy chế", "QC", 1), ("Công điện", "CĐ", 1),
)  # fmt: skip


def _name(rng: random.Random) -> str:
    middle = rng.choice(MIDDLES)
    parts = [rng.choice(SURNAMES), middle, rng.choice(GIVEN)]
    if rng.random() < 0.3:
        parts.insert(2, rng.choice(GIVEN))
    return " ".join(p for p in parts if p)


def _local_organ(rng: random.Random) -> Organ:
    up, place, unit = rng.choice(PROVINCES)
    shape = rng.choice(
        ("ubnd", "ubnd", "hdnd", "dept", "dept", "dept2", "district", "district_dept")
    )
    if shape in ("ubnd", "hdnd"):
        head = "ỦY BAN NHÂN DÂN" if shape == "ubnd" else "HỘI ĐỒNG NHÂN DÂN"
        name = f"{head} {unit} {up}"
        return Organ(
            (head, f"{unit} {up}"),
            name,
            None,
            "UBND" if shape == "ubnd" else "HĐND",
            place,
            "province",
        )
    if shape in ("dept", "dept2"):
        dept, abbr = rng.choice(DEPARTMENTS)
        parent = f"UBND {unit} {up}" if shape == "dept" else f"ỦY BAN NHÂN DÂN {unit} {up}"
        return Organ((parent, dept), dept, parent, abbr, place, "department")
    d_up, d_place = rng.choice(DISTRICTS)
    if shape == "district":
        name = f"ỦY BAN NHÂN DÂN HUYỆN {d_up}"
        return Organ(("ỦY BAN NHÂN DÂN", f"HUYỆN {d_up}"), name, None, "UBND", d_place, "district")
    parent = f"UBND HUYỆN {d_up}"
    return Organ((parent, "PHÒNG NỘI VỤ"), "PHÒNG NỘI VỤ", parent, "PNV", d_place, "department")


def _signer(rng: random.Random, organ: Organ) -> tuple[str | None, str]:
    if organ.level in ("province", "district"):
        head = "HỘI ĐỒNG NHÂN DÂN" if organ.abbr == "HĐND" else "ỦY BAN NHÂN DÂN"
        return rng.choice(
            ((f"TM. {head}", "CHỦ TỊCH"), ("KT. CHỦ TỊCH", "PHÓ CHỦ TỊCH"), (None, "CHỦ TỊCH"))
        )
    if organ.level == "central":
        return rng.choice(
            (
                ("KT. BỘ TRƯỞNG", "THỨ TRƯỞNG"),
                ("TL. BỘ TRƯỞNG", "VỤ TRƯỞNG VỤ TỔ CHỨC CÁN BỘ"),
                (None, "BỘ TRƯỞNG"),
                ("KT. BỘ TRƯỞNG, CHỦ NHIỆM", "PHÓ CHỦ NHIỆM"),
            )
        )
    return rng.choice(
        (
            ("KT. GIÁM ĐỐC", "PHÓ GIÁM ĐỐC"),
            (None, "GIÁM ĐỐC"),
            ("Q. GIÁM ĐỐC", "PHÓ GIÁM ĐỐC"),
            ("KT. CỤC TRƯỞNG", "PHÓ CỤC TRƯỞNG"),
            ("TL. GIÁM ĐỐC", "CHÁNH VĂN PHÒNG"),
        )
    )


def _meeting(rng: random.Random, when: dt.date) -> tuple[dt.datetime, str, list[str]]:
    day = when + dt.timedelta(days=rng.randint(3, 20))
    hour, minute = rng.choice(((8, 0), (14, 30), (7, 30), (9, 0), (13, 30), (15, 0)))
    start = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=VN)
    place = rng.choice(MEETING_PLACES)
    wd = WEEKDAYS[day.weekday()]
    dm = (
        f"{day.day:02d}/{day.month:02d}/{day.year}"
        if rng.random() < 0.5
        else f"{day.day}/{day.month}/{day.year}"
    )
    words = f"ngày {day.day} tháng {day.month} năm {day.year}"
    style = rng.randrange(5)
    if style == 0:
        lines = [
            f"Thời gian: {hour:02d} giờ {minute:02d} phút, {wd}, ngày {dm}.",
            f"Địa điểm: {place}.",
        ]
    elif style == 1:
        lines = [f"- Thời gian: {hour}h{minute:02d}, {words}.", f"- Địa điểm: {place}."]
    elif style == 2:
        lines = [f"Tổ chức cuộc họp vào lúc {hour}h{minute:02d} ngày {dm} ({wd}) tại {place}."]
    elif style == 3:
        lines = [
            f"1. Thời gian: Vào hồi {hour} giờ {minute:02d}, {words}.",
            f"2. Địa điểm: {place}.",
            "3. Thành phần: Như nơi nhận.",
        ]
    else:
        lines = [f"Thời gian: {wd}, ngày {dm}, lúc {hour} giờ {minute:02d}.", f"Địa điểm: {place}."]
    return start, place, lines


def generate(count: int = 48, seed: int = 20240516) -> list[LayoutDoc]:
    """``count`` documents drawn from the pools; the same seed gives the same documents."""
    rng = random.Random(seed)
    kinds = [k for k in KINDS for _ in range(k[2])]
    docs: list[LayoutDoc] = []
    for i in range(count):
        kind, abbr, _ = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        organ = rng.choice(CENTRAL) if rng.random() < 0.4 else _local_organ(rng)
        year_of = rng.randint(2005, 2025)
        date = dt.date(year_of, rng.randint(1, 12), rng.randint(1, 28))
        draft = rng.random() < 0.08
        number = None if draft else str(rng.randint(1, 2999)).zfill(2 if rng.random() < 0.5 else 1)
        year = None
        if kind == "Công văn":
            unit = rng.choice(("VP", "TCCB", "KGVX", "NC", "TH", "KT"))
            notation = f"{organ.abbr}-{unit}"
        elif kind == "Quyết định" and rng.random() < 0.4 and organ.level != "department":
            year, notation = date.year, f"{abbr}-{organ.abbr}"
        elif kind == "Quy chế" and organ.abbr in ("UBND", "HĐND"):
            notation = "QC-TT.HĐND-UBND"
        else:
            notation = f"{abbr}-{organ.abbr}"
        topic = rng.choice(TOPICS).format(y=date.year, n=rng.randint(5, 12))
        if kind == "Công văn":
            subject = f"V/v {topic}"
        elif kind in ("Quyết định", "Chỉ thị", "Nghị quyết", "Tờ trình", "Công điện"):
            subject = f"Về việc {topic}"
        elif kind == "Giấy mời":
            subject = rng.choice(("Dự họp", "Dự Hội nghị", "Dự buổi làm việc")) + f" về {topic}"
        else:
            subject = topic[0].upper() + topic[1:]
        comp, pos = _signer(rng, organ)
        doc = LayoutDoc(
            key=f"L{i:02d}-{(abbr or 'CV').lower()}",
            kind=kind,
            abbr=abbr,
            organ=organ,
            number=number,
            year=year,
            notation=notation,
            date=None if draft else date,
            place=organ.place,
            subject=subject,
            competence=comp,
            position=pos,
            name=_name(rng),
            layout=rng.choice(("table", "table", "table", "single", "typed")),
            left_width=rng.choice((0.38, 0.42, 0.45, 0.5)),
            issuer_breaks=rng.random() < 0.3,
            number_split=rng.random() < 0.1 and not draft,
            date_break=rng.random() < 0.15,
            rule_text=rng.random() < 0.3,
            subject_split=rng.choice(("none", "none", "break", "paragraphs")),
            noi_nhan_breaks=rng.random() < 0.3,
        )
        r = rng.random()
        if r < 0.08:
            doc.urgency = rng.choice(("Khẩn", "Thượng khẩn", "Hỏa tốc"))
        elif r < 0.13:
            doc.secrecy = rng.choice(("Mật", "Tối mật"))
        pool = [x for x in RECIPIENTS if x.upper() != organ.issuer]
        if kind in ("Công văn", "Tờ trình", "Giấy mời", "Báo cáo") and rng.random() < 0.85:
            n = rng.choice((1, 1, 2, 3))
            doc.kinh_gui = rng.sample(pool, n)
            doc.kinh_gui_style = "line" if n == 1 else rng.choice(("list", "list", "semicolon"))
        lead = "Như Điều 3" if kind == "Quyết định" else "Như trên"
        items = [x for x in rng.sample(pool, rng.randint(1, 4)) if x not in doc.kinh_gui]
        lines: list[list[str]] = [[lead]] if doc.kinh_gui or kind == "Quyết định" else []
        while items:
            take = 2 if len(items) > 1 and rng.random() < 0.25 else 1
            lines.append(items[:take])
            items = items[take:]
        doc.noi_nhan = lines
        doc.luu = rng.choice(
            ("Lưu: VT.", "Lưu: VT, TH.", "Lưu: VT, NC (2b).", "Lưu: VT, VP, Phòng TCCB.")
        )
        body = rng.sample(BODY, 2)
        if kind == "Giấy mời":
            doc.meeting_start, doc.meeting_place, meeting_lines = _meeting(rng, date)
            body = [
                body[0],
                *meeting_lines,
                "Đề nghị các đại biểu tham dự đúng thành phần, thời gian.",
            ]
        doc.body = body
        docs.append(doc)
    return docs


# -- DOCX ----------------------------------------------------------------------------------


def make_docx(doc: LayoutDoc) -> bytes:
    import docx
    from docx.enum.table import WD_TABLE_ALIGNMENT
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Cm, Pt

    d = docx.Document()
    section = d.sections[0]
    section.page_width, section.page_height = Cm(21), Cm(29.7)
    section.left_margin, section.right_margin = Cm(3), Cm(2)
    section.top_margin = section.bottom_margin = Cm(2)
    style = d.styles["Normal"]
    style.font.name = "Times New Roman"
    style.font.size = Pt(13)
    style.paragraph_format.space_after = Pt(0)
    text_w = 16.0
    center, right, justify = (
        WD_ALIGN_PARAGRAPH.CENTER,
        WD_ALIGN_PARAGRAPH.RIGHT,
        WD_ALIGN_PARAGRAPH.JUSTIFY,
    )

    def para(
        container: Any,
        text: str,
        align: Any = None,
        bold: bool = False,
        italic: bool = False,
        size: float | None = None,
        breaks: list[str] | None = None,
    ) -> Any:
        p = container.add_paragraph() if container is not None else d.add_paragraph()
        pieces = breaks or [text]
        for k, piece in enumerate(pieces):
            run = p.add_run(piece)
            run.bold, run.italic = bold, italic
            if size:
                run.font.size = Pt(size)
            if k < len(pieces) - 1:
                run.add_break()
        if align is not None:
            p.alignment = align
        return p

    def first(cell: Any) -> Any:
        p = cell.paragraphs[0]
        p._p.getparent().remove(p._p)
        return cell

    left_lines = list(doc.organ.lines)
    left_extra = ["-------"] if doc.rule_text else []
    num = doc.number_line()
    num_parts = num.rsplit("-", 1) if doc.number_split and "-" in num else None
    pd = doc.place_date()
    pd_parts = pd.rsplit(" năm ", 1) if doc.date_break else None
    if doc.layout == "table":
        lw = round(text_w * doc.left_width, 1)
        table = d.add_table(rows=2, cols=2)
        table.alignment = WD_TABLE_ALIGNMENT.CENTER
        table.autofit = False
        for row in table.rows:
            row.cells[0].width, row.cells[1].width = Cm(lw), Cm(text_w - lw)
        c = first(table.cell(0, 0))
        if doc.issuer_breaks:
            para(c, "", center, bold=True, size=12.5, breaks=left_lines)
        else:
            for k, line in enumerate(left_lines):
                para(c, line, center, bold=k == len(left_lines) - 1, size=12.5)
        for line in left_extra:
            para(c, line, center)
        c = first(table.cell(0, 1))
        para(c, MOTTO_1, center, bold=True, size=12)
        para(c, MOTTO_2, center, bold=True, size=13)
        if doc.rule_text:
            para(c, "---------------", center)
        c = first(table.cell(1, 0))
        if num_parts:
            para(c, "", center, breaks=[num_parts[0] + "-", num_parts[1]])
        else:
            para(c, num, center)
        if doc.kind == "Công văn":
            para(c, doc.subject, center, size=12)
        for m in doc.marks():
            para(c, m, center, bold=True)
        c = first(table.cell(1, 1))
        if pd_parts:
            para(c, "", center, italic=True, breaks=[pd_parts[0], "năm " + pd_parts[1]])
        else:
            para(c, pd, center, italic=True)
    elif doc.layout == "typed":
        from docx.enum.text import WD_TAB_ALIGNMENT

        def typed(left: str, right: str, **kw: Any) -> None:
            p = para(None, f"\t{left}\t{right}" if right else f"\t{left}", **kw)
            stops = p.paragraph_format.tab_stops
            stops.add_tab_stop(Cm(text_w * doc.left_width / 2), WD_TAB_ALIGNMENT.CENTER)
            stops.add_tab_stop(Cm(text_w * (1 + doc.left_width) / 2), WD_TAB_ALIGNMENT.CENTER)

        rights = [MOTTO_1, MOTTO_2]
        for k in range(max(len(left_lines), 2)):
            left = left_lines[k] if k < len(left_lines) else ""
            right = rights[k] if k < 2 else ""
            if left:
                typed(left, right, size=11)
            else:
                p = para(None, f"\t\t{right}", size=11)
                p.paragraph_format.tab_stops.add_tab_stop(
                    Cm(text_w * (1 + doc.left_width) / 2), WD_TAB_ALIGNMENT.CENTER
                )
        typed(num, pd, size=11)
        if doc.kind == "Công văn":
            para(None, doc.subject, size=12)
        for m in doc.marks():
            para(None, m, bold=True)
    else:
        for k, line in enumerate(left_lines):
            para(None, line, bold=k == len(left_lines) - 1, size=12.5)
        para(None, MOTTO_1, right, bold=True, size=12)
        para(None, MOTTO_2, right, bold=True)
        para(None, num)
        if doc.kind == "Công văn":
            para(None, doc.subject, size=12)
        for m in doc.marks():
            para(None, m, bold=True)
        para(None, pd, right, italic=True)
    para(None, "")
    if doc.kind != "Công văn":
        para(None, doc.kind.upper(), center, bold=True, size=14)
        words = doc.subject.split()
        halves = [" ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2 :])]
        if doc.subject_split == "break" and len(words) > 6:
            para(None, "", center, bold=True, breaks=halves)
        elif doc.subject_split == "paragraphs" and len(words) > 6:
            for half in halves:
                para(None, half, center, bold=True)
        else:
            para(None, doc.subject, center, bold=True)
        para(None, "")
    _docx_kinh_gui(doc, para, center)
    for line in doc.body:
        p = para(None, line, justify)
        p.paragraph_format.first_line_indent = Cm(1)
        p.paragraph_format.space_after = Pt(6)
    para(None, "")
    sig = d.add_table(rows=1, cols=2)
    sig.autofit = False
    sig.rows[0].cells[0].width, sig.rows[0].cells[1].width = Cm(7), Cm(9)
    c = first(sig.cell(0, 0))
    if doc.noi_nhan_breaks:
        para(c, "", size=11, breaks=["Nơi nhận:", *doc.noi_nhan_lines()])
    else:
        para(c, "Nơi nhận:", bold=True, italic=True, size=12)
        for line in doc.noi_nhan_lines():
            para(c, line, size=11)
    c = first(sig.cell(0, 1))
    if doc.competence:
        para(c, doc.competence, center, bold=True)
    para(c, doc.position, center, bold=True)
    for _ in range(3):
        para(c, "", center)
    para(c, doc.name, center, bold=True)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _docx_kinh_gui(doc: LayoutDoc, para: Any, center: Any) -> None:
    if not doc.kinh_gui:
        return
    if doc.kinh_gui_style == "line":
        para(None, f"Kính gửi: {doc.kinh_gui[0]}.", center)
    elif doc.kinh_gui_style == "semicolon":
        para(None, "Kính gửi: " + "; ".join(doc.kinh_gui) + ".", center)
    else:
        para(None, "Kính gửi:", center)
        for k, item in enumerate(doc.kinh_gui):
            para(None, f"- {item}{'.' if k == len(doc.kinh_gui) - 1 else ';'}", center)
    para(None, "")


# -- PDF by fpdf2 --------------------------------------------------------------------------


def make_fpdf(doc: LayoutDoc) -> bytes:
    """The document drawn directly (a second producer: fpdf2's own text runs and wrapping)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.add_font("DejaVu", "", f"{FONT_DIR}/DejaVuSans.ttf")
    pdf.add_font("DejaVu", "B", f"{FONT_DIR}/DejaVuSans-Bold.ttf")
    pdf.add_font("DejaVu", "I", f"{FONT_DIR}/DejaVuSans.ttf")
    pdf.set_margins(25, 15, 15)
    pdf.set_auto_page_break(True, 20)
    pdf.add_page()
    lw = 170 * doc.left_width
    lx, rx, rw = 25.0, 25.0 + lw, 170 - lw

    def block(
        x: float,
        y: float,
        w: float,
        lines: list[str],
        style: str = "",
        size: float = 10.5,
        align: str = "C",
    ) -> float:
        pdf.set_font("DejaVu", style, size)
        for line in lines:
            pdf.set_xy(x, y)
            pdf.multi_cell(w, 5, line, align=align)
            y = pdf.get_y()
        return y

    if doc.layout == "table":
        y1 = block(lx, 15, lw, list(doc.organ.lines), "B", 10)
        y2 = block(rx, 15, rw, [MOTTO_1, MOTTO_2], "B", 10)
        y = max(y1, y2) + 4
        left = [doc.number_line()]
        if doc.kind == "Công văn":
            left.append(doc.subject)
        y1 = block(lx, y, lw, left, "", 10)
        y1 = block(lx, y1 + 1, lw, doc.marks(), "B", 11)
        y2 = block(rx, y, rw, [doc.place_date()], "I", 10.5)
        y = max(y1, y2) + 6
    else:
        y = block(lx, 15, 170, list(doc.organ.lines), "B", 10.5, "L")
        y = block(lx, y, 170, [MOTTO_1, MOTTO_2], "B", 10.5, "R")
        y = block(lx, y + 2, 170, [doc.number_line()], "", 10.5, "L")
        if doc.kind == "Công văn":
            y = block(lx, y, 90, [doc.subject], "", 10.5, "L")
        y = block(lx, y, 170, doc.marks(), "B", 11, "L")
        y = block(lx, y, 170, [doc.place_date()], "I", 10.5, "R") + 6
    pdf.set_xy(lx, y)
    if doc.kind != "Công văn":
        y = block(lx, y, 170, [doc.kind.upper()], "B", 13) + 1
        y = block(lx + 15, y, 140, [doc.subject], "B", 11.5) + 5
    if doc.kinh_gui:
        if doc.kinh_gui_style == "list":
            pdf.set_font("DejaVu", "", 11)
            pdf.set_xy(lx + 30, y)
            pdf.cell(22, 6, "Kính gửi:")
            for k, item in enumerate(doc.kinh_gui):
                y = block(
                    lx + 52,
                    y,
                    110,
                    [f"- {item}{'.' if k == len(doc.kinh_gui) - 1 else ';'}"],
                    "",
                    11,
                    "L",
                )
        else:
            items = doc.kinh_gui[:1] if doc.kinh_gui_style == "line" else doc.kinh_gui
            y = block(lx, y, 170, ["Kính gửi: " + "; ".join(items) + "."], "", 11)
        y += 4
    for line in doc.body:
        y = block(lx, y, 170, ["      " + line], "", 11, "J") + 2
    y += 6
    if y > 215:
        pdf.add_page()
        y = 20
    yl = block(lx, y, 75, ["Nơi nhận:"], "B", 10, "L")
    yl = block(lx, yl, 75, doc.noi_nhan_lines(), "", 9, "L")
    sig = [x for x in (doc.competence, doc.position) if x]
    ys = block(95, y, 100, sig, "B", 11)
    block(95, max(ys + 25, yl + 2), 100, [doc.name], "B", 11)
    return bytes(pdf.output())


# -- PDF by LibreOffice --------------------------------------------------------------------


def render_pdfs_with_libreoffice(
    docx_files: dict[str, bytes], workdir: Path, to: str = "pdf"
) -> dict[str, bytes]:
    """Convert many DOCX files in one ``soffice`` run (its start-up dominates), with a private
    user profile so parallel runs and a user's own LibreOffice do not interfere. *to* is the
    target format's extension (pdf, or doc for Word 97)."""
    src = workdir / "docx"
    out = workdir / to
    src.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    for key, data in docx_files.items():
        (src / f"{key}.docx").write_bytes(data)
    profile = Path(tempfile.mkdtemp(prefix="lo-profile-", dir=workdir))
    subprocess.run(
        [
            "soffice",
            f"-env:UserInstallation=file://{profile}",
            "--headless",
            "--norestore",
            "--convert-to",
            to,
            "--outdir",
            str(out),
            *(str(src / f"{key}.docx") for key in docx_files),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return {key: (out / f"{key}.{to}").read_bytes() for key in docx_files}
