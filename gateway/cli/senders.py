"""`edocgw sender allow|deny|remove|list`: per-sender exceptions to the official-sender rule.

`allow PATTERN` lets documents from an address or domain outside `[policy] official_domains`
through without the sender_not_official flag (when the sender is authenticated); `deny
PATTERN` holds everything from it. The pipeline re-reads the list with the agency list.
"""

from __future__ import annotations

import argparse
from typing import Any

from config import Settings
from gateway.cli.common import CliError, print_json, print_table, run_db


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "sender", parents=[common], help="per-sender allow and deny lists (official senders)"
    )
    sub = p.add_subparsers(dest="sender_command", required=True)
    for action, text in (
        ("allow", "documents from PATTERN are not flagged sender_not_official"),
        ("deny", "mail from PATTERN is held"),
    ):
        q = sub.add_parser(action, parents=[common], help=text)
        q.add_argument("pattern", help="an address (a@b.vn) or a domain (b.vn, with subdomains)")
        q.add_argument("--note", default="", help="why (shown in the list)")
        q.set_defaults(func=cmd_set, action=action)
    q = sub.add_parser("remove", parents=[common], help="remove the rule for PATTERN")
    q.add_argument("pattern")
    q.set_defaults(func=cmd_remove)
    q = sub.add_parser("list", parents=[common], help="list the rules")
    q.add_argument("--json", action="store_true", help='print {"rules": [...]}')
    q.set_defaults(func=cmd_list)


def cmd_set(args: argparse.Namespace, settings: Settings) -> int:
    from store.senders import SenderRuleError, set_rule

    async def fn(db: Any) -> int:
        try:
            async with db.transaction() as s:
                rule = await set_rule(s, args.pattern, args.action, args.note)
        except SenderRuleError as e:
            raise CliError(str(e)) from None
        print(f"{rule.action} {rule.pattern}")
        return 0

    return run_db(settings, fn)


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    from store.senders import SenderRuleError, remove_rule

    async def fn(db: Any) -> int:
        try:
            async with db.transaction() as s:
                removed = await remove_rule(s, args.pattern)
        except SenderRuleError as e:
            raise CliError(str(e)) from None
        if not removed:
            raise CliError(f"no rule for {args.pattern}")
        return 0

    return run_db(settings, fn)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from store.senders import list_rules

    async def fn(db: Any) -> int:
        async with db.transaction() as s:
            rules = await list_rules(s)
        if args.json:
            print_json(
                {
                    "rules": [
                        {"pattern": r.pattern, "action": r.action, "note": r.note} for r in rules
                    ]
                }
            )
        else:
            print_table(
                [[r.action, r.pattern, r.note] for r in rules], ["ACTION", "PATTERN", "NOTE"]
            )
        return 0

    return run_db(settings, fn)
