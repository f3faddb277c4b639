"""Scans through the pipeline (real Tesseract), and documents whose text cannot be read:
nothing unread passes as unmarked (`[policy] unreadable`)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pypdf
import pytest
from sqlalchemy import select

from config import Settings
from gateway.admin.server import AdminServer
from gateway.cli import main as cli
from gateway.pipeline.analyse import analyse_content
from mailparse import Limits
from store import users
from store.db import Database
from store.models import Document
from tests.pipeline.pipe_support import (
    deliveries_of,
    events_of,
    make_mail,
    running,
    submit,
    wait_for,
)
from tests.support.corpus import by_key, make_pdf, pdf_bytes
from tests.support.scans import STYLES, scan_image, scan_pdf

PDF = "application/pdf"
FINAL = {"processed", "held", "quarantined", "failed"}


async def _documents(db: Database, message_id: int) -> list[Document]:
    async with db.sessions() as s:
        q = select(Document).where(Document.message_id == message_id).order_by(Document.id)
        return list((await s.scalars(q)).all())


def _encrypted(pdf: bytes) -> bytes:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    writer = pypdf.PdfWriter()
    for page in reader.pages:
        writer.add_page(page)
    writer.encrypt(user_password="bí-mật", owner_password="chủ", algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


@pytest.mark.parametrize("parse_processes", [0, 1])
async def test_a_scanned_secret_document_is_quarantined(
    pipe_settings: Settings, db: Database, agencies: None, parse_processes: int
) -> None:
    """The secrecy mark is read by OCR, in threads or in the parse processes alike."""
    pipe_settings.gateway.parse_processes = parse_processes
    doc = dataclasses.replace(by_key("cv-bnv"), secrecy="Mật")
    scan = scan_pdf(make_pdf(doc), STYLES[2], seed=3)
    raw = make_mail("[000.00.00.G12] Văn bản đến", [("scan.pdf", scan, PDF)])
    async with running(pipe_settings, db):
        mid = await submit(db, raw)
        msg = (await wait_for(db, [mid], FINAL, within=120))[mid]
    assert msg.state == "quarantined", msg.error
    assert await deliveries_of(db, mid) == []
    (stored,) = await _documents(db, mid)
    assert stored.secrecy == "Mật" and stored.sources["secrecy"] == "ocr"
    assert stored.number == "05" and stored.sources["number"] == "ocr"
    assert 0 < stored.confidence["secrecy"] <= 1
    assert stored.unreadable is None
    q = next(e for e in await events_of(db, mid) if e.kind == "quarantined")
    assert q.detail["reasons"] == ["secrecy:Mật:scan.pdf"]


async def test_a_scanned_image_attachment_is_read_and_routed(
    pipe_settings: Settings, db: Database, agencies: None
) -> None:
    jpeg = scan_image(pdf_bytes("cv-bnv"), "JPEG", STYLES[1], seed=1)
    raw = make_mail("[000.00.00.G12] Văn bản đến", [("cv.jpg", jpeg, "image/jpeg")])
    async with running(pipe_settings, db):
        mid = await submit(db, raw)
        msg = (await wait_for(db, [mid], FINAL, within=120))[mid]
    assert msg.state == "processed", msg.error
    (stored,) = await _documents(db, mid)
    assert (stored.kind, stored.number, stored.notation) == ("Công văn", "05", "BNV-VP")
    assert stored.sources["notation"] == "ocr" and stored.verdict == "unsigned"


@pytest.mark.parametrize(
    ("configured", "state"),
    [("hold", "held"), ("quarantine", "quarantined"), ("forward", "processed")],
)
async def test_an_encrypted_pdf_follows_the_unreadable_policy(
    pipe_settings: Settings, db: Database, agencies: None, configured: str, state: str
) -> None:
    pipe_settings.policy.unreadable = configured  # type: ignore[assignment]
    raw = make_mail(
        "[000.00.00.G12] Văn bản đến", [("khoa.pdf", _encrypted(pdf_bytes("cv-bnv")), PDF)]
    )
    async with running(pipe_settings, db):
        mid = await submit(db, raw)
        msg = (await wait_for(db, [mid], FINAL, within=60))[mid]
    assert msg.state == state, msg.error
    (stored,) = await _documents(db, mid)
    assert (stored.verdict, stored.unreadable) == ("unreadable", "encrypted")
    assert "unreadable:encrypted" in stored.flags
    events = await events_of(db, mid)
    if configured == "forward":
        assert [d.state for d in await deliveries_of(db, mid)] == ["queued"]
    else:
        kind = "held" if configured == "hold" else "quarantined"
        e = next(e for e in events if e.kind == kind)
        assert e.detail["reasons"] == ["unreadable:encrypted:khoa.pdf"]
        assert "không đọc được" in e.detail["reason"]


async def test_ocr_past_its_deadline_holds_the_message(
    pipe_settings: Settings, db: Database, agencies: None
) -> None:
    scan = scan_pdf(pdf_bytes("qd-ubnd"), STYLES[1])
    analyser: Any = functools.partial(analyse_content, limits=Limits(ocr_seconds=0.2))
    raw = make_mail("[000.00.00.G12] Văn bản đến", [("scan.pdf", scan, PDF)])
    async with running(pipe_settings, db, analyser=analyser):
        mid = await submit(db, raw)
        msg = (await wait_for(db, [mid], FINAL, within=60))[mid]
    assert msg.state == "held", msg.error
    (stored,) = await _documents(db, mid)
    assert (stored.verdict, stored.unreadable) == ("unreadable", "ocr_timeout")
    held = next(e for e in await events_of(db, mid) if e.kind == "held")
    assert held.detail["reasons"] == ["unreadable:ocr_timeout:scan.pdf"]


async def test_admins_see_why_a_document_was_not_read(
    pipe_settings: Settings,
    db: Database,
    agencies: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`edocgw log`, `edocgw show`, the API and the web detail page all say `encrypted`."""
    raw = make_mail(
        "[000.00.00.G12] Văn bản đến", [("khoa.pdf", _encrypted(pdf_bytes("cv-bnv")), PDF)]
    )
    async with running(pipe_settings, db):
        mid = await submit(db, raw)
        assert (await wait_for(db, [mid], FINAL, within=60))[mid].state == "held"

    config = tmp_path / "edocgw.toml"
    config.write_text(
        f'[gateway]\ndata_dir = "{tmp_path / "var"}"\n'
        f'[database]\nurl = "{pipe_settings.database.url}"\n'
        '[logging]\nformat = "text"\nlevel = "WARNING"\n',
        encoding="utf-8",
    )

    async def cli_out(*args: str) -> str:
        capsys.readouterr()
        code = await asyncio.to_thread(cli.main, [*args, "--config", str(config)])
        out = capsys.readouterr().out
        assert code == 0, out
        return out

    shown = json.loads(await cli_out("show", str(mid), "--json"))
    (d,) = shown["documents"]
    assert (d["verdict"], d["unreadable"]) == ("unreadable", "encrypted")
    assert "Unreadable:   encrypted" in await cli_out("show", str(mid))
    assert "khoa.pdf (encrypted)" in await cli_out("log")
    logged = json.loads(await cli_out("log", "--json"))
    (entry,) = [m for m in logged["messages"] if m["id"] == mid]
    assert [d["verdict"] for d in entry["documents"]] == ["unreadable"]

    async with db.transaction() as s:
        await users.add_user(s, "quantri", "mật-khẩu-dài-123", ["admin"])
        token = await users.new_token(s, "quantri")
    srv = AdminServer(pipe_settings, db)
    await srv.start()
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=10) as client:
            h = {"Authorization": f"Bearer {token}"}
            api = (await client.get(f"/api/messages/{mid}", headers=h)).json()
            assert api["documents"][0]["unreadable"] == "encrypted"
            assert api["documents"][0]["verdict"] == "unreadable"
            page = await client.get(f"/messages/{mid}", headers=h)
            assert page.status_code == 200
            assert "Unreadable" in page.text and "encrypted" in page.text
    finally:
        await srv.stop()


