"""Vietnamese typed in the legacy 8-bit font encodings, read back as Unicode.

Before Unicode (and in many agencies long after), documents were typed in TCVN3/ABC fonts
(`.VnTime`, `.VnArial`; capitals in `.VnTimeH`) or in VNI fonts (`VNI-Times`). The bytes are
ordinary Latin-1, so a text layer, a DOCX run or a Word 97 piece reads as
"Céng hoµ x· héi chñ nghÜa ViÖt Nam" (TCVN3) or "Coäng hoøa xaõ hoäi chuû nghóa Vieät Nam"
(VNI), and every fact read from it is lost or wrong. The encoding is decided once per document
(scattered `©` or `«»` in a Unicode text must not switch it), then each text run that holds the
encoding's code points and no Unicode-only Vietnamese letter is converted. TCVN3's capitals
font reuses the lower-case codes, so a converted word whose plain letters are all capitals is
put in capitals.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

# TCVN 5712:1993 VN3 ("ABC"): one code per lower-case letter with its marks; the capitals
# with no tone mark have their own codes; toned capitals come from the `H` fonts.
_TCVN3_CODES = "µ¸¶·¹¨»¾¼½Æ©ÇÊÈÉË®ÌÐÎÏÑªÒÕÓÔÖ×ÝØÜÞßãáâä«åèæçé¬êíëìîïóñòô\xadõøö÷ùúýûüþ¡¢§£¤¥¦"
_TCVN3_UNICODE = "àáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵĂÂĐÊÔƠƯ"
_TCVN3 = dict(zip(_TCVN3_CODES, _TCVN3_UNICODE, strict=True))

# VNI: a base letter followed by one code for its marks (tone, or shape and tone); a few
# letters have a code of their own.
_VNI_TONES = {"ø": "\u0300", "ù": "\u0301", "û": "\u0309", "õ": "\u0303", "ï": "\u0323"}
_VNI_HAT_TONES = {"á": "\u0301", "à": "\u0300", "å": "\u0309", "ã": "\u0303", "ä": "\u0323"}
_VNI_BREVE_TONES = {"é": "\u0301", "è": "\u0300", "ú": "\u0309", "ü": "\u0303", "ë": "\u0323"}
_VNI_SINGLE = {
    "ì": "ì", "í": "í", "æ": "ỉ", "ó": "ĩ", "ò": "ị", "î": "ỵ", "ñ": "đ",
    "ô": "ơ", "ö": "ư",
}  # fmt: skip


def _vni_table() -> tuple[dict[str, str], dict[str, str]]:
    pairs: dict[str, str] = {}
    single: dict[str, str] = {}

    def add(code: str, text: str) -> None:
        pairs[code] = unicodedata.normalize("NFC", text)
        pairs[code.upper()] = unicodedata.normalize("NFC", text.upper())

    for vowel in "aeiouy":
        for mark, comb in _VNI_TONES.items():
            if vowel != "i":  # i's tones have codes of their own
                add(vowel + mark, vowel + comb)
    for vowel in "aeo":
        add(vowel + "â", vowel + "\u0302")
        for mark, comb in _VNI_HAT_TONES.items():
            add(vowel + mark, vowel + "\u0302" + comb)
    add("aê", "ă")
    for mark, comb in _VNI_BREVE_TONES.items():
        add("a" + mark, "a\u0306" + comb)
    for base, horn in (("ô", "ơ"), ("ö", "ư")):
        for mark, comb in _VNI_TONES.items():
            add(base + mark, horn + comb)
    for code, text in _VNI_SINGLE.items():
        single[code] = text
        single[code.upper()] = text.upper()
    del pairs["yï"], pairs["YÏ"]  # ỵ is a code of its own (î)
    return pairs, single


_VNI_PAIRS, _VNI_SINGLES = _vni_table()
_VNI_CODES = frozenset(_VNI_SINGLES) | frozenset(c[1] for c in _VNI_PAIRS)

# Latin-1 letters Vietnamese uses as they are; any other Latin-1 letter or sign in a
# Vietnamese text hints at a legacy font.
_VIETNAMESE_LATIN1 = frozenset("àáâãèéêìíòóôõùúýÀÁÂÃÈÉÊÌÍÒÓÔÕÙÚÝ")
# A letter only Unicode Vietnamese has (ă đ ĩ ũ ơ ư and the precomposed tones): a run
# holding one is Unicode already and is never converted.
_UNICODE_ONLY = re.compile(
    "[\u0102\u0103\u0110\u0111\u0128\u0129\u0168\u0169\u01a0\u01a1\u01af\u01b0\u1ea0-\u1ef9]"
)
_WORD = re.compile(r"\S+")
_DIGIT = re.compile("[0-9]")


def _odd(text: str) -> int:
    """Latin-1 characters a Unicode Vietnamese text would not hold."""
    return sum(1 for ch in text if "\xa0" < ch <= "\xff" and ch not in _VIETNAMESE_LATIN1)


_TONES = frozenset("\u0300\u0301\u0303\u0309\u0323")
_VOWELS = frozenset("aăâeêioôơuưy")
_INITIALS = frozenset("b c ch d đ g gh gi h k kh l m n ng ngh nh p ph qu r s t th tr v x".split())
_FINALS = frozenset("c ch m n ng nh p t".split())
_NUCLEI = frozenset(
    """a ă â e ê i o ô ơ u ư y ai ao au ay âu ây eo êu ia iê iu oa oă oe oi oo ôi ơi ua uâ uê
    ui uô uơ uy ưa ưi ươ ưu ya yê iêu oai oay oao oeo uây uôi uya uyê uyu ươi ươu yêu""".split()
)
_LETTERS = re.compile(r"[^\W\d_]+")


def syllable(word: str) -> bool:
    """Whether *word* is spelt as a Vietnamese syllable can be: an initial, one vowel group of
    those the language has, a final, and at most one tone mark."""
    d = unicodedata.normalize("NFD", word.lower())
    if sum(1 for ch in d if ch in _TONES) > 1:
        return False
    w = unicodedata.normalize("NFC", "".join(ch for ch in d if ch not in _TONES))
    i = 0
    while i < len(w) and w[i] not in _VOWELS:
        i += 1
    j = i
    while j < len(w) and w[j] in _VOWELS:
        j += 1
    initial, nucleus, final = w[:i], w[i:j], w[j:]
    if initial in ("q", "g") and nucleus[:1] in ("u", "i") and len(nucleus) > 1:
        initial, nucleus = initial + nucleus[0], nucleus[1:]  # qu-, gi- before a vowel
    return (
        bool(nucleus)
        and (not initial or initial in _INITIALS)
        and (not final or final in _FINALS)
        and nucleus in _NUCLEI
    )


def spelt_share(texts: list[str]) -> float:
    """The share of words (of letters only, at least one non-ASCII) spelt as syllables."""
    words = [w for t in texts for w in _LETTERS.findall(t) if not w.isascii()]
    if not words:
        return 0.0
    return sum(1 for w in words if syllable(w)) / len(words)


def tcvn3_to_unicode(text: str) -> str:
    """TCVN3 (ABC) text to Unicode, capitals restored for runs typed in an `H` font: a word
    whose plain letters are all capitals (two at least), or any word of a run whose plain
    letters are."""
    if not any(ch in _TCVN3 for ch in text):
        return _lost_u(text)
    # (a plain digit: TCVN3's ạ is "¹", which Python counts as a digit)
    words = [w for w in _WORD.findall(text) if not _DIGIT.search(w)]
    in_capitals = _capitals("".join(words)) is True

    def word(m: re.Match[str]) -> str:
        w = m.group(0)
        out = "".join(_TCVN3.get(ch, ch) for ch in w)
        if out == w:
            return w
        caps = _capitals(w)
        if caps is None and _DIGIT.search(w):  # a notation: "05/C®" is 05/CĐ
            caps = _capitals(w + "X")
        if caps or (caps is None and in_capitals):
            return out.upper()
        return out

    return _lost_u(_WORD.sub(word, text))


def _capitals(word: str) -> bool | None:
    """Whether the plain letters of *word* are all capitals; None when it has fewer than two
    (one capital is as likely the start of a sentence)."""
    plain = [ch for ch in word if ch.isascii() and ch.isalpha()]
    if len(plain) < 2:
        return None
    return all(ch.isupper() for ch in plain)


# TCVN3's ư is 0xAD, the soft hyphen: a PDF made by a program that honours it draws nothing
# there, and the text layer reads "n ớc", "b u", "tr ng" for "nước", "bưu", "trưng". Vietnamese
# has no word of consonants alone, so one followed by what can follow a bare ư (ơ…, or u, a, ng
# ending the word) is put back together.
_LOST_U = re.compile(
    r"(?<![^\W\d_])(ngh|ng|nh|ch|gh|kh|ph|th|tr|[bcdđghklmnpqrstvx])"
    r" ([ơờớởỡợ]|(?:u|a|ng)(?![^\W\d_]))",
    re.IGNORECASE,
)


# "Như trên", "Như Điều 3": the formulas that open a "Nơi nhận" list.
_LOST_U_NHU = re.compile(r"(?<![^\W\d_])(Nh|NH) (trên|TRÊN|Điều|ĐIỀU)(?![^\W\d_])")


# A bare consonant between two words ("đầu t xây dựng"): the ư of "tư" ended it.
_LOST_U_END = re.compile(
    r"(?<=[^\W\d_] )(nh|th|tr|ch|kh|ph|ng|[bcdđghklmnpqrstvx])(?= [^\W\d_]| ?[;,.]|$)"
)


def _put_u_back(m: re.Match[str]) -> str:
    u = "Ư" if m.group(1).isupper() and m.group(2).isupper() else "ư"
    return m.group(1) + u + m.group(2)


def _lost_u(text: str) -> str:
    if " " not in text:
        return text
    text = _LOST_U_NHU.sub(
        lambda m: m.group(1) + ("Ư " if m.group(1) == "NH" else "ư ") + m.group(2), text
    )
    return _LOST_U_END.sub(r"\1ư", _LOST_U.sub(_put_u_back, text))


def vni_to_unicode(text: str) -> str:
    """VNI text to Unicode."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        pair = text[i : i + 2]
        if len(pair) == 2 and pair in _VNI_PAIRS:
            out.append(_VNI_PAIRS[pair])
            i += 2
            continue
        ch = text[i]
        out.append(_VNI_SINGLES.get(ch, ch))
        i += 1
    return "".join(out)


