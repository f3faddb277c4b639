"""The fast token and name readers give exactly what pyHanko's own readers give, and a
signed PDF's reports do not change with them."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyhanko.pdf_utils import generic, misc

from signing import TrustStore, verify_document
from signing import _fasttokens as fast
from tests.support.pki import Pki, fill_text_field, replace_page_content, sign_pdf

CLASSES = [misc.PDF_WHITESPACE, misc.PDF_WHITESPACE + misc.PDF_DELIMITERS]
# PDF-ish bytes: tokens, whitespace, delimiters, '#' escapes and bytes outside ASCII.
PDFISH = st.lists(
    st.one_of(
        st.sampled_from(
            [b"/Type", b"/Sig", b" ", b"\n", b"\r\n", b"\x00", b"<<", b">>", b"[", b"]", b"(x)"]
        ),
        st.sampled_from([b"#20", b"#2", b"#zz", b"%c\n", b"/", b"{", b"\xc3\xa1", b"\x7f"]),
        st.binary(max_size=8),
        st.text("abcXYZ0123.-+_*", max_size=300).map(str.encode),
    ),
    max_size=30,
).map(b"".join)
MAXCHARS = st.one_of(st.none(), st.integers(min_value=-2, max_value=300))


def _outcome(fn, *args, **kwargs):  # noqa: ANN001, ANN202
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as e:
        return ("error", type(e).__name__, str(e))


def _read(fn, data: bytes, start: int, class_chars: bytes, maxchars: int | None):  # noqa: ANN001, ANN202
    s = io.BytesIO(data)
    s.seek(start)
    return _outcome(fn, class_chars, s, maxchars=maxchars), s.tell()


@settings(max_examples=400, deadline=None)
@given(data=PDFISH, start=st.integers(0, 40), which=st.sampled_from(CLASSES), maxchars=MAXCHARS)
def test_token_end_as_pyhanko(data: bytes, start: int, which: bytes, maxchars: int | None):
    start = min(start, len(data))
    original = _read(fast._original_until_class, data, start, which, maxchars)
    assert _read(fast.read_until_class, data, start, which, maxchars) == original


@settings(max_examples=400, deadline=None)
@given(name=PDFISH)
def test_name_as_pyhanko(name: bytes):
    original = _outcome(fast._original_decode_name, name)
    got = _outcome(fast.decode_name, name)
    assert got == original
    if got[0] == "ok":
        assert type(got[1]) is generic.NameObject


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"Type",
        b"Type/Sig",
        b"A" * 1000 + b" rest",
        b"Lin#20e ",
        b"\xc3\xa1b>",
        b"x" * 128,
        b" " * 300 + b"obj",
        b" " * 128,
        b"  % a comment\r\n  /Type",
        b"%only a comment",
        b"\x00\x0c\t%c\n%d\r\n 1 0 obj",
    ],
)
def test_edge_cases_match(data: bytes):
    for which in CLASSES:
        for maxchars in (None, 0, 1, 5, 128, 129):
            original = _read(fast._original_until_class, data, 0, which, maxchars)
            assert _read(fast.read_until_class, data, 0, which, maxchars) == original


def test_installed_for_pyhanko():
    """The readers are what pyHanko's parser calls once signing.pdf is imported."""
    import signing.pdf  # noqa: F401

    assert misc._read_until_class is fast.read_until_class
    assert generic._decode_name is fast.decode_name
    assert misc.read_until_delimiter(io.BytesIO(b"Type/Sig")) == b"Type"


def test_reports_unchanged(
    pki: Pki, trust: TrustStore, unsigned_pdf: bytes, monkeypatch: pytest.MonkeyPatch
):
    """Valid, signed twice, form filled after signing and content replaced after signing:
    the same reports with pyHanko's own readers as with these."""
    once = sign_pdf(unsigned_pdf, pki.signer("person"))
    pdfs = [
        once,
        sign_pdf(once, pki.signer("agency")),
        fill_text_field(once, "Đã xem"),
        replace_page_content(once),
    ]
    ours = [verify_document(p, "pdf", None, trust) for p in pdfs]
    monkeypatch.setattr(misc, "_read_until_class", fast._original_until_class)
    monkeypatch.setattr(generic, "_decode_name", fast._original_decode_name)
    theirs = [verify_document(p, "pdf", None, trust) for p in pdfs]
    assert ours == theirs
    assert [r.verdict for rs in ours for r in rs][:3] == ["valid", "valid", "valid"]
    assert ours[3][0].verdict == "invalid"