def test_policy_weighs_unread_documents_with_the_rest() -> None:
    from config.settings import PolicySettings
    from gateway.pipeline.policy import DocumentCheck, decide

    locked = DocumentCheck("khoa.pdf", "pdf", "unsigned", unreadable="encrypted")
    secret = DocumentCheck("scan.pdf", "pdf", "unsigned", secrecy="Mật", kind="Công văn")
    valid = DocumentCheck("cv.pdf", "pdf", "valid", kind="Công văn")
    assert decide([locked, valid], PolicySettings()).reasons == ["unreadable:encrypted:khoa.pdf"]
    assert decide([locked], PolicySettings()).action == "hold"  # the default
    assert decide([locked], PolicySettings(unreadable="quarantine")).action == "quarantine"
    assert decide([locked], PolicySettings(unreadable="forward")).action == "forward"
    # A mark read from a scan quarantines whatever `unreadable` says.
    assert decide([secret, locked], PolicySettings(unreadable="forward")).action == "quarantine"
    # The strictest wins: unsigned held beats unreadable forwarded.
    both = decide([locked], PolicySettings(unreadable="forward", unsigned="hold"))
    assert (both.action, both.reasons) == ("hold", ["unsigned:khoa.pdf"])


def test_a_bad_unreadable_setting_is_one_line_naming_the_key(tmp_path: Path) -> None:
    from config.loader import ConfigError, load_settings

    path = tmp_path / "edocgw.toml"
    path.write_text('[policy]\nunreadable = "drop"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(str(path))
    assert "policy.unreadable" in str(err.value) and "\n" not in str(err.value)
