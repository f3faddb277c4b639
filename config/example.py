"""Render `edocgw.example.toml` from the settings model, so the docs cannot drift from the code.

`python -m config.example > edocgw.example.toml` regenerates it; a test checks it is current.
"""

from __future__ import annotations

import json
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from config.settings import ImapAccount, Settings
from config.types import format_duration

HEADER = """\
# edocgw configuration (generated from config/settings.py by `python -m config.example`).
# Every key can be overridden by an environment variable EDOCGW_<SECTION>__<KEY>,
# e.g. EDOCGW_SMTP__RELAY_LISTEN=0.0.0.0:25 (lists as JSON: EDOCGW_TRUST__ANCHORS='["/etc/ca"]').
# Values shown are the defaults.
"""

IMAP_EXAMPLE = {
    "name": "vanthu",
    "host": "imap.example.gov.vn",
    "user": "vanthu@example.gov.vn",
    "password_file": "/run/secrets/imap-vanthu",
    "after": "move:Processed",
}


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, timedelta):
        return json.dumps(format_duration(v))
    if isinstance(v, IPv4Network | IPv6Network | Path):
        return json.dumps(str(v))
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v), ensure_ascii=False)


def _section(model: BaseModel, header: str) -> list[str]:
    lines = [header]
    for name, field in type(model).model_fields.items():
        lines.append(f"# {field.description}")
        lines.append(f"{name} = {_toml_value(getattr(model, name))}")
    return lines


def render() -> str:
    s = Settings()
    out = [HEADER]
    for name in Settings.model_fields:
        if name == "imap":
            out.append("# IMAP accounts to fetch from: zero or more [[imap]] tables, e.g.:")
            example = ImapAccount.model_validate(IMAP_EXAMPLE)
            out.extend("# " + line for line in _section(example, "[[imap]]"))
            out.append("")
            continue
        out.extend(_section(getattr(s, name), f"[{name}]"))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
