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


def _stop(p: subprocess.Popen[str]) -> float:
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)
    return time.monotonic() - t0


def test_serve_without_config_uses_embedded_postgres_and_reuses_it(tmp_path):
    p = _start(tmp_path)
    try:
        lines = _wait_ready(p)
    finally:
        if p.poll() is None:
            took = _stop(p)
    msgs = " | ".join(r["msg"] for r in lines)
    pgdata = (tmp_path / "var" / "pg").resolve()
    assert "no config file" in lines[0]["msg"] and "vanban@localhost" in lines[0]["msg"]
    assert f"embedded PostgreSQL, data in {pgdata}" in msgs
    # a fresh database gets every migration, the initial schema first
    assert any(str(r.get("schema_upgrades", "")).startswith("0001") for r in lines)
    assert took < 5 and p.returncode == 0
    assert (pgdata / "PG_VERSION").exists()
    assert not (pgdata / "postmaster.pid").exists()  # the server was stopped with the gateway

    p = _start(tmp_path)  # a second start reuses the data: nothing left to migrate
    try:
        lines = _wait_ready(p)
    finally:
        if p.poll() is None:
            took = _stop(p)
    assert any(r.get("schema_upgrades") == "none" for r in lines)
    assert took < 5 and p.returncode == 0


def test_serve_survives_a_killed_predecessor(tmp_path):
    """After SIGKILL the embedded server is still running; the next start adopts it."""
    p = _start(tmp_path)
    try:
        _wait_ready(p)
    finally:
        p.kill()
        p.wait(timeout=10)
    p = _start(tmp_path)
    try:
        lines = _wait_ready(p)
    finally:
        if p.poll() is None:
            took = _stop(p)
    assert any(r.get("schema_upgrades") == "none" for r in lines)
    assert took < 5 and p.returncode == 0
    assert os.path.exists(tmp_path / "var" / "pg" / "PG_VERSION")
    # the adopted server is stopped with the gateway like one it started itself
    assert not (tmp_path / "var" / "pg" / "postmaster.pid").exists()
