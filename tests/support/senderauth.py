"""Sender-authentication fixtures: DKIM keys, their DNS records, and signed mails.

Keys are made with `cryptography`; mails are signed with dkimpy the way a sending domain's
server signs them (the signature prepended to the bytes, nothing else changed).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from email.utils import format_datetime, localtime, make_msgid

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    kind: str  # rsa | ed25519
    private: bytes  # as dkimpy takes it: PKCS#1 PEM (RSA) or base64 seed (Ed25519)
    public_b64: str

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def record(self) -> str:
        return f"v=DKIM1; k={self.kind}; p={self.public_b64}"

    def sign(self, raw: bytes) -> bytes:
        alg = b"ed25519-sha256" if self.kind == "ed25519" else b"rsa-sha256"
        sig = dkim.sign(
            raw,
            self.selector.encode(),
            self.domain.encode(),
            self.private,
            signature_algorithm=alg,
            include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
        )
        return sig + raw


def make_key(domain: str, selector: str = "mail", kind: str = "rsa") -> DkimKey:
    if kind == "ed25519":
        k = ed25519.Ed25519PrivateKey.generate()
        seed = k.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        pub = k.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return DkimKey(
            domain, selector, kind, base64.b64encode(seed), base64.b64encode(pub).decode()
        )
    r = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = r.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der = r.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return DkimKey(domain, selector, kind, pem, base64.b64encode(der).decode())


def mail(
    from_: str,
    *,
    to: str = "vanban@gw.test.gov.vn",
    subject: str = "Cong van so 12/UBND-VP",
    body: str = "Kính gửi quý cơ quan.\r\n",
    extra_headers: str = "",
) -> bytes:
    head = (
        f"{extra_headers}From: {from_}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: {format_datetime(localtime())}\r\n"
        f"Message-ID: {make_msgid(domain=from_.rpartition('@')[2].strip('>'))}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
    )
    return (head + "\r\n" + body).encode("utf-8")
