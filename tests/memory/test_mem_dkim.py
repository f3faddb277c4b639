"""The gateway's DKIM signature on a big message without copies of it.

dkimpy, given the whole message, splits it into one bytes object per line and joins them
again, then canonicalises the body: about four times the message at once. The gateway hashes
the body itself a slice at a time and gives dkimpy the header block only; receivers check
the result with dkimpy's own verification.
"""

from __future__ import annotations

import base64
import random
import tracemalloc

import dkim
import pytest

from gateway.delivery.dkimsign import DkimSigner, generate
from gateway.delivery.wire import Outgoing

MB = 1 << 20
TRACE = b"Received: from a by b; Fri, 4 Dec 2026 10:00:00 +0700\r\nX-Edocgw-Id: 7\r\n"


def _message(body: bytes, eol: bytes = b"\r\n") -> bytes:
    head = [b"From: vanthu@tayninh.gov.vn", b"To: vanban@dich.gov.vn", b"Subject: x", b""]
    return eol.join(head) + eol + body


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n\r\n\r\n",
        b"one line without an end",
        b"lines\r\n\r\nwith  trailing \t \r\n\r\n\r\n",
        b"bare\nline feeds\n\nand\rcarriage returns\r",
        base64.encodebytes(random.Random(5).randbytes(3 * MB)).replace(b"\n", b"\r\n"),
    ],
    ids=["empty", "only-blank-lines", "no-eol", "trailing", "mixed-eol", "3mb"],
)
def test_the_signature_on_a_message_in_pieces_verifies(body: bytes) -> None:
    pem, record = generate("ed25519")
    signer = DkimSigner.from_pem("gw.test.gov.vn", "s1", pem)
    raw = _message(body)
    out = signer.sign_pieces(Outgoing(TRACE, raw))
    assert out.pieces[1:] == (TRACE, raw)  # prepended, nothing joined
    joined = bytes(out)
    assert dkim.verify(joined, dnsfunc=lambda _n, timeout=5: record.encode())
    assert not dkim.verify(
        joined.replace(b"X-Edocgw-Id: 7", b"X-Edocgw-Id: 8"),
        dnsfunc=lambda _n, timeout=5: record.encode(),
    )


def test_signing_a_big_message_allocates_a_slice_not_the_message() -> None:
    pem, _ = generate("rsa")
    signer = DkimSigner.from_pem("gw.test.gov.vn", "s1", pem)
    raw = _message(base64.encodebytes(random.Random(6).randbytes(12 * MB)).replace(b"\n", b"\r\n"))
    data = Outgoing(TRACE, raw)
    signer.sign_pieces(data)  # keys and modules loaded
    tracemalloc.start()
    try:
        signer.sign_pieces(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # dkimpy with the whole message: over 3x; here a few 1 MB slices at most
    assert peak < 0.3 * len(raw), f"signing peaked at {peak / len(raw):.2f}x the message"
