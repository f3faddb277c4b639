"""The first hour at a terminal (issue 16 items 8 and 11): read commands never create a
database, output cut short by `head` ends quietly, and logs read as lines on a terminal."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.cli import EDOCGW, clean_env, edocgw


@pytest.mark.parametrize(
    "command", [["log"], ["log", "--json"], ["show", "1"], ["queue"], ["retry", "1"]]
)
def test_read_commands_in_an_empty_folder_say_where_they_looked(
    tmp_path: Path, command: list[str]
) -> None:
    r = edocgw(*command, cwd=tmp_path)
    assert r.code == 1 and r.out == ""
    (line,) = r.err.splitlines()
    assert line.startswith("edocgw: no gateway data in ") and str(tmp_path / "var" / "pg") in line
    assert not (tmp_path / "var").exists(), "no embedded cluster was made"


def test_read_commands_on_a_database_without_the_schema_stop(tmp_path: Path, pg_server) -> None:
    import asyncio

    name = asyncio.run(pg_server.create_empty_database())
    try:
        env = clean_env(EDOCGW_DATABASE__URL=pg_server.url_for(name))
        r = edocgw("log", cwd=tmp_path, env=env)
        assert r.code == 1 and "holds no edocgw data yet" in r.err
        assert "Traceback" not in r.err
    finally:
        asyncio.run(pg_server.drop_database(name))


def test_output_cut_short_by_its_reader_ends_quietly(tmp_path: Path) -> None:
    """`edocgw check … --json | head -c 1`: more output than a pipe holds, reader gone."""
    files = []
    for i in range(300):
        f = tmp_path / f"cv-{i:03d}.txt"
        f.write_text(f"Công văn số {i}/UBND-VP về việc thử đường ống\n", encoding="utf-8")
        files.append(str(f))
    p = subprocess.Popen(
        [str(EDOCGW), "check", *files, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
    )
    assert p.stdout is not None and p.stderr is not None
    assert p.stdout.read(1) == b"{"
    p.stdout.close()  # the reader goes away, as `head` does
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0
    assert err == "", err


def test_serve_logs_readable_lines_on_a_terminal(open_tmp: Path) -> None:
    """`[logging] format = "auto"` (the default): text lines on a terminal, no JSON."""
    env = clean_env(
        EDOCGW_SMTP__RELAY_LISTEN="127.0.0.1:0",
        EDOCGW_SMTP__SUBMISSION_LISTEN="127.0.0.1:0",
        EDOCGW_ADMIN__LISTEN="127.0.0.1:0",
    )
    primary, secondary = pty.openpty()
    p = subprocess.Popen(
        [str(EDOCGW), "serve"],
        cwd=open_tmp,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    text = ""
    try:
        deadline = time.monotonic() + 180  # a hang detector, not a speed limit
        while "edocgw ready" not in text and time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 1.0)
            if ready:
                try:
                    text += os.read(primary, 65536).decode("utf-8", "replace")
                except OSError:
                    break
            assert p.poll() is None, text
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
        os.close(primary)
    assert "edocgw ready" in text, text
    lines = [x for x in text.splitlines() if x.strip()]
    assert not any(x.lstrip().startswith("{") for x in lines), lines[:5]
    assert any(" INFO " in x and "edocgw ready" in x for x in lines)


def test_the_command_line_does_not_import_prometheus_client() -> None:
    """`serve` must set up prometheus-client's multiprocess mode before its first import;
    if loading the command line imported it, worker processes' metrics would be lost."""
    import sys

    code = "import sys, gateway.cli.main; print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
