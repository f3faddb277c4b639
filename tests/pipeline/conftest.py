"""Fixtures for the pipeline tests: real PostgreSQL, real verifier processes, real documents."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from config import Settings
from store.agencies import upsert_agency
from store.db import Database
from tests.pipeline.pipe_support import AGENCIES, PROCESSING, running
from tests.support.pki import Pki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pipe-pki"))


@pytest.fixture
def pipe_settings(settings: Settings, pki: Pki) -> Settings:
    s = settings.model_copy(deep=True)
    s.gateway.processing_addresses = [PROCESSING]
    s.gateway.local_domains = ["gw.test.gov.vn"]
    s.gateway.verify_processes = 1
    s.gateway.parse_processes = 1
    s.gateway.pipeline_workers = 2
    s.trust.anchors = [str(p) for p in pki.anchors]
    s.trust.crls = [str(p) for p in pki.crls]
    return s


@pytest.fixture
async def agencies(db: Database) -> None:
    async with db.transaction() as s:
        for a in AGENCIES:
            await upsert_agency(s, a)


@pytest.fixture
def pipeline_factory(pipe_settings: Settings, db: Database) -> Callable[..., Any]:
    def factory(**kw: Any) -> Any:
        return running(pipe_settings, db, **kw)

    return factory
