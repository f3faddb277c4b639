"""What every `edocgw` command shares: the one-line error, the database opener, the printers."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from config import Settings

EXIT_CONFIG = 2
EXIT_FAIL = 1


class CliError(Exception):
    """A problem to report in one line (exit 1)."""


def run_db(settings: Settings, fn: Callable[[Any], Awaitable[int]], *, upgrade: bool = True) -> int:
    """Open the database (embedded if no URL), run `fn(db)`, close it again."""
    from store.db import open_database

    async def main() -> int:
        db = await open_database(settings)
        try:
            if upgrade:
                await db.upgrade()
            return await fn(db)
        finally:
            await db.close()

    return asyncio.run(main())


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2, default=str) + "\n")


def print_table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    for r in [headers, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)).rstrip())
