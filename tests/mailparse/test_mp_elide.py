"""Runs of base64-alphabet lines kept out of the feed parser (mailparse.mime._pieces) give the
same reading of a message as feeding every line: the same attachments byte for byte, the
same body text, defects and verdict, for messages of the sizes real mail has (a 16 KB
signed PDF as much as a 400 KB scan), whatever the lines around the runs are."""

from __future__ import annotations

import base64
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mailparse.mime as mime
from mailparse.mime import parse


def _reading(raw: bytes) -> tuple:
    r = parse(raw)
    atts = [
        (a.part_path, a.filename, a.declared_type, a.detected_type, a.data, a.defects, a.malformed)
        for top in r.attachments
        for a in top.walk()
    ]
    return atts, r.body_text, r.defects, r.malformed, r.subject


def _unelided(raw: bytes) -> tuple:
    with pytest.MonkeyPatch.context() as m:
        m.setattr(mime, "_RUN_MIN", 1 << 40)  # every line through the parser
        return _reading(raw)


def _b64_lines(data: bytes, width: int, eol: bytes) -> bytes:
    text = base64.b64encode(data)
    return eol.join(text[i : i + width] for i in range(0, len(text), width))


PART_BODIES = st.one_of(
    # a base64 attachment, whole or with its lines damaged
    st.tuples(
        st.just("b64"),
        st.binary(min_size=0, max_size=24_000),
        st.sampled_from([76, 64, 72, 100]),
        st.sampled_from(["", "cut", "stray", "blank-after", "no-eol"]),
    ),
    # text that happens to be made of base64-alphabet lines (a list of codes, a hex dump)
    st.tuples(
        st.just("text"),
        st.integers(min_value=1, max_value=900),
        st.sampled_from([b"ABCabc123", b"0A1B2C3D4E5F", b"=====", b"x+y/z"]),
        st.sampled_from(["", "dot", "boundary-like", "no-eol"]),
    ),
)


def _part(i: int, body: tuple, eol: bytes) -> bytes:
    if body[0] == "b64":
        _, data, width, flaw = body
        lines = _b64_lines(b"%PDF-1.4\n" + data, width, eol)
        if flaw == "cut":
            lines = lines[: max(1, len(lines) - 7)]
        elif flaw == "stray" and len(lines) > 200:
            lines = lines[:150] + eol + b"*" + eol + lines[150:]
        elif flaw == "blank-after":
            lines += eol + eol
        head = [
            b'Content-Type: application/pdf; name="' + str(i).encode() + b'.pdf"',
            b"Content-Transfer-Encoding: base64",
        ]
        tail = b"" if flaw == "no-eol" else eol
        return eol.join([*head, b"", lines]) + tail
    _, count, line, flaw = body
    lines = eol.join([line] * count)
    if flaw == "dot":
        lines += eol + b"." + eol + line
    elif flaw == "boundary-like":
        lines += eol + b"--" + line
    tail = b"" if flaw == "no-eol" else eol
    return eol.join([b"Content-Type: text/plain; charset=us-ascii", b"", lines]) + tail


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bodies=st.lists(PART_BODIES, min_size=1, max_size=3),
    eol=st.sampled_from([b"\r\n", b"\n"]),
    nested=st.booleans(),
)
def test_elided_runs_read_as_every_line_fed(bodies: list[tuple], eol: bytes, nested: bool) -> None:
    parts = [_part(i, b, eol) for i, b in enumerate(bodies)]
    inner = eol.join(
        [b'Content-Type: multipart/mixed; boundary="IN"', b""]
        + [b"--IN" + eol + p for p in parts]
        + [b"--IN--", b""]
    )
    lines = [
        b"From: vanthu@tayninh.gov.vn",
        b"To: vanban@dich.gov.vn",
        b"Subject: =?utf-8?q?C=C3=B4ng_v=C4=83n_s=E1=BB=91_15?=",
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="OUT"',
        b"",
        b"--OUT",
        b"Content-Type: text/plain; charset=utf-8",
        b"",
        "Kính gửi: Sở Thông tin và Truyền thông.".encode(),
    ]
    for p in [inner] if nested else parts:
        lines += [b"--OUT", p]
    raw = eol.join([*lines, b"--OUT--", b""])
    assert _reading(raw) == _unelided(raw)


@pytest.mark.parametrize("size", [3_000, 4_096, 12_000, 16_000, 60_000])
def test_signed_pdf_sized_attachment_decodes_exactly(size: int) -> None:
    """The sizes around the threshold: the attachment's bytes come back exactly."""
    data = b"%PDF-1.7\n" + random.Random(size).randbytes(size)
    raw = b"\r\n".join(
        [
            b"From: vanthu@tayninh.gov.vn",
            b'Content-Type: multipart/mixed; boundary="B"',
            b"",
            b"--B",
            b"Content-Type: text/plain",
            b"",
            b"Kinh gui",
            b"--B",
            b"Content-Type: application/pdf",
            b"Content-Disposition: attachment; filename=15-UBND-VP.pdf",
            b"Content-Transfer-Encoding: base64",
            b"",
            _b64_lines(data, 76, b"\r\n"),
            b"--B--",
            b"",
        ]
    )
    [att] = parse(raw).attachments
    assert att.data == data and not att.defects and not att.malformed


# Pieces of which any line of mail is made, as far as a run is concerned: the alphabet, the
# line ends (a CR alone, an empty line), and bytes that are not in a run (a header's colon, a
# boundary's dash, text's space, 8-bit text).
RUN_PIECES = st.sampled_from(
    [b"QUJD", b"x", b"+/=", b"0", b"\r\n", b"\n", b"\r", b"\r\r\n", b"\n\n"]
    + [b" ", b":", b"--", b"\xc3\xad"]
)


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(RUN_PIECES, max_size=80), repeat=st.integers(min_value=1, max_value=60))
def test_runs_are_the_regex_matches(pieces: list[bytes], repeat: int) -> None:
    """The line-end-led search finds exactly what `_RUN.finditer` finds, at the first byte too."""
    raw = b"".join(pieces) * repeat
    assert list(mime._runs(raw)) == [m.span() for m in mime._RUN.finditer(raw)]


def test_text_body_is_read_as_fed() -> None:
    """A long text body, where runs are short (a code line among Vietnamese text), reads the
    same as when every line is fed."""
    para = "Kính gửi: các sở, ban, ngành tỉnh Tây Ninh.\r\nABC123\r\n".encode()
    raw = b"\r\n".join(
        [
            b"From: vanthu@tayninh.gov.vn",
            b"Content-Type: text/plain; charset=utf-8",
            b"Content-Transfer-Encoding: 8bit",
            b"",
            para * 3000 + base64.encodebytes(bytes(range(256)) * 40).replace(b"\n", b"\r\n"),
        ]
    )
    assert _reading(raw) == _unelided(raw)
    assert "Kính gửi" in parse(raw).body_text
