"""The gateway's DKIM key and signature (issue 14 §4) and the removal of forged
Authentication-Results (§2), on several shapes of message.

`edocgw dkim keygen` is run as an operator runs it; signatures are checked with dkimpy's own
verifier against the record the command printed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import example, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from config import Settings
from config.settings import DkimSettings
from gateway.delivery.dkimsign import DkimKeyError, DkimSigner
from gateway.senderauth.results import strip_own_results
from tests.support.cli import edocgw

GW = "gw.test.gov.vn"

MESSAGES = {
    "crlf": b"From: Van thu <vanthu@tayninh.gov.vn>\r\nTo: a@b.vn\r\nSubject: CV 12\r\n"
    b"\r\nNoi dung.\r\n",
    "lf": b"From: vanthu@tayninh.gov.vn\nSubject: CV 12\nReceived: from old\n\nNoi dung.\n",
    "received-below": b"Received: from mx.a.vn by mx.b.vn; Mon, 1 Dec 2026 10:00:00 +0700\r\n"
    b"Authentication-Results: mx.b.vn; spf=pass\r\nFrom: a@a.vn\r\n\r\n.dot line\r\n",
    "dsn": b"From: MAILER-DAEMON@gw.test.gov.vn\r\nContent-Type: multipart/report; "
    b'report-type=delivery-status; boundary="b"\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n',
}
TRACE = (
    "Received: from 127.0.0.1{eol}\tby gw.test.gov.vn (edocgw) with ESMTP id 7{eol}"
    "\tfor <a@b.vn>; Fri, 04 Dec 2026 10:00:00 +0000{eol}X-Edocgw-Id: abc@gw.test.gov.vn{eol}"
    "Authentication-Results: gw.test.gov.vn;{eol}\tspf=pass smtp.mailfrom=a.vn{eol}"
)


def _keygen(tmp_path: Path, *args: str) -> dict:
    cfg = tmp_path / "edocgw.toml"
    cfg.write_text(
        f'[gateway]\nhostname = "{GW}"\ndata_dir = "{tmp_path}"\n[dkim]\nselector = "s1"\n'
    )
    r = edocgw("dkim", "keygen", "--config", str(cfg), "--json", *args)
    assert r.code == 0, r.err
    return json.loads(r.out)


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_keygen_key_signs_and_the_printed_record_verifies(tmp_path: Path, kind: str) -> None:
    rec = _keygen(tmp_path, "--type", kind)
    assert rec["name"] == f"s1._domainkey.{GW}" and rec["type"] == "TXT"
    assert rec["value"].startswith(f"v=DKIM1; k={kind}; p=")
    key_file = Path(rec["key_file"])
    assert key_file.stat().st_mode & 0o077 == 0, "the private key is the owner's only"
    signer = DkimSigner.from_settings(
        DkimSettings(domain=GW, selector="s1", key_file=str(key_file))
    )
    assert signer is not None
    for name, original in MESSAGES.items():
        eol = b"\n" if name == "lf" else b"\r\n"
        data = TRACE.format(eol=eol.decode()).encode() + original
        out = signer.sign(data, eol)
        assert out.endswith(data), f"{name}: the bytes after the signature are untouched"
        head = out[: len(out) - len(data)]
        assert head.startswith(b"DKIM-Signature: ") and head.endswith(eol)
        assert (b"\r" in head) == (eol == b"\r\n"), f"{name}: the original's line ends"
        # the trace headers are signed, each instance of them
        h = re.search(rb"h=([^;]*);", head.replace(eol + b" ", b" ")).group(1)  # type: ignore[union-attr]
        signed = [x.strip() for x in h.decode().split(":")]
        assert signed.count("received") == original.lower().count(b"received:") + 1
        assert "x-edocgw-id" in signed and "authentication-results" in signed
        ok = dkim.verify(out, dnsfunc=lambda _n, timeout=5: rec["value"].encode())
        assert ok, name
        # a changed trace header breaks it
        forged = out.replace(b"X-Edocgw-Id: abc", b"X-Edocgw-Id: abd")
        assert not dkim.verify(forged, dnsfunc=lambda _n, timeout=5: rec["value"].encode())


def test_keygen_keeps_an_existing_key_and_prints_its_record(tmp_path: Path) -> None:
    first = _keygen(tmp_path)
    again = _keygen(tmp_path)
    assert again == first
    assert _keygen(tmp_path, "--force")["value"] != first["value"]


def test_unusable_keys_are_refused_naming_the_setting(tmp_path: Path, settings: Settings) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = weak.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "weak.pem").write_bytes(pem)
    (tmp_path / "junk.pem").write_text("not a key\n")
    for name, expected in (
        ("weak.pem", "1024 bits"),
        ("junk.pem", "not a PEM private key"),
        ("missing.pem", "cannot read"),
    ):
        with pytest.raises(DkimKeyError) as e:
            DkimSigner.from_settings(
                DkimSettings(domain=GW, selector="s", key_file=str(tmp_path / name))
            )
        assert str(e.value).startswith("dkim.key_file:") and expected in str(e.value)
    assert DkimSigner.from_settings(settings.dkim) is None  # not configured: no signing


@pytest.mark.parametrize(
    "field",
    [
        b"Authentication-Results: gw.test.gov.vn; dmarc=pass\r\n",
        b"authentication-results:GW.TEST.GOV.VN;\r\n\tspf=pass smtp.mailfrom=a.vn\r\n",
        b"Authentication-Results:\r\n (forged) gw.test.gov.vn;\r\n dkim=pass header.d=a.vn\r\n",
        b"Authentication-Results: gw.test.gov.vn 1; none\r\n",
    ],
    ids=["plain", "case-folded", "comment-and-folding", "version"],
)
def test_forged_results_in_the_gateways_name_are_cut_and_nothing_else(field: bytes) -> None:
    keep = b"Authentication-Results: mx.a.vn; spf=pass\r\n"
    similar = b"Authentication-Results: gw.test.gov.vn.evil.vn; dmarc=pass\r\n"
    body = b"\r\nAuthentication-Results: gw.test.gov.vn; in the body\r\n"
    raw = b"Received: x\r\n" + field + keep + similar + b"From: a@a.vn\r\n" + field + body
    out = strip_own_results(raw, GW)
    assert out == b"Received: x\r\n" + keep + similar + b"From: a@a.vn\r\n" + body
    lf = raw.replace(b"\r\n", b"\n")
    assert strip_own_results(lf, GW) == out.replace(b"\r\n", b"\n")
    clean = b"From: a@a.vn\r\n" + keep + body
    assert strip_own_results(clean, GW) is clean


@hyp_settings(max_examples=400, deadline=None)
@example([b"a: b", b"\n", b"\n", b"body", b"\r\n", b"\r\n"])  # bare LF blank line first
@example([b"a: b", b"\r\n", b"\r\n", b"body", b"\n", b"\n"])
@given(st.lists(st.sampled_from([b"\r\n", b"\n", b"\r", b"a", b": ", b" "]), max_size=40))
def test_the_header_block_ends_where_the_first_blank_line_starts(pieces) -> None:  # noqa: ANN001
    """_header_end against its plain definition: the first CRLF CRLF or LF LF, either kind."""
    from gateway.senderauth.results import _header_end

    raw = b"".join(pieces)
    found = [i + len(sep) // 2 for sep in (b"\r\n\r\n", b"\n\n") if (i := raw.find(sep)) >= 0]
    expected = 0 if raw.startswith((b"\r\n", b"\n")) else min(found, default=len(raw))
    assert _header_end(raw) == expected
