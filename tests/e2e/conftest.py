"""Fixtures for the end-to-end tests: a test PKI, destination sinks, a running `edocgw serve`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from signing import TrustStore
from tests.delivery.support import Sink, start_sink
from tests.e2e.harness import GatewayProcess, base_config
from tests.support.pki import Pki, make_pki

StartGateway = Callable[..., Awaitable[GatewayProcess]]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("e2e-pki"))


@pytest.fixture(scope="session")
def trust(pki: Pki) -> TrustStore:
    return TrustStore.load(pki.anchors, pki.crls)


@pytest.fixture
async def sinks() -> AsyncIterator[Callable[[], Awaitable[Sink]]]:
    """Start aiosmtpd sinks on 127.0.0.1:0 on demand; all closed after the test."""
    started: list[Sink] = []

    async def new() -> Sink:
        sink = await start_sink()
        started.append(sink)
        return sink

    yield new
    for sink in started:
        await sink.close()


@pytest.fixture
async def sender_sink(sinks: Callable[[], Awaitable[Sink]]) -> Sink:
    """The senders' own mail server: `[delivery] smarthost` (receipts go there)."""
    return await sinks()


@pytest.fixture
def receipt_signer(pki: Pki, tmp_path: Path) -> tuple[Path, Path]:
    """(cert, key) the gateway signs receipts with: the test PKI's agency signer and its chain."""
    signer = pki.signer("agency")
    cert = tmp_path / "receipt-cert.pem"
    cert.write_bytes(signer.cert_pem + signer.chain_pem)
    return cert, signer.key_path


@pytest.fixture
async def gateway(
    tmp_path: Path,
    db_url: str,
    pki: Pki,
    sender_sink: Sink,
    receipt_signer: tuple[Path, Path],
) -> AsyncIterator[StartGateway]:
    """`await gateway(policy={...}, ...)` starts `edocgw serve`; stopped (exit 0) afterwards."""
    started: list[GatewayProcess] = []

    async def start(**sections: dict[str, Any]) -> GatewayProcess:
        cfg = base_config(tmp_path, db_url, sender_sink.hostport)
        cfg["trust"] = {
            "anchors": [str(p) for p in pki.anchors],
            "crls": [str(p) for p in pki.crls],
        }
        cfg["receipts"].update(sign_cert=str(receipt_signer[0]), sign_key=str(receipt_signer[1]))
        for name, keys in sections.items():
            cfg.setdefault(name, {}).update(keys)
        gw = GatewayProcess(tmp_path, cfg)
        started.append(gw)
        return await gw.start()

    yield start
    for gw in started:
        code = await gw.stop()
        assert code == 0, f"edocgw serve exited {code}:\n{gw.log_tail()}"
        assert not gw.errors(), "errors in the gateway's log:\n" + "\n".join(gw.errors()[:5])
