"""Documents typed in the pre-Unicode fonts (TCVN3 `.VnTime`/`.VnTimeH`, VNI `VNI-Times`)
read like their Unicode originals: as DOCX, as Word 97 and as PDF, with a flag saying so.

Each old-font document is compared with its Unicode original in the same rendering (what the
old font costs), and the accuracy against the truth is printed in the summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailparse import ClassifyContext, classify
from mailparse.containers import make_attachment
from mailparse.legacyenc import convert, detect
from tests.support.layouts import generate, make_docx, render_pdfs_with_libreoffice
from tests.support.legacyfonts import legacy_docx

from .conftest import ACCURACY

DOCS = generate(48, seed=7)[::3]  # 16 documents of every type and layout
FACTS = (
    "kind", "number", "notation", "date", "urgency", "secrecy",
    "issuer", "place", "subject", "recipients", "signer", "meeting_start",
)  # fmt: skip
CORE = FACTS[:6]


# Text as it comes out of real old documents (typed by hand here from their look, not made by
# the encoders of tests/support/legacyfonts.py).
@pytest.mark.parametrize(
    ("encoding", "legacy", "unicode"),
    [
        ("tcvn3", "Céng hoµ x· héi chñ nghÜa ViÖt Nam", "Cộng hoà xã hội chủ nghĩa Việt Nam"),
        ("tcvn3", "§éc lËp - Tù do - H¹nh phóc", "Độc lập - Tự do - Hạnh phúc"),
        ("tcvn3", "Uû ban nh©n d©n tØnh Thanh Ho¸", "Uỷ ban nhân dân tỉnh Thanh Hoá"),
        ("tcvn3", "Sè: 125/Q§-UBND", "Số: 125/QĐ-UBND"),
        ("tcvn3", "Tr\xadêng §¹i häc Thñy lîi", "Trường Đại học Thủy lợi"),
        ("tcvn3", "CéNG HOµ X· HéI CHñ NGHÜA VIÖT NAM", "CỘNG HOÀ XÃ HỘI CHỦ NGHĨA VIỆT NAM"),
        ("tcvn3", "QUYÕT §ÞNH", "QUYẾT ĐỊNH"),
        ("tcvn3", "Së Y TÕ", "SỞ Y TẾ"),
        ("tcvn3", "KÕ HO¹CH", "KẾ HOẠCH"),
        ("tcvn3", "GiÊy mêi häp", "Giấy mời họp"),
        # the soft hyphen (ư) that a PDF producer dropped
        ("tcvn3", "Kho b¹c Nhµ n íc; Th êng trùc", "Kho bạc Nhà nước; Thường trực"),
        ("tcvn3", "- Nh trªn;", "- Như trên;"),
        ("tcvn3", "- L u: VT, TH.", "- Lưu: VT, TH."),
        ("tcvn3", "dù ¸n ®Çu t x©y dùng", "dự án đầu tư xây dựng"),
        ("vni", "Coäng hoøa xaõ hoäi chuû nghóa Vieät Nam", "Cộng hòa xã hội chủ nghĩa Việt Nam"),
        ("vni", "Ñoäc laäp - Töï do - Haïnh phuùc", "Độc lập - Tự do - Hạnh phúc"),
        ("vni", "UÛY BAN NHAÂN DAÂN TÆNH ÑOÀNG NAI", "ỦY BAN NHÂN DÂN TỈNH ĐỒNG NAI"),
        ("vni", "Soá: 12/QÑ-UBND", "Số: 12/QĐ-UBND"),
        ("vni", "Tröôøng Ñaïi hoïc Ñaø Naüng", "Trường Đại học Đà Nẵng"),
        ("vni", "Thöïc hieän, kyø hoïp thöù 12", "Thực hiện, kỳ họp thứ 12"),
    ],
)
def test_old_text_reads_as_unicode(encoding: str, legacy: str, unicode: str) -> None:
    assert convert(legacy, encoding) == unicode


def test_the_encoding_is_told_from_the_spelling() -> None:
    tcvn3 = ["Céng hoµ x· héi chñ nghÜa ViÖt Nam", "N¬i nhËn:", "V/v tæ chøc Héi nghÞ"]
    vni = ["Coäng hoøa xaõ hoäi chuû nghóa Vieät Nam", "Nôi nhaän:", "V/v toå chöùc Hoäi nghò"]
    assert detect(tcvn3) == "tcvn3"
    assert detect(vni) == "vni"


def test_unicode_text_with_odd_signs_is_left_alone() -> None:
    texts = [
        "Giá niêm yết: ½ triệu «đồng» © 2010 – theo § 3",
        "Nhiệt độ 25°C; độ ẩm 80% · gió nhẹ",
        "Hôtel Métropole, Café Tràng Tiền, Ø 25 mm",
    ]
    assert detect(texts) is None
    # a Unicode line pasted into an old document stays as it is
    assert convert("Cộng hòa xã hội chủ nghĩa Việt Nam", "tcvn3") == (
        "Cộng hòa xã hội chủ nghĩa Việt Nam"
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """Every document typed in each old font, as DOCX, Word 97 and PDF (LibreOffice)."""
    docx = {}
    for d in DOCS:
        original = make_docx(d)
        docx[f"{d.key}-unicode"] = original
        for enc in ("tcvn3", "vni"):
            docx[f"{d.key}-{enc}"] = legacy_docx(original, enc)
    work: Path = tmp_path_factory.mktemp("legacy")
    return {
        "docx": docx,
        "doc": render_pdfs_with_libreoffice(docx, work / "doc", to="doc"),
        "pdf": render_pdfs_with_libreoffice(docx, work / "pdf"),
    }


@pytest.mark.parametrize("encoding", ["tcvn3", "vni"])
@pytest.mark.parametrize("rendering", ["docx", "doc", "pdf"])
def test_old_font_documents_give_their_facts(
    rendering: str, encoding: str, rendered: dict[str, dict[str, bytes]]
) -> None:
    table = {fact: [0, 0] for fact in FACTS}
    same = {fact: [0, 0] for fact in FACTS}
    misses = []
    for doc in DOCS:
        files = rendered[rendering]
        facts = _classify(files[f"{doc.key}-{encoding}"])
        assert f"legacy_font:{encoding}" in facts.flags, (doc.key, facts.flags)
        original = _classify(files[f"{doc.key}-unicode"])
        assert not any(f.startswith("legacy_font") for f in original.flags)
        got, want, truth = facts.to_dict(), original.to_dict(), doc.truth()
        for fact in FACTS:
            table[fact][1] += 1
            table[fact][0] += got[fact] == truth[fact]
            same[fact][1] += 1
            if got[fact] == want[fact]:
                same[fact][0] += 1
            else:
                misses.append(f"{doc.key} {fact}: got {got[fact]!r}, the original {want[fact]!r}")
    ACCURACY[f"legacy {encoding} {rendering}"] = table
    print("\n".join(misses))
    low = {
        fact: f"{right}/{total}"
        for fact, (right, total) in same.items()
        if right / total < (0.98 if fact in CORE else 0.9)
    }
    assert not low, low


def _classify(data: bytes):  # noqa: ANN202
    return classify(make_attachment("1", None, None, data), ClassifyContext())
