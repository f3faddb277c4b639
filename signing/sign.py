"""The gateway's own signature on what it issues (receipts): S/MIME multipart/signed.

Detached, so a receiver without S/MIME still reads the receipt; built with cryptography's
PKCS#7 builder (SHA-256, the signer's certificate included).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from signing.errors import SignerConfigError


def load_signer(
    cert_pem: bytes, key_pem: bytes
) -> tuple[
    x509.Certificate, list[x509.Certificate], rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
]:
    """(certificate, chain, key) from PEM, or :class:`SignerConfigError` saying what is wrong."""
    try:
        certs = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise SignerConfigError(f"signing certificate is not PEM: {exc}") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SignerConfigError(f"signing key is not an unencrypted PEM key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise SignerConfigError("signing key must be RSA or ECDSA")
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if certs[0].public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise SignerConfigError("signing key does not match the first certificate")
    return certs[0], certs[1:], key


def sign_smime(content: bytes, cert_pem: bytes, key_pem: bytes) -> bytes:
    """A complete ``multipart/signed`` MIME entity over *content* (a MIME entity itself,
    headers and body, CRLF line ends), ready to become a mail body or attachment."""
    cert, chain, key = load_signer(cert_pem, key_pem)
    builder = pkcs7.PKCS7SignatureBuilder().set_data(content).add_signer(cert, key, hashes.SHA256())
    for extra in chain:
        builder = builder.add_certificate(extra)
    return builder.sign(
        serialization.Encoding.SMIME,
        [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
    )
