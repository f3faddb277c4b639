"""`edocgw serve` with no config file: embedded PostgreSQL, clean stop, data reused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.support.cli import EDOCGW, clean_env


def _start(cwd: Path) -> subprocess.Popen[str]:
    # No config file; the listeners are moved to OS-picked ports only so that tests running
    # side by side cannot collide on the default ports.
    env = clean_env(
        EDOCGW_SMTP__RELAY_LISTEN="127.0.0.1:0",
        EDOCGW_SMTP__SUBMISSION_LISTEN="127.0.0.1:0",
        EDOCGW_ADMIN__LISTEN="127.0.0.1:0",
    )
    return subprocess.Popen(
        [str(EDOCGW), "serve"],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_ready(p: subprocess.Popen[str], timeout: float = 60) -> list[dict]:
    lines: list[dict] = []
    deadline = time.monotonic() + timeout
    assert p.stderr is not None
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if not line:
            raise AssertionError(f"serve exited early: {p.poll()} {lines}")
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            rec = {"msg": "NOT JSON: " + line}
        assert "Traceback" not in line, line
        lines.append(rec)
        if rec["msg"] == "edocgw ready":
            return lines
    raise AssertionError(f"serve not ready in {timeout}s: {lines}")


def _stop(p: subprocess.Popen[str]) -> list[str]:
    """SIGTERM, then what serve logged while stopping. A clean stop exits 0 and logs no
    warning (a component that hung would be cut off at its stop timeout with a warning); the
    generous wait only catches a hang, it is not a speed limit."""
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    bad = ('"level": "warning"', '"level": "error"', '"level": "critical"', "Traceback")
    return [line for line in err.splitlines() if any(b in line for b in bad)]


def test_serve_without_config_uses_embedded_postgres_and_reuses_it(open_tmp):
    p = _start(open_tmp)
    try:
        lines = _wait_ready(p)
    finally:
        if p.poll() is None:
            problems = _stop(p)
    msgs = " | ".join(r["msg"] for r in lines)
    # uvicorn hands every message over a second time with ANSI colours: never in JSON logs
    assert not any("color_message" in r or "\x1b" in r["msg"] for r in lines)
    pgdata = (open_tmp / "var" / "pg").resolve()
    assert "no config file" in lines[0]["msg"] and "vanban@localhost" in lines[0]["msg"]
    assert f"embedded PostgreSQL, data in {pgdata}" in msgs
    # every revision from the first, whatever later ones the branches add
    assert any(str(r.get("schema_upgrades", "")).startswith("0001") for r in lines)
    assert problems == [] and p.returncode == 0
    assert (pgdata / "PG_VERSION").exists()
    assert not (pgdata / "postmaster.pid").exists()  # the server was stopped with the gateway

    p = _start(open_tmp)  # a second start reuses the data: nothing left to migrate
    try:
        lines = _wait_ready(p)
    finally:
        if p.poll() is None:
            problems = _stop(p)
    assert any(r.get("schema_upgrades") == "none" for r in lines)
    assert problems == [] and p.returncode == 0


def test_serve_survives_a_killed_predecessor(open_tmp):
    """After SIGKILL the embedded server is still running; the next start adopts it."""
    p = _start(open_tmp)
    try:
        _wait_ready(p)
    finally:
        p.kill()
        p.wait(timeout=10)
    p = _start(open_tmp)
    try:
        lines = _wait_ready(p)
    finally:
        if p.poll() is None:
            problems = _stop(p)
    assert any(r.get("schema_upgrades") == "none" for r in lines)
    assert problems == [] and p.returncode == 0
    assert os.path.exists(open_tmp / "var" / "pg" / "PG_VERSION")
    # the adopted server is stopped with the gateway like one it started itself
    assert not (open_tmp / "var" / "pg" / "postmaster.pid").exists()


def _serve_once(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EDOCGW), "serve"],
        cwd=cwd,
        env=clean_env(**env),
        text=True,
        capture_output=True,
        timeout=120,  # a hang detector: these end at the first check
    )


def test_a_second_serve_is_refused_before_it_touches_anything(open_tmp):
    """Same folder, same port: one line naming the key, exit 2, before the metrics files of
    the running instance or its database are touched."""
    p = _start(open_tmp)
    try:
        lines = _wait_ready(p)
        relay = next(r["port"] for r in lines if r.get("listener") == "relay")
        # a counts file as a process writes them, of a process that is gone: a serve that
        # got as far as setting up metrics would have removed it
        stale = open_tmp / "var" / "metrics" / "counter_999999999.db"
        stale.write_bytes(b"counts of a process long gone")
        second = _serve_once(open_tmp, EDOCGW_SMTP__RELAY_LISTEN=f"127.0.0.1:{relay}")
        assert second.returncode == 2 and second.stdout == ""
        assert second.stderr.splitlines() == [
            f"edocgw: config error: smtp.relay_listen = 127.0.0.1:{relay}: address already in use"
        ]
        assert stale.exists(), "nothing was touched"
    finally:
        problems = _stop(p)
    assert problems == [] and p.returncode == 0


def test_metrics_files_of_running_processes_are_kept(tmp_path):
    from gateway.app import stale_metric_files

    live = tmp_path / f"counter_{os.getpid()}.db"
    gone = tmp_path / "gauge_livesum_999999999.db"
    odd = tmp_path / "histogram.db"
    for f in (live, gone, odd):
        f.write_bytes(b"")
    assert sorted(stale_metric_files(tmp_path)) == sorted([gone, odd])


def test_a_missing_trust_anchor_stops_start_up_at_once(open_tmp):
    r = _serve_once(
        open_tmp,
        EDOCGW_SMTP__RELAY_LISTEN="127.0.0.1:0",
        EDOCGW_SMTP__SUBMISSION_LISTEN="127.0.0.1:0",
        EDOCGW_ADMIN__LISTEN="127.0.0.1:0",
        EDOCGW_TRUST__ANCHORS='["/etc/edocgw/no-such-anchors"]',
    )
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "edocgw: config error: trust.anchors = /etc/edocgw/no-such-anchors: no such file or folder"
    ]
    assert not (open_tmp / "var" / "pg").exists(), "checked before PostgreSQL was started"
