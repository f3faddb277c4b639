"""What every `edocgw` command shares: the one-line error, the database opener, the printers."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from config import Settings

EXIT_CONFIG = 2
EXIT_FAIL = 1


class CliError(Exception):
    """A problem to report in one line (exit 1)."""


def run_db(
    settings: Settings,
    fn: Callable[[Any], Awaitable[int]],
    *,
    upgrade: bool = True,
    existing: bool = False,
) -> int:
    """Open the database (embedded if no URL), run `fn(db)`, close it again.

    `existing`: for commands that read or act on what a gateway stored (log, show, queue,
    retry …). They never create a database: run in the wrong folder, they say where they
    looked and stop instead of making an empty embedded cluster and printing an empty table."""
    from store.db import open_database

    if existing:
        _require_embedded_data(settings)

    async def main() -> int:
        db = await open_database(settings)
        try:
            if existing and not await db.has_schema():
                raise CliError(
                    "the configured database holds no edocgw data yet "
                    "(run `edocgw serve` or `edocgw db upgrade` first)"
                )
            if upgrade:
                await db.upgrade()
            return await fn(db)
        finally:
            await db.close()

    return asyncio.run(main())


def _require_embedded_data(settings: Settings) -> None:
    if settings.database.url or settings.database.url_file:
        return
    pgdata = Path(settings.gateway.data_dir).resolve() / "pg"
    if not (pgdata / "PG_VERSION").exists():
        raise CliError(
            f"no gateway data in {pgdata} (no [database] url is configured, and no embedded "
            "PostgreSQL is there): run this in the folder where `edocgw serve` runs, or give "
            "--config"
        )


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2, default=str) + "\n")


def print_table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    for r in [headers, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)).rstrip())