DECODERS: dict[str, tuple[Callable[[str], str], frozenset[str]]] = {
    "tcvn3": (tcvn3_to_unicode, frozenset(_TCVN3)),
    "vni": (vni_to_unicode, _VNI_CODES),
}


def detect(texts: list[str]) -> str | None:
    """The legacy encoding the document's runs are typed in, or None for Unicode.

    Chosen when converting the runs that could be converted leaves almost none of the odd
    Latin-1 characters they had and yields words spelt as Vietnamese syllables (the two
    encodings share most code points, so the spelling tells them apart): scattered signs in a
    Unicode text (a `©`, `«quoted»`, `½`) are too few, or stay odd after conversion."""
    candidates = [t for t in texts if not _UNICODE_ONLY.search(t)]
    before = sum(_odd(t) for t in candidates)
    if before < 3:
        return None
    best: tuple[float, str] | None = None
    for name, (decode, _codes) in DECODERS.items():
        converted = [decode(t) for t in candidates]
        after = sum(_odd(t) for t in converted)
        gained = sum(len(_UNICODE_ONLY.findall(t)) for t in converted)
        spelt = spelt_share(converted)
        if after * 5 <= before and gained >= 3 and spelt >= 0.6:
            if best is None or spelt > best[0]:
                best = (spelt, name)
    return best[1] if best else None


def convert(text: str, encoding: str | None) -> str:
    """One run of a document whose encoding :func:`detect` found; Unicode runs pass as they
    are (a Unicode header pasted into an old document stays right). With no legacy encoding,
    soft hyphens (U+00AD, Word's optional hyphen) are dropped: they are not part of words."""
    if encoding is None:
        return text.replace("\xad", "")
    decode, codes = DECODERS[encoding]
    if _UNICODE_ONLY.search(text) or (encoding != "tcvn3" and not any(ch in codes for ch in text)):
        return text  # (TCVN3 runs of plain letters may still have lost their ư)
    return unicodedata.normalize("NFC", decode(text))
