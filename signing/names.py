"""Comparing Vietnamese names of people and organisations as printed and as certified.

A certificate says "UBND xã Tân Phú" where the document prints "ỦY BAN NHÂN DÂN / XÃ TÂN PHÚ";
old and new spelling put the tone mark on different letters ("Uỷ" and "Ủy"). So names are
compared after NFC, case folding, one tone-mark position per word, the usual abbreviations
spelt out, and whitespace (line breaks included) collapsed. Đ/đ stays a letter of its own.
"""

from __future__ import annotations

import re
import unicodedata

# combining tone marks: grave, acute, tilde, hook above, dot below
_TONES = frozenset("\u0300\u0301\u0303\u0309\u0323")
# Abbreviations of organ names (Decree 30 Appendix I and common use), spelt out.
_ABBREVIATIONS = {
    "ubnd": "ủy ban nhân dân",
    "hđnd": "hội đồng nhân dân",
    "tand": "tòa án nhân dân",
    "vksnd": "viện kiểm sát nhân dân",
    "mttq": "mặt trận tổ quốc",
    "tp": "thành phố",
    "tx": "thị xã",
    "tt": "thị trấn",
}
_WORD = re.compile(r"\w+", re.UNICODE)
# Words that name an organisation when they open a certificate's CN.
_ORGANISATION_WORDS = (
    "ủy ban",
    "hội đồng",
    "bộ",
    "sở",
    "cục",
    "chi cục",
    "tổng cục",
    "vụ",
    "viện",
    "ban",
    "phòng",
    "văn phòng",
    "trường",
    "bệnh viện",
    "trung tâm",
    "công ty",
    "tập đoàn",
    "ngân hàng",
    "kho bạc",
    "công an",
    "tòa án",
    "đảng ủy",
    "mặt trận",
    "liên đoàn",
    "hội",
    "đài",
    "báo",
    "chính phủ",
    "quốc hội",
    "thủ tướng chính phủ",
    "xã",
    "phường",
    "thị trấn",
    "huyện",
    "quận",
    "tỉnh",
    "thành phố",
)
_ORGANISATION_EN = re.compile(
    r"\b(ministry|department|agency|office|committee|council|company|corporation|ltd|jsc|"
    r"bank|university|institute|authority|government)\b"
)


def _one_tone_per_word(word: str) -> str:
    """Move the tone mark of a word to its end, so "uỷ" and "ủy" compare equal."""
    decomposed = unicodedata.normalize("NFD", word)
    tones = [c for c in decomposed if c in _TONES]
    base = "".join(c for c in decomposed if c not in _TONES)
    return unicodedata.normalize("NFC", base) + "".join(tones)


def normalise(name: str | None) -> str:
    """The comparable form of *name*: words in order, abbreviations spelt out."""
    if not name:
        return ""
    text = unicodedata.normalize("NFC", name).casefold()
    words: list[str] = []
    for word in _WORD.findall(text):
        words.extend(_ABBREVIATIONS.get(word, word).split())
    return " ".join(_one_tone_per_word(w) for w in words)


def _contains(outer: str, inner: str) -> bool:
    return bool(inner) and f" {inner} " in f" {outer} "


def same_person(certified: str | None, printed: str | None) -> bool:
    """Whether the certificate's name is the signer printed in the document (which may
    carry the competence and position before the name: "KT. CHỦ TỊCH, PHÓ CHỦ TỊCH, …")."""
    a, b = normalise(certified), normalise(printed)
    return bool(a and b) and (a == b or _contains(b, a))


def same_organisation(certified: str | None, printed: str | None) -> bool:
    """Whether the certificate's organisation is the issuer printed in the document. Either
    may name it more fully ("UBND tỉnh Tây Ninh" against a header whose last line is "TỈNH
    TÂY NINH", or a certificate of "Sở Nội vụ tỉnh Tây Ninh" against "SỞ NỘI VỤ")."""
    a, b = normalise(certified), normalise(printed)
    return bool(a and b) and (a == b or _contains(a, b) or _contains(b, a))


_ORGANISATION_STARTS = tuple(normalise(w) for w in _ORGANISATION_WORDS)


def names_organisation(cn: str) -> bool:
    """Whether a certificate CN names an organisation rather than a person."""
    text = normalise(cn)
    if any(text == w or text.startswith(w + " ") for w in _ORGANISATION_STARTS):
        return True
    return bool(_ORGANISATION_EN.search(text))
