"""The gateway's own DKIM signature (RFC 6376) on everything it sends.

Every outgoing message (forwarded copies, DSNs, receipts, notices) is assembled in one
place, `DeliveryService._attempt`: trace headers + the original bytes. That is what gets
signed, as bytes: dkimpy computes the signature over them and returns one header, which is
prepended; nothing of the message is parsed into objects or written out again, so the
original's own signatures stay intact. The trace headers (Received, X-Edocgw-Id,
Authentication-Results) are signed with the usual header fields, each listed as many times
as it occurs, so a header of the same name added later cannot pass for ours (§5.4.2).

The body hash (simple canonicalisation, as dkimpy's default relaxed/simple) is computed here
a slice at a time over the pieces of the message; dkimpy parses only the header block and
makes the signature. Handing dkimpy the whole message cost about four times it at once (it
splits the message into one bytes object per line and joins them again; bench/memory.py).

Keys: RSA (2048 bits or more) or Ed25519 (RFC 8463), as PEM; `edocgw dkim keygen` writes one
and prints the DNS record.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.canonicalization import CanonicalizationPolicy

from config.settings import DkimSettings
from gateway.delivery.wire import Data, Outgoing

log = logging.getLogger("edocgw.delivery")

MIN_RSA_BITS = 2048
TRACE = (b"received", b"x-edocgw-id", b"authentication-results")
CANON = CanonicalizationPolicy.from_c_value(b"relaxed/simple")  # dkimpy's default
SLICE = 1 << 20
_BARE_LF = re.compile(rb"(?<!\r)\n")  # dkimpy splits lines at \r?\n and joins them with CRLF


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

    def signature(self, data: Data, eol: bytes = b"\r\n") -> bytes:
        """The DKIM-Signature header (with its line end) to put in front of `data`."""
        head, body = _split(data.pieces if isinstance(data, Outgoing) else (data,))
        d = dkim.DKIM(head + eol, linesep=eol)  # the header block only
        d.should_not_sign.discard(b"received")  # ours is a trace header worth signing
        names = [name.lower() for name, _ in d.headers]
        include = [h for h in d.default_sign_headers() if h.lower() not in TRACE]
        include += [n for n in names if n in TRACE]
        return bytes(self._sign(d, _body_hash(body, dkim.HASH_ALGORITHMS[self.algorithm]), include))

    def _sign(self, d: dkim.DKIM, body_hash: bytes, include: list[bytes]) -> bytes:
        """dkimpy's `DKIM.sign` with the body hash given (its checks, fields and order)."""
        if self.algorithm == b"ed25519-sha256":
            import nacl.encoding
            import nacl.signing

            pk: object = nacl.signing.SigningKey(self.private, encoder=nacl.encoding.Base64Encoder)
        else:
            try:
                pk = dkim.crypto.parse_pem_private_key(self.private)
            except dkim.crypto.UnparsableKeyError as e:
                raise dkim.KeyFormatError(str(e)) from None
        headers = tuple(h.lower() for h in include)
        if b"from" not in headers:
            raise dkim.ParameterError("The From header field MUST be signed")
        for h in set(headers) & d.should_not_sign:
            raise dkim.ParameterError(f"The {h!r} header field SHOULD NOT be signed")
        d.signature_algorithm = self.algorithm
        d.hasher = dkim.HASH_ALGORITHMS[self.algorithm]
        d.include_headers = headers
        domain, selector = self.domain.encode("ascii"), self.selector.encode("ascii")
        fields = [
            (b"v", b"1"),
            (b"a", self.algorithm),
            (b"c", CANON.to_c_value()),
            (b"d", domain),
            (b"i", b"@" + domain),
            (b"q", b"dns/txt"),
            (b"s", selector),
            (b"t", str(int(time.time())).encode("ascii")),
            (b"h", b" : ".join(headers)),
            (b"bh", base64.b64encode(body_hash)),
            (b"b", b"0" * 60),  # folds b= onto its own line, as dkimpy does
        ]
        value = d.gen_header(fields, headers, CANON, b"DKIM-Signature", pk)
        return b"DKIM-Signature: " + value

    def sign(self, data: bytes, eol: bytes = b"\r\n") -> bytes:
        """`data` with the signature prepended; `data` unchanged (and a warning) when it
        cannot be signed, e.g. a message without a From header."""
        head = self.signature_or_none(data, eol)
        return data if head is None else head + data

    def sign_pieces(self, data: Outgoing, eol: bytes = b"\r\n") -> Outgoing:
        """`sign` for a message in pieces: the signature becomes one more piece."""
        head = self.signature_or_none(data, eol)
        return data if head is None else data.prepend(head)

    def signature_or_none(self, data: Data, eol: bytes) -> bytes | None:
        try:
            return self.signature(data, eol)
        except dkim.DKIMException as e:
            log.warning(
                "message sent without the gateway's DKIM signature", extra={"error": str(e)}
            )
            return None


def _split(pieces: tuple[bytes, ...]) -> tuple[bytes, list[memoryview]]:
    """The header block (without the blank line) and the body of a message in pieces that
    each start a line: where dkimpy's parser ends the headers, at the first empty line."""
    head: list[bytes] = []
    for n, piece in enumerate(pieces):
        at = _blank_line(piece)
        if at < 0:
            head.append(piece)
            continue
        head.append(piece[:at])
        start = at + (2 if piece[at : at + 2] == b"\r\n" else 1)
        return b"".join(head), [
            memoryview(piece)[start:],
            *(memoryview(p) for p in pieces[n + 1 :]),
        ]
    return b"".join(head), []


def _blank_line(piece: bytes) -> int:
    """Where the first empty line of *piece* starts (-1: none)."""
    if piece.startswith((b"\n", b"\r\n")):
        return 0
    found = [i + 1 for i in (piece.find(b"\n\n"), piece.find(b"\n\r\n")) if i >= 0]
    return min(found) if found else -1


def _body_hash(body: list[memoryview], hasher: type) -> bytes:
    """The simple-canonicalised body's hash (RFC 6376 §3.4.3: trailing empty lines dropped,
    one CRLF at the end), computed a slice at a time."""
    h = hasher()
    held = 0  # CRLFs at the end so far: hashed only if content follows them
    for chunk in _line_slices(body):
        c = _BARE_LF.sub(b"\r\n", chunk)
        end, n = len(c), 0
        while end >= 2 and c[end - 2 : end] == b"\r\n":
            end, n = end - 2, n + 1
        if end == 0:
            held += n
            continue
        h.update(b"\r\n" * held)
        h.update(memoryview(c)[:end])
        held = n
    h.update(b"\r\n")
    return h.digest()


def _line_slices(body: list[memoryview]) -> Iterator[bytes]:
    """The body in slices of about `SLICE` bytes, each cut just after a line feed."""
    for piece in body:
        start = 0
        while start < len(piece):
            cut = bytes(piece[start : start + SLICE])
            if start + SLICE < len(piece):
                last_lf = cut.rfind(b"\n")
                if last_lf >= 0:
                    cut = cut[: last_lf + 1]
            start += len(cut)
            yield cut


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
