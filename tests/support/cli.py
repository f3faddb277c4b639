"""Run the real `edocgw` command in a subprocess, as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

EDOCGW = Path(sys.executable).parent / "edocgw"


@dataclass
class Result:
    code: int
    out: str
    err: str


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without EDOCGW_* settings that would leak into the command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDOCGW_")}
    env.update(extra)
    return env


def edocgw(
    *args: str,
    cwd: Path | None = None,
    stdin: str | None = None,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> Result:
    p = subprocess.run(
        [str(EDOCGW), *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else clean_env(),
    )
    return Result(p.returncode, p.stdout, p.stderr)


def write_config(path: Path, db_url: str, data_dir: Path, extra: str = "") -> Path:
    path.write_text(
        f'[gateway]\ndata_dir = "{data_dir}"\n[database]\nurl = "{db_url}"\n'
        '[logging]\nformat = "text"\nlevel = "WARNING"\n' + extra,
        encoding="utf-8",
    )
    return path
