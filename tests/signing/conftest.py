"""Session-wide PKI and trust stores for the signing tests (built once: keys are slow)."""

from __future__ import annotations

import pytest

from signing import TrustStore
from tests.support.pki import Pki, make_pdf, make_pki, sign_pdf


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def trust(pki: Pki) -> TrustStore:
    """Hard-fail (the default) with fresh CRLs for root and intermediate."""
    return TrustStore.load(pki.anchors, pki.crls)


@pytest.fixture(scope="session")
def unsigned_pdf() -> bytes:
    return make_pdf("Công văn số 15/UBND-VP về việc kiểm thử chữ ký số", form_field=True)


@pytest.fixture(scope="session")
def person_pdf(pki: Pki, unsigned_pdf: bytes) -> bytes:
    return sign_pdf(unsigned_pdf, pki.signer("person"))
