"""`edocgw report`: the Directive 15 usage report per agency (DESIGN §7).

`--json` prints exactly `{"since", "until", "agencies": [...]}`; `--csv` the same columns as
a CSV file with a header row; else a table. Dates are whole days in Vietnam's time, both ends
included; no date means no bound (null in the JSON).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
from dataclasses import asdict
from typing import Any

from config import Settings
from gateway.cli.common import CliError, print_json, print_table, run_db

FIELDS = (
    "code",
    "name",
    "documents_in",
    "documents_out",
    "delivered",
    "signed_valid",
    "median_seconds_to_deliver",
)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("report", parents=[common], help="Directive 15 usage per agency")
    p.add_argument("--since", metavar="DATE", help="first day (YYYY-MM-DD), included")
    p.add_argument("--until", metavar="DATE", help="last day (YYYY-MM-DD), included")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="print one JSON document")
    g.add_argument("--csv", action="store_true", help="print CSV with a header row")
    p.set_defaults(func=cmd_report)


def parse_day(value: str | None, option: str) -> dt.date | None:
    if value is None or not value.strip():
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise CliError(f"{option} {value!r}: expected a date like 2026-01-31") from None


def report_document(
    since: dt.date | None, until: dt.date | None, rows: list[Any]
) -> dict[str, Any]:
    """The JSON shape of DESIGN §7 (shared by the CLI and the API)."""
    return {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "agencies": [{k: asdict(r)[k] for k in FIELDS} for r in rows],
    }


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from store.report import usage_by_agency

    since = parse_day(args.since, "--since")
    until = parse_day(args.until, "--until")
    if since and until and since > until:
        raise CliError(f"--since {since} is after --until {until}")

    async def fn(db: Any) -> int:
        async with db.transaction() as s:
            rows = await usage_by_agency(s, since, until)
        if args.json:
            print_json(report_document(since, until, rows))
        elif args.csv:
            w = csv.writer(sys.stdout, lineterminator="\n")
            w.writerow(FIELDS)
            for r in rows:
                d = asdict(r)
                w.writerow(["" if d[k] is None else d[k] for k in FIELDS])
        else:
            print_table(
                [
                    [
                        r.code,
                        r.name,
                        str(r.documents_in),
                        str(r.documents_out),
                        str(r.delivered),
                        str(r.signed_valid),
                        ""
                        if r.median_seconds_to_deliver is None
                        else f"{r.median_seconds_to_deliver:.0f}",
                    ]
                    for r in rows
                ],
                ["CODE", "NAME", "IN", "OUT", "DELIVERED", "SIGNED_VALID", "MEDIAN_S"],
            )
        return 0

    return run_db(settings, fn, existing=True)
