"""A remembered chain gives exactly the answer a fresh validation gives, whatever the time.

The memo (signing/chainmemo.py) keys a valid chain by where the signing time falls among the
store's and the certificates' instants. These tests walk every signer of the test PKI across
those instants (each one, a second either side, an hour either side), in a shuffled order,
and compare the store that remembers with a fresh copy of it that has never seen a chain.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding

from signing import TrustStore
from signing import chain as chain_module
from signing.chain import check_chain
from tests.support.pki import Pki

SIGNERS = ("person", "agency", "revoked", "revoked_later", "expired", "not_yet_valid")
SHIFTS = [dt.timedelta(seconds=s) for s in (0, -1, 1, -2, 2, -3600, 3600)]


def _asn1(cert) -> asn1_x509.Certificate:  # noqa: ANN001
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def _instants(pki: Pki, store: TrustStore) -> list[dt.datetime]:
    """Every instant the answer may change at, shifted either side."""
    base = [dt.datetime.now(dt.UTC)]
    for name in SIGNERS:
        cert = pki.signer(name).cert
        base += [cert.not_valid_before_utc, cert.not_valid_after_utc]
    for crl in store.crls:
        tbs = crl["tbs_cert_list"]
        base += [tbs["this_update"].native, tbs["next_update"].native]
        base += [e["revocation_date"].native for e in tbs["revoked_certificates"]]
    return sorted({t + s for t in base for s in SHIFTS})


@pytest.mark.parametrize(
    "crls,revocation,verdicts",
    [
        ("fresh", "hard-fail", {"valid", "revoked", "expired", "indeterminate"}),
        # a CRL past its nextUpdate: revocation unknown, accepted in soft-fail mode
        ("stale", "soft-fail", {"valid", "expired"}),
    ],
)
def test_remembered_answer_is_the_fresh_answer_at_every_instant(
    pki: Pki, crls: str, revocation: str, verdicts: set[str]
) -> None:
    store = TrustStore.load(
        pki.anchors, pki.crls if crls == "fresh" else pki.stale_crls, revocation
    )
    inter = _asn1(pki.intermediate_cert)
    cases = [(name, t) for name in SIGNERS for t in _instants(pki, store)]
    random.Random(17).shuffle(cases)
    seen = set()
    for name, moment in cases:
        cert = _asn1(pki.signer(name).cert)
        remembered = check_chain(cert, [inter], store, moment)
        fresh = check_chain(cert, [inter], dataclasses.replace(store), moment)
        assert remembered == fresh, (name, moment)
        seen.add(remembered.verdict)
    assert seen == verdicts  # the walk crossed every kind of boundary
    assert store.chain_memo._valid, "valid chains were remembered"


def test_a_second_document_from_the_same_signer_is_not_validated_again(
    pki: Pki, trust: TrustStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = dataclasses.replace(trust)
    calls = []
    validate = chain_module._validate

    def counting(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(args[3])
        return validate(*args, **kwargs)

    monkeypatch.setattr(chain_module, "_validate", counting)
    cert, inter = _asn1(pki.signer("person").cert), _asn1(pki.intermediate_cert)
    now = dt.datetime.now(dt.UTC)
    first = check_chain(cert, [inter], store, now - dt.timedelta(minutes=5))
    second = check_chain(cert, [inter], store, now - dt.timedelta(minutes=3))
    assert (first.verdict, second.verdict) == ("valid", "valid")
    assert len(calls) == 1
    assert second.detail.endswith(f"valid at {now - dt.timedelta(minutes=3):%Y-%m-%d %H:%M} UTC")

    # a revoked signer is validated every time, and stays revoked
    revoked = _asn1(pki.signer("revoked").cert)
    for _ in range(2):
        assert check_chain(revoked, [inter], store, now).verdict == "revoked"
    assert len(calls) == 3


def test_a_reloaded_store_starts_with_an_empty_memo(pki: Pki, trust: TrustStore) -> None:
    store = dataclasses.replace(trust)
    cert, inter = _asn1(pki.signer("person").cert), _asn1(pki.intermediate_cert)
    check_chain(cert, [inter], store, dt.datetime.now(dt.UTC))
    assert store.chain_memo._valid
    assert not TrustStore.load(pki.anchors, pki.crls).chain_memo._valid
