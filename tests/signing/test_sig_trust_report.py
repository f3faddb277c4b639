"""Trust store loading and the report model."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime

import pytest

from signing import SignatureReport, TrustStore, TrustStoreError, aggregate


def test_aggregate_takes_the_worst():
    order = ["valid", "indeterminate", "untrusted", "expired", "revoked", "invalid", "malformed"]
    for i, worst in enumerate(order):
        assert aggregate(order[: i + 1]) == worst
        assert aggregate(reversed(order[: i + 1])) == worst
    assert aggregate([]) == "unsigned"
    with pytest.raises(ValueError):
        aggregate(["fine"])


def test_report_is_frozen_one_line_and_maps_etsi():
    rep = SignatureReport(format="pdf", verdict="untrusted", detail="line one\nline two")
    assert rep.detail == "line one line two"
    assert rep.etsi == "INDETERMINATE"
    with pytest.raises(AttributeError):
        rep.verdict = "valid"  # type: ignore[misc]
    with pytest.raises(ValueError):
        SignatureReport(format="pdf", verdict="fine")
    when = datetime(2024, 5, 22, 8, 0, tzinfo=UTC)
    data = SignatureReport(format="cms", verdict="expired", signing_time=when).to_dict()
    assert (data["signing_time"], data["etsi"]) == ("2024-05-22T08:00:00+00:00", "FAILED")


def test_load_from_folders_and_der(pki, tmp_path):
    anchors, crls = tmp_path / "anchors", tmp_path / "crls"
    anchors.mkdir()
    crls.mkdir()
    shutil.copy(pki.anchors[0], anchors / "root.pem")
    (anchors / "inter.pem").write_bytes(pki.signer("person").chain_pem)  # an intermediate
    for crl in pki.crls:
        shutil.copy(crl, crls / crl.name)
    store = TrustStore.load([anchors], [crls])
    assert (len(store.roots), len(store.intermediates), len(store.crls)) == (1, 1, 2)


def test_bad_file_is_named(pki, tmp_path):
    bad = tmp_path / "broken.pem"
    bad.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(TrustStoreError, match="broken.pem"):
        TrustStore.load([pki.anchors[0], bad])
    with pytest.raises(TrustStoreError, match="missing.crl"):
        TrustStore.load(pki.anchors, [tmp_path / "missing.crl"])
    with pytest.raises(TrustStoreError, match="revocation"):
        TrustStore.load(pki.anchors, revocation="maybe")


def test_reloaded_when_a_crl_changes(pki, tmp_path):
    crl = tmp_path / "inter.crl"
    shutil.copy(pki.stale_crls[1], crl)
    store = TrustStore.load(pki.anchors, [pki.crls[0], crl])
    assert store.reloaded() is store
    shutil.copy(pki.crls[1], crl)
    os.utime(crl, ns=(1, 1))  # a new mtime, whatever the clock resolution
    fresh = store.reloaded()
    assert fresh is not store
    assert fresh.crls[1].dump() != store.crls[1].dump()
