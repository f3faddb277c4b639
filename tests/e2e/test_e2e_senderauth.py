"""Issue 14 end to end: inbound SPF/DKIM/DMARC, the Authentication-Results header, and the
gateway's own DKIM signature on what it forwards and on the receipts it sends.

A real `edocgw serve`; a real DNS server on loopback publishing the sender domain's SPF, DKIM
and DMARC records and the gateway's own DKIM key; aiosmtpd sinks for the agency and for the
sender's mail server. The test client connects from 127.0.0.1 while relay_networks names only
127.0.0.2, so it is an outside, unauthenticated client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import dkim
import dns.resolver
import pytest

from gateway.delivery.dkimsign import generate
from store.agencies import AgencyIn
from store.db import Database
from tests.delivery.support import Sink, wait_until
from tests.e2e.harness import (
    HOSTNAME,
    PROCESSING,
    add_agency,
    document_mail,
    messages,
    parse,
    relay_send,
)
from tests.support.corpus import by_key, pdf_bytes
from tests.support.dns import LoopbackDns, start_dns
from tests.support.senderauth import make_key

GOV = "chinhphu.gov.vn"
SENDER = f"vanthu@{GOV}"
AGENCY = "000.00.00.H53"
GW_SELECTOR = "gw2026"
SENDER_KEY = make_key(GOV, "s2026")


@pytest.fixture
async def gw_key(tmp_path: Path) -> tuple[Path, str]:
    pem, record = generate("rsa")
    path = tmp_path / "dkim.pem"
    path.write_bytes(pem)
    return path, record


@pytest.fixture
async def dns_server(gw_key: tuple[Path, str]) -> AsyncIterator[LoopbackDns]:
    server = await start_dns(
        {},
        {
            GOV: ["v=spf1 ip4:127.0.0.1 -all"],
            f"_dmarc.{GOV}": ["v=DMARC1; p=reject"],
            SENDER_KEY.record_name: [SENDER_KEY.record],
            f"{GW_SELECTOR}._domainkey.{HOSTNAME}": [gw_key[1]],
        },
    )
    yield server
    server.close()


def _verify_with_published_key(raw: bytes, port: int, idx: int = 0) -> bool:
    """dkimpy's own verifier, with keys looked up in the loopback DNS (in a thread: the DNS
    server answers on the test's event loop)."""
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = port

    def txt(name: bytes, timeout: float = 5) -> bytes | None:
        try:
            answer = r.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
        except dns.resolver.NXDOMAIN:
            return None
        return b"".join(next(iter(answer)).strings)  # type: ignore[attr-defined]

    return bool(dkim.DKIM(raw).verify(idx=idx, dnsfunc=txt))


async def test_signed_mail_is_forwarded_with_results_and_the_gateways_signature(
    db: Database,
    gateway,  # noqa: ANN001
    sinks,  # noqa: ANN001
    sender_sink: Sink,
    dns_server: LoopbackDns,
    gw_key: tuple[Path, str],
) -> None:
    agency = await sinks()
    await add_agency(
        db,
        AgencyIn(
            AGENCY, "UBND tỉnh Tây Ninh", "vanban@tayninh.gov.vn",
            domains=["tayninh.gov.vn"], route=agency.route, tls="none",
        ),
    )  # fmt: skip
    gw = await gateway(
        smtp={"relay_networks": ["127.0.0.2/32"]},
        delivery={"dns_servers": [f"127.0.0.1:{dns_server.port}"]},
        dkim={"domain": HOSTNAME, "selector": GW_SELECTOR, "key_file": str(gw_key[0])},
    )
    doc = by_key("bc-stc")
    original = document_mail(
        f"[{AGENCY}] Báo cáo số {doc.printed_number}",
        pdf_bytes("bc-stc"),
        doc.filename("pdf"),
        sender=SENDER,
    )
    # what the sender's own server adds: results of its own (another authserv-id, kept) and
    # a forged verdict in the gateway's name (removed), then its DKIM signature over it all
    forged = (
        b"Authentication-Results: " + HOSTNAME.encode() + b";\r\n\tdmarc=pass header.from=x.vn;"
        b" x-edocgw-signature=valid\r\n"
    )
    original = (
        b"Authentication-Results: mx.chinhphu.gov.vn; spf=pass smtp.mailfrom=chinhphu.gov.vn\r\n"
        + forged
        + original
    )
    signed = SENDER_KEY.sign(original)
    await relay_send(gw.relay_port, signed, rcpt=PROCESSING, sender=SENDER)

    async def arrived() -> bool:
        return len(agency.got) >= 1 and len(sender_sink.got) >= 2

    await wait_until(arrived, 60, "the forwarded copy and the receipts")
    (msg,) = await messages(db)
    assert msg.raw == signed, "stored byte for byte"
    assert msg.auth_results["dmarc"] == "pass"

    (got,) = agency.got
    fwd = got.content
    # the original bytes follow the gateway's headers, less the forged field
    assert fwd.endswith(signed.replace(forged, b"", 1))
    results = parse(fwd).get_all("Authentication-Results")
    ours = [str(v) for v in results if str(v).startswith(HOSTNAME)]
    assert len(ours) == 1, results  # the forged one is gone, ours is there
    assert "spf=pass smtp.mailfrom=chinhphu.gov.vn" in ours[0]
    assert f"dkim=pass header.d={GOV} header.s=s2026" in ours[0]
    assert f"dmarc=pass (p=reject) header.from={GOV}" in ours[0]
    assert any(str(v).startswith("mx.chinhphu.gov.vn") for v in results), "others' are kept"

    # the gateway's signature is on top, and verifies against the published key
    assert fwd.startswith(b"DKIM-Signature: ")
    top = parse(fwd)["DKIM-Signature"]
    assert f"d={HOSTNAME}" in str(top) and f"s={GW_SELECTOR}" in str(top)
    assert await asyncio.to_thread(_verify_with_published_key, fwd, dns_server.port, 0)
    # the sender's own signature (second from the top) still verifies at the agency
    assert await asyncio.to_thread(_verify_with_published_key, fwd, dns_server.port, 1)
    # the receipts to the sender carry the gateway's signature too
    for receipt in sender_sink.got:
        assert receipt.content.startswith(b"DKIM-Signature: ")
        assert await asyncio.to_thread(
            _verify_with_published_key, receipt.content, dns_server.port, 0
        )
