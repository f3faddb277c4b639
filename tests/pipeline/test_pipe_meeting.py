"""A Giấy mời through the pipeline: its meeting, signer and parent issuer are stored and shown."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from config import Settings
from gateway.cli import main as cli
from store.db import Database
from store.models import Document
from tests.pipeline.pipe_support import make_mail, submit, wait_for
from tests.support.layouts import generate, make_fpdf

PDF = "application/pdf"


@pytest.fixture
def config_file(tmp_path: Path, settings: Settings) -> Path:
    p = tmp_path / "edocgw.toml"
    p.write_text(
        f'[gateway]\ndata_dir = "{tmp_path / "var"}"\n'
        f'[database]\nurl = "{settings.database.url}"\n'
        '[logging]\nformat = "text"\nlevel = "WARNING"\n',
        encoding="utf-8",
    )
    return p


async def test_meeting_and_signer_are_stored_and_shown(
    pipeline_factory: Any,
    db: Database,
    agencies: None,
    config_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    doc = next(d for d in generate(48) if d.meeting_start and d.organ.parent and d.competence)
    raw = make_mail("Giấy mời họp", [("giay-moi.pdf", make_fpdf(doc), PDF)])
    async with pipeline_factory():
        mid = await submit(db, raw)
        msg = (await wait_for(db, [mid], {"processed", "held", "failed"}))[mid]
    assert msg.state in ("processed", "held"), msg.error
    async with db.sessions() as s:
        (row,) = (await s.scalars(select(Document).where(Document.message_id == mid))).all()
    assert row.kind == "Giấy mời"
    assert row.meeting_start == doc.meeting_start and row.meeting_place == doc.meeting_place
    assert (row.issuer, row.parent_issuer) == (doc.organ.issuer, doc.organ.parent)
    assert (row.signer, row.signer_position, row.signer_competence) == (
        doc.name,
        doc.position,
        doc.competence,
    )

    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, ["show", str(mid), "--config", str(config_file)])
    out = capsys.readouterr().out
    assert code == 0
    assert doc.meeting_place in out and doc.meeting_start.isoformat() in out
    assert f"{doc.competence}, {doc.position}, {doc.name}" in out
    code = await asyncio.to_thread(
        cli.main, ["show", str(mid), "--json", "--config", str(config_file)]
    )
    facts = json.loads(capsys.readouterr().out)["documents"][0]["facts"]
    assert facts["meeting_place"] == doc.meeting_place
    assert facts["meeting_start"] == doc.meeting_start.isoformat()
    assert facts["parent_issuer"] == doc.organ.parent
