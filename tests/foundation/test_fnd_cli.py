"""The operator's commands, run as real subprocesses against the test database."""

from __future__ import annotations

import json

import pytest

from store.users import authenticate
from tests.support.cli import edocgw, write_config

GOOD_CSV = """code,name,aliases,domains,address,route,tls
000.00.00.G22,Văn phòng Chính phủ,VPCP;Văn phòng CP,chinhphu.vn,vanthu@chinhphu.vn,mx,verify
000.00.00.H53,Ủy ban nhân dân tỉnh Tây Ninh,UBND tỉnh Tây Ninh,tayninh.gov.vn,vanthu@tayninh.gov.vn,smtp://10.1.2.3:25,encrypt
28.22.H17,Sở Nội vụ (mã cũ),,,snv@example.gov.vn,,
"""

BAD_CSV = """code,name,aliases,domains,address,route,tls
000.00.00.G22,Văn phòng Chính phủ,,chinhphu.vn,vanthu@chinhphu.vn,mx,verify
000.00.00.H53,Ủy ban nhân dân tỉnh Tây Ninh,,tayninh.gov.vn,vanthu@tayninh.gov.vn,mx,verify
00.00.H5,Mã sai,,,sai@example.gov.vn,mx,verify
"""


@pytest.fixture
def cfg(tmp_path, db_url):
    return str(write_config(tmp_path / "edocgw.toml", db_url, tmp_path / "var"))


def _agencies(cfg: str) -> list[dict]:
    r = edocgw("--config", cfg, "agency", "list", "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)["agencies"]  # exactly one JSON document on stdout


def test_agency_import_good_csv(cfg, tmp_path):
    f = tmp_path / "agencies.csv"
    f.write_text(GOOD_CSV, encoding="utf-8")
    r = edocgw("agency", "import", str(f), "--config", cfg)
    assert r.code == 0, r.err
    assert "3 agencies imported" in r.out
    by_code = {a["code"]: a for a in _agencies(cfg)}
    assert set(by_code) == {"000.00.00.G22", "000.00.00.H53", "28.22.H17"}
    tn = by_code["000.00.00.H53"]
    assert tn["name"] == "Ủy ban nhân dân tỉnh Tây Ninh"
    assert tn["aliases"] == ["UBND tỉnh Tây Ninh"] and tn["domains"] == ["tayninh.gov.vn"]
    assert tn["route"] == "smtp://10.1.2.3:25" and tn["tls"] == "encrypt"
    assert by_code["28.22.H17"]["route"] == "mx" and by_code["28.22.H17"]["tls"] == "verify"
    # importing again updates rather than duplicates
    assert edocgw("agency", "import", str(f), "--config", cfg).code == 0
    assert len(_agencies(cfg)) == 3


def test_agency_import_with_one_bad_code_imports_nothing(cfg, tmp_path):
    f = tmp_path / "agencies.csv"
    f.write_text(BAD_CSV, encoding="utf-8")
    r = edocgw("agency", "import", str(f), "--config", cfg)
    assert r.code == 1
    assert "line 4" in r.err and "00.00.H5" in r.err and "Traceback" not in r.err
    assert _agencies(cfg) == []


def test_agency_add_validates_route(cfg):
    r = edocgw(
        "agency",
        "add",
        "000.00.00.H53",
        "UBND tỉnh Tây Ninh",
        "--address",
        "vanthu@tayninh.gov.vn",
        "--route",
        "http://x",
        "--config",
        cfg,
    )
    assert r.code == 1 and "route" in r.err
    r = edocgw(
        "agency",
        "add",
        "000.00.00.H53",
        "UBND tỉnh Tây Ninh",
        "--address",
        "vanthu@tayninh.gov.vn",
        "--domain",
        "TayNinh.gov.vn.",
        "--config",
        cfg,
    )
    assert r.code == 0, r.err
    assert _agencies(cfg)[0]["domains"] == ["tayninh.gov.vn"]


async def test_user_add_check_disable(cfg, tmp_path, db):
    pw = tmp_path / "pw"
    pw.write_text("mật-khẩu-đủ-dài\n", encoding="utf-8")
    r = edocgw(
        "user", "add", "vanthu", "--role", "submit", "--password-file", str(pw), "--config", cfg
    )
    assert r.code == 0, r.err
    r = edocgw(
        "user", "add", "vanthu", "--role", "admin", "--password-file", str(pw), "--config", cfg
    )
    assert r.code == 1 and "already exists" in r.err
    async with db.transaction() as s:
        assert await authenticate(s, "vanthu", "mật-khẩu-đủ-dài", "submit") is not None
        assert await authenticate(s, "vanthu", "wrong-password", "submit") is None
        assert await authenticate(s, "vanthu", "mật-khẩu-đủ-dài", "admin") is None  # role not held
    r = edocgw("user", "disable", "vanthu", "--config", cfg)
    assert r.code == 0, r.err
    async with db.transaction() as s:
        assert await authenticate(s, "vanthu", "mật-khẩu-đủ-dài", "submit") is None
    listed = json.loads(edocgw("user", "list", "--json", "--config", cfg).out)
    assert listed == {"users": [{"name": "vanthu", "roles": ["submit"], "active": False}]}
    stored = await db.engine.connect()
    try:
        from sqlalchemy import text

        h = (await stored.execute(text("SELECT password_hash FROM users"))).scalar_one()
    finally:
        await stored.close()
    assert h.startswith("scrypt$") and "mật" not in h


def test_user_add_without_terminal_or_file_is_refused(cfg):
    r = edocgw("user", "add", "x", "--role", "submit", "--config", cfg, stdin="")
    assert r.code == 1 and "--password-file" in r.err


def test_db_upgrade_is_idempotent(cfg):
    r = edocgw("db", "upgrade", "--config", cfg)
    assert r.code == 0 and "up to date" in r.out
