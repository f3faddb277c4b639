"""The trust store: anchors, intermediates and CRLs read once, then reused for every job.

Parsing certificates and CRLs is the expensive part of setting up validation, so a pool
worker loads the store once (see gateway/processes/verify.py) and builds a cheap
:class:`~pyhanko_certvalidator.ValidationContext` per signature from the parsed objects.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path

from asn1crypto import crl as asn1_crl
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.policy_decl import (
    NO_REVOCATION,
    REQUIRE_REVINFO,
    CertRevTrustPolicy,
)
from pyhanko_certvalidator.registry import SimpleTrustManager

from signing.chainmemo import ChainMemo
from signing.errors import TrustStoreError

REVOCATION_MODES = ("hard-fail", "soft-fail")
#: What an intact signature made with a weak algorithm (SHA-1, MD5) is: ETSI EN 319 102-1
#: calls it INDETERMINATE (CRYPTO_CONSTRAINTS_FAILURE_NO_POE); an operator may say invalid.
WEAK_ALGORITHM_VERDICTS = ("indeterminate", "invalid")
#: pyhanko-certvalidator's allowance for clock drift; the chain memo buckets times with it.
TIME_TOLERANCE = timedelta(seconds=1)
_CERT_SUFFIXES = {".pem", ".crt", ".cer", ".der", ".ca"}
_CRL_SUFFIXES = {".crl", ".pem", ".der"}


def _files(sources: Iterable[str | os.PathLike[str]], suffixes: set[str]) -> list[Path]:
    out: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            out.extend(
                sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
            )
        elif path.is_file():
            out.append(path)
        else:
            raise TrustStoreError(f"{path}: no such file or folder")
    return out


def _der_blobs(path: Path, pem_type: str) -> list[bytes]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustStoreError(f"{path}: cannot read ({exc.strerror})") from None
    if pem.detect(data):
        blobs = [der for kind, _, der in pem.unarmor(data, multiple=True) if kind == pem_type]
        if not blobs:
            raise TrustStoreError(f"{path}: no '{pem_type}' PEM block")
        return blobs
    return [data]


def _load_certs(path: Path) -> list[asn1_x509.Certificate]:
    certs = []
    for der in _der_blobs(path, "CERTIFICATE"):
        try:
            cert = asn1_x509.Certificate.load(der)
            cert.native  # noqa: B018 - force a full parse so errors surface here
        except Exception as exc:
            raise TrustStoreError(f"{path}: not an X.509 certificate ({exc})") from None
        certs.append(cert)
    return certs


def _load_crls(path: Path) -> list[asn1_crl.CertificateList]:
    crls = []
    for der in _der_blobs(path, "X509 CRL"):
        try:
            crl = asn1_crl.CertificateList.load(der)
            crl["tbs_cert_list"]["issuer"].native  # noqa: B018
            crl["tbs_cert_list"]["this_update"].native  # noqa: B018
        except Exception as exc:
            raise TrustStoreError(f"{path}: not a CRL ({exc})") from None
        crls.append(crl)
    return crls


def _is_root(cert: asn1_x509.Certificate) -> bool:
    return cert.self_signed in ("maybe", "yes")


@dataclass(frozen=True)
class TrustStore:
    """Parsed anchors (self-signed roots), intermediates (other certs given) and CRLs."""

    roots: tuple[asn1_x509.Certificate, ...]
    intermediates: tuple[asn1_x509.Certificate, ...] = ()
    crls: tuple[asn1_crl.CertificateList, ...] = ()
    revocation: str = "hard-fail"
    weak_algorithms: str = "indeterminate"
    sources: tuple[Path, ...] = field(default=(), compare=False)
    _args: tuple[tuple, tuple] = field(default=((), ()), compare=False, repr=False)
    _stamp: tuple[tuple[str, int, int], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def load(
        cls,
        anchors: Iterable[str | os.PathLike[str]],
        crls: Iterable[str | os.PathLike[str]] = (),
        revocation: str = "hard-fail",
        weak_algorithms: str = "indeterminate",
    ) -> TrustStore:
        """Read PEM/DER files or folders. A bad file raises :class:`TrustStoreError`
        naming it. A non-self-signed certificate among the anchors is an intermediate."""
        if revocation not in REVOCATION_MODES:
            raise TrustStoreError(
                f"revocation={revocation!r}: expected one of {', '.join(REVOCATION_MODES)}"
            )
        if weak_algorithms not in WEAK_ALGORITHM_VERDICTS:
            raise TrustStoreError(
                f"weak_algorithms={weak_algorithms!r}: expected one of "
                f"{', '.join(WEAK_ALGORITHM_VERDICTS)}"
            )
        anchors, crls = list(anchors), list(crls)
        cert_files = _files(anchors, _CERT_SUFFIXES)
        crl_files = _files(crls, _CRL_SUFFIXES)
        roots: list[asn1_x509.Certificate] = []
        inter: list[asn1_x509.Certificate] = []
        for path in cert_files:
            for cert in _load_certs(path):
                (roots if _is_root(cert) else inter).append(cert)
        parsed_crls = [c for path in crl_files for c in _load_crls(path)]
        sources = tuple(cert_files + crl_files)
        return cls(
            roots=tuple(roots),
            intermediates=tuple(inter),
            crls=tuple(parsed_crls),
            revocation=revocation,
            weak_algorithms=weak_algorithms,
            sources=sources,
            _args=(tuple(anchors), tuple(crls)),
            _stamp=_stamp_of(sources),
        )

    @classmethod
    def empty(
        cls, revocation: str = "hard-fail", weak_algorithms: str = "indeterminate"
    ) -> TrustStore:
        """No anchors at all: every chain is ``untrusted`` (integrity is still checked)."""
        if weak_algorithms not in WEAK_ALGORITHM_VERDICTS:
            raise TrustStoreError(f"weak_algorithms={weak_algorithms!r}: unknown")
        return cls(roots=(), revocation=revocation, weak_algorithms=weak_algorithms)

    def changed(self) -> bool:
        """True when a source file was modified, added to a configured folder, or removed."""
        try:
            files = _files(self._args[0], _CERT_SUFFIXES) + _files(self._args[1], _CRL_SUFFIXES)
            return _stamp_of(files) != self._stamp
        except (OSError, TrustStoreError):
            return True

    def reloaded(self) -> TrustStore:
        """This store, or a freshly loaded one when its files changed (CRLs get replaced
        daily in production). A broken new file keeps the old store and raises."""
        if not self._args[0] and not self._args[1]:
            return self
        if not self.changed():
            return self
        return TrustStore.load(self._args[0], self._args[1], self.revocation, self.weak_algorithms)

    @cached_property
    def _trust_manager(self) -> SimpleTrustManager:
        """The anchors indexed once per store, not once per signature (read-only after
        it is built, so every context of this store shares it)."""
        return SimpleTrustManager.build(trust_roots=list(self.roots))

    @cached_property
    def chain_memo(self) -> ChainMemo:
        """The valid chains under this store (signing/chainmemo.py); a reloaded store is a
        new object and starts with an empty memo."""
        return ChainMemo([*self.roots, *self.intermediates], self.crls, TIME_TOLERANCE)

    def context(
        self,
        moment: datetime,
        *,
        extra_certs: Iterable[asn1_x509.Certificate] = (),
        check_revocation: bool = True,
    ) -> ValidationContext:
        """A validation context at *moment* that never fetches anything.

        Revocation info is required for every certificate below the anchor (``hard-fail``
        in certvalidator's legacy sense only checks certificates that declare a CRL
        distribution point, which is not what DESIGN §5 means). ``retroactive_revinfo``
        lets a CRL issued after the signing time speak for that time."""
        policy = CertRevTrustPolicy(
            REQUIRE_REVINFO if check_revocation else NO_REVOCATION, retroactive_revinfo=True
        )
        return ValidationContext(
            trust_manager=self._trust_manager,
            other_certs=[*self.intermediates, *extra_certs],
            crls=list(self.crls),
            moment=moment,
            allow_fetching=False,
            revinfo_policy=policy,
            time_tolerance=TIME_TOLERANCE,
        )


def _stamp_of(paths: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for path in paths:
        st = path.stat()
        out.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(out)
