"""Issue 15: an agency's `format` (mime | edxml): the optional 8th CSV column and
`edocgw agency add --format`, run as real subprocesses against the test database."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import edocgw, write_config

MIXED_CSV = """code,name,aliases,domains,address,route,tls,format
000.00.00.G22,Văn phòng Chính phủ,VPCP,chinhphu.vn,vanthu@chinhphu.vn,mx,verify,edxml
000.00.00.H53,UBND tỉnh Tây Ninh,,tayninh.gov.vn,vanthu@tayninh.gov.vn,mx,verify,MIME
000.00.00.H36,UBND tỉnh Lâm Đồng,,lamdong.gov.vn,vanthu@lamdong.gov.vn,mx,verify,
000.00.00.H17,UBND tỉnh Ninh Bình,,ninhbinh.gov.vn,vanthu@ninhbinh.gov.vn,mx,verify
000.00.00.H01,UBND thành phố Hà Nội,,hanoi.gov.vn,vanthu@hanoi.gov.vn
"""


@pytest.fixture
def cfg(tmp_path, db_url):
    return str(write_config(tmp_path / "edocgw.toml", db_url, tmp_path / "var"))


def _formats(cfg: str) -> dict[str, str]:
    r = edocgw("--config", cfg, "agency", "list", "--json")
    assert r.code == 0, r.err
    return {a["code"]: a["format"] for a in json.loads(r.out)["agencies"]}


def test_csv_with_and_without_the_format_column(cfg, tmp_path):
    f = tmp_path / "agencies.csv"
    f.write_text(MIXED_CSV, encoding="utf-8")
    r = edocgw("agency", "import", str(f), "--config", cfg)
    assert r.code == 0, r.err
    assert _formats(cfg) == {
        "000.00.00.G22": "edxml",
        "000.00.00.H53": "mime",  # case does not matter
        "000.00.00.H36": "mime",  # empty cell: the default
        "000.00.00.H17": "mime",  # a 7-column row
        "000.00.00.H01": "mime",  # a 5-column row
    }
    table = edocgw("agency", "list", "--config", cfg)
    assert "FORMAT" in table.out and "edxml" in table.out


def test_unknown_format_names_the_line_and_imports_nothing(cfg, tmp_path):
    f = tmp_path / "agencies.csv"
    f.write_text(
        "000.00.00.G22,VPCP,,,vanthu@chinhphu.vn,mx,verify,edxml\n"
        "000.00.00.H53,Tây Ninh,,,vanthu@tayninh.gov.vn,mx,verify,pdf\n",
        encoding="utf-8",
    )
    r = edocgw("agency", "import", str(f), "--config", cfg)
    assert r.code == 1
    assert "line 2" in r.err and "format" in r.err and "Traceback" not in r.err
    assert _formats(cfg) == {}


def test_agency_add_format(cfg):
    base = ["agency", "add", "000.00.00.H36", "UBND tỉnh Lâm Đồng"]
    base += ["--address", "vanthu@lamdong.gov.vn", "--config", cfg]
    assert edocgw(*base).code == 0
    assert _formats(cfg) == {"000.00.00.H36": "mime"}
    assert edocgw(*base, "--format", "edxml").code == 0
    assert _formats(cfg) == {"000.00.00.H36": "edxml"}
    r = edocgw(*base, "--format", "xml")
    assert r.code != 0 and "format" in r.err and "Traceback" not in r.err
    assert _formats(cfg) == {"000.00.00.H36": "edxml"}
