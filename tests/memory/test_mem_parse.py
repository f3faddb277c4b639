"""mailparse.parse on a big message: the same tree as email's parser, in far less memory.

`BytesParser.parsebytes` wraps the whole message in a StringIO (four bytes per character) and
`get_payload(decode=True)` splits a base64 body into one object per line: about 8.7 times
the message at peak (bench/memory.py). The tests check that the replacements give the same
results and bound the Python allocations of `parse` (tracemalloc: deterministic, unlike RSS).
"""

from __future__ import annotations

import base64
import random
import tracemalloc
from collections.abc import Callable
from email import policy
from email.message import Message
from email.parser import BytesParser

import pytest

from mailparse import parse
from mailparse.mime import _base64_body, parse_bytes

MB = 1 << 20


def _mail(body: bytes, *, eol: bytes = b"\r\n", extra: bytes = b"") -> bytes:
    head = eol.join(
        [
            b"From: =?utf-8?b?VsSDbiB0aMawIFTDonkgTmluaA==?= <vanthu@tayninh.gov.vn>",
            b"To: vanban@dich.gov.vn",
            b"Subject: =?utf-8?q?C=C3=B4ng_v=C4=83n_s=E1=BB=91_15?=",
            b"MIME-Version: 1.0",
            b'Content-Type: multipart/mixed; boundary="XYZ"',
            b"",
            b"--XYZ",
            b"Content-Type: text/plain; charset=utf-8",
            b"Content-Transfer-Encoding: 8bit",
            b"",
            "Kính gửi: Sở Nội vụ.".encode() + extra,
            b"--XYZ",
            b"Content-Type: application/pdf",
            b'Content-Disposition: attachment; filename="15-UBND-VP.pdf"',
            b"Content-Transfer-Encoding: base64",
            b"",
            b"",
        ]
    )
    return head + body + eol + b"--XYZ--" + eol


def _b64(data: bytes, eol: bytes = b"\r\n") -> bytes:
    return base64.encodebytes(data).replace(b"\n", eol).rstrip(b"\r\n")


def _tree(msg: Message) -> list[tuple]:
    out = []
    for part in msg.walk():
        payload = None if part.is_multipart() else part.get_payload(decode=True)
        out.append(
            (
                part.get_content_type(),
                [(k, str(v)) for k, v in part.items()],
                payload,
                [type(d).__name__ for d in part.defects],
            )
        )
    return out


def _leaf(msg: Message, n: int = 1) -> Message:
    """The n-th non-multipart part (0: the text body, 1: the attachment)."""
    return [p for p in msg.walk() if not p.is_multipart()][n]


PDF = b"%PDF-1.7\n" + random.Random(1).randbytes(300_000)


@pytest.mark.parametrize(
    "raw",
    [
        _mail(_b64(PDF)),
        _mail(_b64(PDF, b"\n"), eol=b"\n"),
        # 8-bit bytes outside UTF-8 and a CR/LF pair across the 64 KiB feed boundary
        _mail(_b64(PDF), extra=b"\xff\xfe" + b"x" * (65536 - 900) + b"\r\n" + b"y" * 70000),
        _mail(b"not base64 at all! ###\r\n===="),  # email's defects path
        b"Subject: no body separator\r\nX: y",
    ],
    ids=["crlf", "lf", "8bit-and-boundary", "bad-base64", "headers-only"],
)
def test_parse_bytes_builds_the_tree_email_builds(raw: bytes) -> None:
    expected = BytesParser(policy=policy.default).parsebytes(raw)
    assert _tree(parse_bytes(raw)) == _tree(expected)


@pytest.mark.parametrize("eol", [b"\r\n", b"\n", b"\r"])
def test_base64_fast_path_decodes_what_email_decodes(eol: bytes) -> None:
    part = _leaf(parse_bytes(_mail(_b64(PDF, eol), eol=eol)))
    assert _base64_body(part) == part.get_payload(decode=True) == PDF


@pytest.mark.parametrize(
    "body", [b"QUJD*REVG", b"QUJDRA", b"QU=JD", b"QUJDREVGRw==\r\nQUJD"], ids=str
)
def test_base64_fast_path_leaves_flawed_bodies_to_email(body: bytes) -> None:
    """Stray characters, missing padding, padding inside: email decodes and records defects."""
    part = _leaf(parse_bytes(_mail(body)))
    assert _base64_body(part) is None
    email_result = part.get_payload(decode=True)
    att = parse(_mail(body)).attachments[0]
    assert att.data == email_result
    assert att.malformed and any("Base64" in d for d in att.defects)


