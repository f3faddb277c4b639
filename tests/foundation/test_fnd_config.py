"""Configuration: a bad value stops the program with one line naming key, value and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_settings
from config.example import render
from tests.support.cli import clean_env, edocgw

ROOT = Path(__file__).resolve().parents[2]

BAD_CONFIGS = [
    ("wrong type", '[smtp]\nmax_message_size = "big"\n', "smtp.max_message_size", "'big'"),
    ("unknown key", "[smtp]\nrelay_port = 25\n", "smtp.relay_port", "unknown key"),
    ("unknown section", '[smpt]\nrelay_listen = "127.0.0.1:25"\n', "smpt", "unknown key"),
    ("bad duration", '[delivery]\nmax_age = "5 days"\n', "delivery.max_age", "duration"),
    ("bad listen", '[smtp]\nrelay_listen = "localhost"\n', "smtp.relay_listen", "host:port"),
    ("bad port", '[admin]\nlisten = "127.0.0.1:99999"\n', "admin.listen", "host:port"),
    ("bad CIDR", '[smtp]\nrelay_networks = ["10.0.0.0/33"]\n', "smtp.relay_networks", "CIDR"),
    ("bad choice", '[trust]\nrevocation = "maybe"\n', "trust.revocation", "hard-fail"),
    ("bad dns", '[delivery]\ndns_servers = ["dns.example"]\n', "delivery.dns_servers", "IP:port"),
    ("bad nice", "[gateway]\nworker_nice = 25\n", "gateway.worker_nice", "19"),
    ("bad toml", "[smtp\n", "not valid TOML", "line 1"),
]


@pytest.mark.parametrize(
    ("case", "toml", "key", "expect"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS]
)
def test_bad_config_gives_one_line_and_exit_2(tmp_path, case, toml, key, expect):
    cfg = tmp_path / "edocgw.toml"
    cfg.write_text(toml, encoding="utf-8")
    r = edocgw("--config", str(cfg), "db", "upgrade", cwd=tmp_path)
    assert r.code == 2, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert key in lines[0] and expect in lines[0], lines[0]
    assert "Traceback" not in r.err and r.out == ""


def test_bad_environment_value_names_the_variable(tmp_path):
    env = clean_env(EDOCGW_SMTP__SUBMISSION_LISTEN="nowhere")
    r = edocgw("user", "list", cwd=tmp_path, env=env)
    assert r.code == 2
    assert "smtp.submission_listen = 'nowhere' (from EDOCGW_SMTP__SUBMISSION_LISTEN)" in r.err


def test_missing_config_file_is_named(tmp_path):
    r = edocgw("--config", str(tmp_path / "nope.toml"), "user", "list", cwd=tmp_path)
    assert r.code == 2 and "nope.toml: not found" in r.err


def test_environment_overrides_file(tmp_path, monkeypatch):
    cfg = tmp_path / "edocgw.toml"
    cfg.write_text(
        '[smtp]\nrelay_listen = "127.0.0.1:2525"\nmax_message_size = 4096\n'
        '[delivery]\nretry_schedule = ["30s", "2h"]\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("EDOCGW_SMTP__RELAY_LISTEN", "0.0.0.0:25")
    monkeypatch.setenv("EDOCGW_TRUST__ANCHORS", '["/etc/edocgw/ca"]')
    s = load_settings(cfg)
    assert s.smtp.relay_listen == "0.0.0.0:25"
    assert s.smtp.max_message_size == 4096
    assert s.trust.anchors == ["/etc/edocgw/ca"]
    assert [d.total_seconds() for d in s.delivery.retry_schedule] == [30, 7200]


def test_config_path_from_environment(tmp_path, monkeypatch):
    cfg = tmp_path / "gw.toml"
    cfg.write_text('[gateway]\nhostname = "gw.tayninh.gov.vn"\n', encoding="utf-8")
    monkeypatch.setenv("EDOCGW_CONFIG", str(cfg))
    assert load_settings().gateway.hostname == "gw.tayninh.gov.vn"


def test_imap_account_needs_a_secret(tmp_path):
    cfg = tmp_path / "edocgw.toml"
    cfg.write_text('[[imap]]\nname = "a"\nhost = "h"\nuser = "u"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"imap\.0.*password"):
        load_settings(cfg, use_env=False)


def test_example_file_is_current_and_loads():
    example = ROOT / "edocgw.example.toml"
    assert example.read_text(encoding="utf-8") == render(), "run `make example`"
    s = load_settings(example, use_env=False)
    # every key of every section is documented in the example
    for name, section in s.model_dump().items():
        if isinstance(section, dict):
            for key in section:
                assert f"\n{key} = " in example.read_text(encoding="utf-8"), f"{name}.{key}"


def test_ocsp_is_refused_rather_than_silently_ignored(tmp_path):
    cfg = tmp_path / "edocgw.toml"
    cfg.write_text("[trust]\nocsp = true\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"trust\.ocsp = True: expected false: OCSP is not supported"
    ):
        load_settings(cfg, use_env=False)
