"""The gateway's own DKIM signature (RFC 6376) on everything it sends.

Every outgoing message (forwarded copies, DSNs, receipts, notices) is assembled in one
place, `DeliveryService._attempt`: trace headers + the original bytes. That is what gets
signed, as bytes: dkimpy computes the signature over them and returns one header, which is
prepended; nothing of the message is parsed into objects or written out again, so the
original's own signatures stay intact. The trace headers (Received, X-Edocgw-Id,
Authentication-Results) are signed with the usual header fields, each listed as many times
as it occurs, so a header of the same name added later cannot pass for ours (§5.4.2).

Keys: RSA (2048 bits or more) or Ed25519 (RFC 8463), as PEM; `edocgw dkim keygen` writes one
and prints the DNS record.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from config.settings import DkimSettings

log = logging.getLogger("edocgw.delivery")

MIN_RSA_BITS = 2048
TRACE = (b"received", b"x-edocgw-id", b"authentication-results")


class DkimKeyError(Exception):
    """The configured key cannot be used (one line naming the key file)."""


@dataclass(frozen=True)
class DkimSigner:
    domain: str
    selector: str
    algorithm: bytes  # rsa-sha256 | ed25519-sha256
    private: bytes  # in dkimpy's form: PKCS#1 PEM (RSA) or base64 seed (Ed25519)

    @classmethod
    def from_settings(cls, s: DkimSettings) -> DkimSigner | None:
        """None when signing is not configured; DkimKeyError for a key that is unusable."""
        if not s.domain or not s.key_file:
            return None
        try:
            pem = Path(s.key_file).read_bytes()
        except OSError as e:
            raise DkimKeyError(f"dkim.key_file: cannot read {s.key_file}: {e.strerror}") from None
        return cls.from_pem(s.domain, s.selector, pem, s.key_file)

    @classmethod
    def from_pem(cls, domain: str, selector: str, pem: bytes, name: str = "key") -> DkimSigner:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as e:
            raise DkimKeyError(f"dkim.key_file: {name} is not a PEM private key ({e})") from None
        if isinstance(key, rsa.RSAPrivateKey):
            if key.key_size < MIN_RSA_BITS:
                raise DkimKeyError(
                    f"dkim.key_file: {name} is RSA {key.key_size} bits, expected at least "
                    f"{MIN_RSA_BITS} (or Ed25519)"
                )
            private = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
            return cls(domain.lower(), selector, b"rsa-sha256", private)
        if isinstance(key, ed25519.Ed25519PrivateKey):
            seed = key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            return cls(domain.lower(), selector, b"ed25519-sha256", base64.b64encode(seed))
        raise DkimKeyError(f"dkim.key_file: {name} is neither RSA nor Ed25519")

    def signature(self, data: bytes, eol: bytes = b"\r\n") -> bytes:
        """The DKIM-Signature header (with its line end) to put in front of `data`."""
        d = dkim.DKIM(data, linesep=eol)
        d.should_not_sign.discard(b"received")  # ours is a trace header worth signing
        names = [name.lower() for name, _ in d.headers]
        include = [h for h in d.default_sign_headers() if h.lower() not in TRACE]
        include += [n for n in names if n in TRACE]
        header = d.sign(
            self.selector.encode("ascii"),
            self.domain.encode("ascii"),
            self.private,
            signature_algorithm=self.algorithm,
            include_headers=include,
        )
        return bytes(header)

    def sign(self, data: bytes, eol: bytes = b"\r\n") -> bytes:
        """`data` with the signature prepended; `data` unchanged (and a warning) when it
        cannot be signed, e.g. a message without a From header."""
        try:
            return self.signature(data, eol) + data
        except dkim.DKIMException as e:
            log.warning(
                "message sent without the gateway's DKIM signature", extra={"error": str(e)}
            )
            return data


def generate(kind: str = "rsa", bits: int = 2048) -> tuple[bytes, str]:
    """A new private key as PKCS#8 PEM and the DNS TXT value publishing its public half."""
    if kind == "ed25519":
        key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = ed25519.Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        k = "ed25519"
    else:
        if bits < MIN_RSA_BITS:
            raise ValueError(f"expected at least {MIN_RSA_BITS} bits")
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        k = "rsa"
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, f"v=DKIM1; k={k}; p={base64.b64encode(public).decode()}"


def public_record(signer_pem: bytes) -> str:
    """The TXT value for an existing key."""
    key = serialization.load_pem_private_key(signer_pem, password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    der = key.public_key().public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