def _peak(fn: Callable[[bytes], object], *args: bytes) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn(*args)
        peak = tracemalloc.get_traced_memory()[1] - base
        del result
        return peak
    finally:
        tracemalloc.stop()


def test_parse_of_a_big_attachment_stays_within_three_times_the_message() -> None:
    data = b"%PDF-1.7\n" + random.Random(2).randbytes(6 * MB)
    raw = _mail(_b64(data))
    result = parse(raw)
    assert result.attachments[0].data == data and not result.malformed

    def stdlib(raw: bytes) -> object:
        return _leaf(BytesParser(policy=policy.default).parsebytes(raw)).get_payload(decode=True)

    ours, theirs = _peak(parse, raw), _peak(stdlib, raw)
    # measured: 2.8x with parse_bytes and _base64_body, 8.7x with email alone
    assert ours < 3.5 * len(raw), f"parse peaked at {ours / len(raw):.1f}x the message"
    assert theirs > 5.0 * len(raw), "the control (email's own path) should be the costly one"


BIG = b"%PDF-1.7\n" + random.Random(3).randbytes(400_000)  # its base64 is over _RUN_MIN


def _inner_mail(payload: bytes) -> bytes:
    return b"\r\n".join(
        [
            b"From: vanthu@tayninh.gov.vn",
            b"Subject: inner",
            b'Content-Type: multipart/mixed; boundary="IN"',
            b"",
            b"--IN",
            b"Content-Type: application/pdf",
            b"Content-Transfer-Encoding: base64",
            b"",
            _b64(payload),
            b"--IN--",
            b"",
        ]
    )


def _with_part(headers: list[bytes], body: bytes) -> bytes:
    return b"\r\n".join(
        [
            b"From: vanthu@tayninh.gov.vn",
            b"Subject: x",
            b'Content-Type: multipart/mixed; boundary="XYZ"',
            b"",
            b"--XYZ",
            *headers,
            b"",
            body,
            b"--XYZ--",
            b"",
        ]
    )


def _email_leaves(raw: bytes) -> list[bytes]:
    """What email's own parser decodes for each leaf (attached messages opened)."""
    out = []
    for part in BytesParser(policy=policy.default).parsebytes(raw).walk():
        if part.get_content_type() == "message/rfc822":
            out.append(part.get_payload()[0].as_bytes(policy=policy.SMTP))
        elif not part.is_multipart():
            out.append(part.get_payload(decode=True))
    return out


def _ours(atts: list) -> list[bytes]:
    out = []
    for a in atts:
        out.append(a.data)
        out.extend(_ours(a.children))
    return out


@pytest.mark.parametrize(
    "raw",
    [
        _mail(_b64(BIG)),
        _mail(_b64(BIG, b"\n"), eol=b"\n"),
        _mail(_b64(BIG) + b"\r\n\r\n"),  # blank lines after the body
        # a stray character mid-body: two runs around a line email flags
        _mail(_b64(BIG)[:300_000] + b"\r\n*\r\n" + _b64(BIG)[300_000:]),
        _mail(_b64(BIG)[:-8]),  # cut short: email decodes what it can, and says so
        # a long body of base64-alphabet lines that is not base64: text, put back whole
        _with_part([b"Content-Type: text/plain; name=list.txt"], b"ABCabc123\r\n" * 40_000),
        _with_part([b"Content-Type: message/rfc822"], _inner_mail(BIG)),
    ],
    ids=["crlf", "lf", "blank-lines", "stray-char", "truncated", "plain-text", "attached-mail"],
)
def test_long_base64_runs_kept_from_the_parser_decode_as_email_does(raw: bytes) -> None:
    ours = _ours(parse(raw).attachments)
    expected = _email_leaves(raw)
    assert ours and all(x in expected for x in ours)  # every attachment, byte for byte
    assert not any(b"EDOCGWRUN" in x for x in ours)  # no placeholder left anywhere


def test_flawed_long_base64_is_named_like_a_short_one() -> None:
    result = parse(_mail(_b64(BIG)[:300_000] + b"\r\n*\r\n" + _b64(BIG)[300_000:]))
    [att] = result.attachments
    assert att.malformed and any("Base64" in d for d in att.defects)


def test_parse_of_a_big_attachment_keeps_its_base64_out_of_the_parser() -> None:
    """The feed parser would hold a base64 body as one str per line, then join them (2.6x
    the body); kept out, the peak is the decoded bytes and a slice."""
    data = b"%PDF-1.7\n" + random.Random(4).randbytes(6 * MB)
    raw = _mail(_b64(data))
    assert parse(raw).attachments[0].data == data
    ours = _peak(parse, raw)
    assert ours < 1.2 * len(raw), f"parse peaked at {ours / len(raw):.2f}x the message"
