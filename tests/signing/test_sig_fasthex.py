"""The fast hex-string reader gives exactly what pyHanko's own reader gives."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyhanko.pdf_utils.misc import PdfStreamError

from signing import _fasthex

HEXISH = st.lists(
    st.sampled_from(list(b"0123456789abcdefABCDEF \n\r\t\x00\x0c")), max_size=300
).map(bytes)


def _both(data: bytes) -> tuple[object, object]:
    out = []
    for reader in (_fasthex._original, _fasthex.read_hex_string_from_stream):
        s = io.BytesIO(data)
        try:
            value = reader(s)
            out.append((bytes(value.original_bytes), s.tell()))
        except PdfStreamError as e:
            out.append(("error", str(e)))
    return out[0], out[1]


@settings(max_examples=300, deadline=None)
@given(body=HEXISH, tail=st.binary(max_size=20))
def test_same_value_and_position_as_pyhanko(body, tail):
    original, fast = _both(b"<" + body + b">" + tail)
    assert fast == original


@pytest.mark.parametrize(
    "data",
    [
        b"<4142 4>rest",
        b"<41 % a comment\n42>x",
        b"<41zz>",
        b"<4142",
        b"<>",
        b"<" + b"ab" * 70000 + b">",
    ],
)
def test_edge_cases_match(data):
    original, fast = _both(data)
    assert fast == original
