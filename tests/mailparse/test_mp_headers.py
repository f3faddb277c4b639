"""The one cut of a header block that SMTP, IMAP and the notices share."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest

from mailparse.headers import MAX_HEADER_BLOCK, header_block


@pytest.mark.parametrize(
    ("raw", "block"),
    [
        (b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore", b"A: 1\r\nB: 2\r\n"),
        (b"A: 1\nB: 2\n\nbody\n\nmore", b"A: 1\nB: 2\n"),
        (b"A: 1\nB: 2\n\r\nbody", b"A: 1\nB: 2\n"),  # mixed line ends
        (b"A: 1\r\nB: 2\r\n\nbody\r\n\r\n", b"A: 1\r\nB: 2\r\n"),  # bare LF before any CRLF
        (b"A: 1\r\n\tfolded\r\n\r\nx", b"A: 1\r\n\tfolded\r\n"),
        (b"\r\nbody: not a header\r\n\r\n", b""),
        (b"\nbody\n\n", b""),
        (b"A: 1\r\nno end", b"A: 1\r\nno end"),
    ],
)
def test_the_block_ends_at_the_first_empty_line(raw: bytes, block: bytes) -> None:
    assert header_block(raw) == block
    # the email package agrees on which fields are headers
    whole = BytesParser(policy=policy.compat32).parsebytes(raw, headersonly=True)
    cut = BytesParser(policy=policy.compat32).parsebytes(block, headersonly=True)
    assert cut.items() == whole.items()


def test_one_cap_for_a_block_with_no_end() -> None:
    raw = b"X: " + b"a" * (2 * MAX_HEADER_BLOCK)
    assert header_block(raw) == raw[:MAX_HEADER_BLOCK]
    late = b"X: " + b"a" * MAX_HEADER_BLOCK + b"\r\n\r\nbody"
    assert header_block(late) == late[:MAX_HEADER_BLOCK]
