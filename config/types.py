"""Value types shared by the settings: durations, listen addresses, networks.

Each parser raises ValueError with a short "expected ..." text, which the loader turns into the
one-line start-up error that names the key.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """Accept `90s`, `15m`, `4h`, `5d` (a bare number is seconds) or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 15m, 4h or 5d")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("expected a non-negative duration")
        return timedelta(seconds=value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2) or "s"])
    raise ValueError("expected a duration such as 90s, 15m, 4h or 5d")


def format_duration(td: timedelta) -> str:
    secs = td.total_seconds()
    if 0 < secs < 1 and (secs * 1000).is_integer():
        return f"{int(secs * 1000)}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size and secs % size == 0:
            return f"{int(secs // size)}{unit}"
    return f"{secs:g}s"


def parse_listen(value: Any) -> str:
    """`host:port` or `[v6]:port`; the port 0..65535 (0 picks a free port, for tests)."""
    if not isinstance(value, str):
        raise ValueError("expected host:port")
    host, port = split_listen(value)
    if not host:
        raise ValueError("expected host:port")
    return value


def split_listen(value: str) -> tuple[str, int]:
    m = re.match(r"^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$", value) or re.match(
        r"^([A-Za-z0-9.\-_]+):(\d{1,5})$", value
    )
    if not m or int(m.group(2)) > 65535:
        raise ValueError("expected host:port, e.g. 127.0.0.1:2525")
    return m.group(1), int(m.group(2))


def parse_network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise ValueError("expected a network in CIDR form, e.g. 10.0.0.0/8") from None


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
ListenAddress = Annotated[str, BeforeValidator(parse_listen)]
Network = Annotated[
    ipaddress.IPv4Network | ipaddress.IPv6Network,
    BeforeValidator(parse_network),
    PlainSerializer(str, return_type=str),
]
