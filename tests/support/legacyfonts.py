"""Documents typed the way agencies typed before Unicode: TCVN3 (`.VnTime`, capitals in
`.VnTimeH`) and VNI (`VNI-Times`).

The TCVN3 codes come from glibc's own TCVN5712-1 converter (`iconv`), a source apart from
mailparse's table. VNI has no converter here; its encoder is written from the mark codes, in the
direction opposite to mailparse's decoder (Unicode decomposed into base letter and marks).
A word in capitals is typed as a TCVN3 typist did with an `H` font: capital plain letters and
the lower-case codes of the marked ones (the `H` font draws those as capitals).
"""

from __future__ import annotations

import functools
import io
import re
import subprocess
import unicodedata
import zipfile

_ALPHABET = "àáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵĂÂĐÊÔƠƯ"


@functools.cache
def _tcvn3_table() -> dict[str, str]:
    out = subprocess.run(
        ["iconv", "-f", "utf-8", "-t", "TCVN5712-1"],
        input=_ALPHABET.encode(),
        capture_output=True,
        check=True,
    ).stdout.decode("latin-1")
    assert len(out) == len(_ALPHABET), out
    return dict(zip(_ALPHABET, out, strict=True))


def encode_tcvn3(text: str) -> str:
    table = _tcvn3_table()

    def word(m: re.Match[str]) -> str:
        w = m.group(0)
        letters = [c for c in w if c.isalpha()]
        caps = len(letters) >= 2 and all(c.isupper() for c in letters)
        out = []
        for c in w:
            if c.lower() in table and (caps or c not in table):
                out.append(table[c.lower()])  # a marked capital: the lower-case code (`H` font)
            else:
                out.append(table.get(c, c))
        return "".join(out)

    return re.sub(r"\S+", word, unicodedata.normalize("NFC", text))


_TONE = {"\u0300": "ø", "\u0301": "ù", "\u0309": "û", "\u0303": "õ", "\u0323": "ï"}
_HAT_TONE = {"\u0301": "á", "\u0300": "à", "\u0309": "å", "\u0303": "ã", "\u0323": "ä"}
_BREVE_TONE = {"\u0301": "é", "\u0300": "è", "\u0309": "ú", "\u0303": "ü", "\u0323": "ë"}
_I_TONE = {"\u0300": "ì", "\u0301": "í", "\u0309": "æ", "\u0303": "ó", "\u0323": "ò"}


def _vni_letter(ch: str) -> str:
    d = unicodedata.normalize("NFD", ch)
    base, marks = d[0], d[1:]
    upper = base.isupper()
    b = base.lower()
    tone = next((m for m in marks if m in _TONE), None)
    if b == "đ" or ch in "đĐ":
        out = "ñ"
    elif "\u0302" in marks:  # circumflex
        out = b + (_HAT_TONE[tone] if tone else "â")
    elif "\u0306" in marks:  # breve
        out = b + (_BREVE_TONE[tone] if tone else "ê")
    elif "\u031b" in marks:  # horn: ơ ư
        out = ("ô" if b == "o" else "ö") + (_TONE[tone] if tone else "")
    elif b == "i" and tone:
        out = _I_TONE[tone]
    elif b == "y" and tone == "\u0323":
        out = "î"
    elif tone:
        out = b + _TONE[tone]
    else:
        return ch
    return out.upper() if upper else out


def encode_vni(text: str) -> str:
    return "".join(
        _vni_letter(c) if not c.isascii() else c for c in unicodedata.normalize("NFC", text)
    )


FONTS = {"tcvn3": (".VnTime", ".VnTimeH"), "vni": ("VNI-Times", "VNI-Times")}
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def legacy_docx(docx: bytes, encoding: str) -> bytes:
    """The same DOCX as if typed in the legacy font: every run's text encoded, its font named."""
    from lxml import etree

    encode = encode_tcvn3 if encoding == "tcvn3" else encode_vni
    normal, capitals = FONTS[encoding]
    src = zipfile.ZipFile(io.BytesIO(docx))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "word/document.xml":
                root = etree.fromstring(data)
                for r in root.iter(f"{{{_W}}}r"):
                    texts = list(r.iter(f"{{{_W}}}t"))
                    if not texts:
                        continue
                    joined = "".join(t.text or "" for t in texts)
                    letters = [c for c in joined if c.isalpha()]
                    caps = len(letters) >= 2 and all(c.isupper() for c in letters)
                    for t in texts:
                        t.text = encode(t.text or "")
                    rpr = r.find(f"{{{_W}}}rPr")
                    if rpr is None:
                        rpr = etree.SubElement(r, f"{{{_W}}}rPr")
                        r.remove(rpr)
                        r.insert(0, rpr)
                    fonts = rpr.find(f"{{{_W}}}rFonts")
                    if fonts is None:
                        fonts = etree.SubElement(rpr, f"{{{_W}}}rFonts")
                    font = capitals if caps else normal
                    for attr in ("ascii", "hAnsi", "cs"):
                        fonts.set(f"{{{_W}}}{attr}", font)
                data = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
            dst.writestr(item, data)
    return out.getvalue()
