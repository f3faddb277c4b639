"""The gateway's own TLS certificate: the configured one, or a self-signed one made once.

With `[smtp] tls_cert`/`tls_key` empty, a self-signed certificate for `[gateway] hostname` is
generated into `data_dir/tls` on first start and reused afterwards, so clients that pin it keep
working across restarts. The web admin may serve the same pair.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from config import Settings

log = logging.getLogger("edocgw.tls")

SELF_SIGNED_CERT = "selfsigned.crt"
SELF_SIGNED_KEY = "selfsigned.key"


class TlsError(Exception):
    """A certificate or key that cannot be used; the text is one line for the operator."""


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path
    self_signed: bool


def cert_pair(settings: Settings) -> CertPair:
    """The configured pair, else the self-signed one in data_dir/tls (created if missing).

    Blocking (key generation, file I/O): call it through `asyncio.to_thread`.
    """
    s = settings.smtp
    if s.tls_cert:
        return CertPair(Path(s.tls_cert), Path(s.tls_key or s.tls_cert), self_signed=False)
    if s.tls_key:
        raise TlsError("[smtp] tls_key is set but tls_cert is empty: set both or neither")
    folder = Path(settings.gateway.data_dir) / "tls"
    pair = CertPair(folder / SELF_SIGNED_CERT, folder / SELF_SIGNED_KEY, self_signed=True)
    if not (pair.cert.exists() and pair.key.exists()):
        _generate(pair, settings.gateway.hostname)
        log.info(
            "generated a self-signed TLS certificate",
            extra={"cert": str(pair.cert.resolve()), "hostname": settings.gateway.hostname},
        )
    return pair


def server_context(pair: CertPair) -> ssl.SSLContext:
    """A server-side context for STARTTLS (TLS 1.2+; clients are not asked for certificates)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(pair.cert), str(pair.key))
    except (OSError, ssl.SSLError) as e:
        what = "tls_cert/tls_key" if not pair.self_signed else "the self-signed pair"
        raise TlsError(f"[smtp] {what} {pair.cert}, {pair.key}: cannot be loaded ({e})") from None
    return ctx


def _generate(pair: CertPair, hostname: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    sans: list[x509.GeneralName] = [x509.DNSName(hostname)]
    if hostname != "localhost":
        sans.append(x509.DNSName("localhost"))
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pair.key.parent.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomic(pair.key, key_pem, mode=0o600)
    _write_atomic(pair.cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
