"""Valid chains remembered per trust store, so an agency's signer is not re-validated for
every document it signs.

Path building, CRL scope and signature checks cost half of verifying a signed PDF, and
their answer for one certificate depends only on the trust store (fixed for this memo's
life: a reloaded store gets a new memo), the certificates the signature carries, and where
the validation time falls among the instants at which pyhanko-certvalidator compares it:
each certificate's notBefore/notAfter, each CRL's thisUpdate/nextUpdate (or its 30-minute
fallback), each revocation date, all with the context's time tolerance either side. Two
times that no such instant separates get the same answer, so the memo's key is the
certificate, the carried certificates, whether revocation is checked, and the *bucket* of
the time among those instants (which side of each; equal to one is a bucket of its own).
The current time is bucketed too, for anything that reads the clock.

Only successes are remembered: every failure is validated again and reported in full.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator.policy_decl import FRESHNESS_FALLBACK_VALIDITY_DEFAULT

from signing._memo import Memo

MAX_ENTRIES = 4096  # an agency signs with a few certificates
Key = tuple[object, ...]


def _cert_instants(cert: asn1_x509.Certificate) -> list[datetime]:
    validity = cert["tbs_certificate"]["validity"]
    return [validity["not_before"].native, validity["not_after"].native]


def _crl_instants(crl: asn1_crl.CertificateList) -> list[datetime]:
    tbs = crl["tbs_cert_list"]
    this_update = tbs["this_update"].native
    next_update = tbs["next_update"].native
    out = [this_update, next_update or this_update + FRESHNESS_FALLBACK_VALIDITY_DEFAULT]
    out += [entry["revocation_date"].native for entry in tbs["revoked_certificates"]]
    return out


def _spread(instants: Iterable[datetime | None], tolerance: timedelta) -> list[datetime]:
    """Each instant, and the instant ± the tolerance (where a comparison allows for drift)."""
    out: set[datetime] = set()
    for t in instants:
        if t is not None:
            out.update((t - tolerance, t, t + tolerance))
    return sorted(out)


def _bucket(instants: Sequence[datetime], moment: datetime) -> tuple[int, int]:
    return bisect.bisect_left(instants, moment), bisect.bisect_right(instants, moment)


class ChainMemo:
    """The valid chains of one trust store: key → the trust anchor's name."""

    def __init__(
        self,
        certs: Iterable[asn1_x509.Certificate],
        crls: Iterable[asn1_crl.CertificateList],
        tolerance: timedelta,
    ) -> None:
        self.tolerance = tolerance
        self._valid: Memo[Key, str] = Memo(MAX_ENTRIES)
        self._store: list[datetime] | None
        try:
            store = [t for c in certs for t in _cert_instants(c)]
            store += [t for c in crls for t in _crl_instants(c)]
            self._store = _spread(store, tolerance)
        except Exception:  # a time that does not read: validate every chain in full
            self._store = None

    def key(
        self,
        cert: asn1_x509.Certificate,
        extra: Sequence[asn1_x509.Certificate],
        check_revocation: bool,
        moment: datetime,
        now: datetime | None = None,
    ) -> Key | None:
        """None when a certificate's times do not read (it is then validated, and reported,
        in full)."""
        if self._store is None:
            return None
        now = now or datetime.now(UTC)
        try:
            carried = _spread(
                (t for c in (cert, *extra) for t in _cert_instants(c)), self.tolerance
            )
            return (
                cert.dump(),
                tuple(c.dump() for c in extra),
                check_revocation,
                _bucket(self._store, moment),
                _bucket(carried, moment),
                _bucket(self._store, now),
                _bucket(carried, now),
            )
        except Exception:  # e.g. a time without a zone, which does not compare
            return None

    def get(self, key: Key | None) -> str | None:
        return self._valid.get(key) if key is not None else None

    def put(self, key: Key | None, anchor: str) -> None:
        if key is not None:
            self._valid.put(key, anchor)
