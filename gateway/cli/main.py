"""`edocgw`: the one command-line entry point (DESIGN §7).

Every command takes `--config FILE`; every listing takes `--json` and then prints exactly one
JSON document on stdout. Problems end in one line on stderr and a non-zero exit, never a
traceback (set EDOCGW_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from pathlib import Path
from typing import Any

from config import ConfigError, Settings, load_settings
from gateway.cli import admin, check, dkim, report, senders
from gateway.cli.common import EXIT_CONFIG, EXIT_FAIL, CliError, print_json, print_table, run_db


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a sub-command's --config must not reset one given before the sub-command.
    p.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="edocgw.toml (default: $EDOCGW_CONFIG, else ./edocgw.toml)",
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="edocgw", description="Gateway for Vietnamese state e-documents.", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", parents=[common], help="run listeners and workers")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("db", parents=[common], help="database schema")
    dbsub = p.add_subparsers(dest="db_command", required=True)
    q = dbsub.add_parser("upgrade", parents=[common], help="create or upgrade the schema")
    q.set_defaults(func=cmd_db_upgrade)

    p = sub.add_parser("user", parents=[common], help="users for SMTP AUTH and the web admin")
    usub = p.add_subparsers(dest="user_command", required=True)
    q = usub.add_parser("add", parents=[common], help="add a user")
    q.add_argument("name")
    q.add_argument("--role", action="append", choices=["submit", "admin"], required=True)
    q.add_argument("--password-file", metavar="F", help="read the password from F (else prompt)")
    q.set_defaults(func=cmd_user_add)
    q = usub.add_parser("list", parents=[common], help="list users")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_user_list)
    for name, active in (("disable", False), ("enable", True)):
        q = usub.add_parser(name, parents=[common], help=f"{name} a user")
        q.add_argument("name")
        q.set_defaults(func=cmd_user_active, active=active)
    q = usub.add_parser(
        "password", parents=[common], help="set a new password (ends the user's web sessions)"
    )
    q.add_argument("name")
    q.add_argument("--password-file", metavar="F", help="read the password from F (else prompt)")
    q.set_defaults(func=cmd_user_password)
    q = usub.add_parser("token", parents=[common], help="issue an API bearer token")
    q.add_argument("name")
    q.set_defaults(func=cmd_user_token)

    p = sub.add_parser("agency", parents=[common], help="the agency registry")
    asub = p.add_subparsers(dest="agency_command", required=True)
    q = asub.add_parser("add", parents=[common], help="add or update one agency")
    q.add_argument("code")
    q.add_argument("name")
    q.add_argument("--address", required=True, help="the agency's inbox address")
    q.add_argument("--alias", action="append", default=[], help="another name (repeatable)")
    q.add_argument("--domain", action="append", default=[], help="a mail domain (repeatable)")
    q.add_argument(
        "--route", default="mx", help="mx, smtp://host:port (smarthost) or lmtp://host:port"
    )
    q.add_argument("--tls", default="verify", choices=["verify", "encrypt", "may", "none"])
    q.add_argument(
        "--format",
        default="mime",
        choices=["mime", "edxml"],
        help="what the agency receives: the original mail (mime) or an edXML package",
    )
    q.set_defaults(func=cmd_agency_add)
    q = asub.add_parser("list", parents=[common], help="list agencies")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_agency_list)
    q = asub.add_parser(
        "import",
        parents=[common],
        help="import FILE.csv (all or nothing)",
        description="Import agencies from a CSV file with the header "
        "code,name,aliases,domains,address,route,tls: aliases and domains are lists separated "
        "by ';' (e.g. 'UBND tỉnh Tây Ninh;UBND Tây Ninh'); route is mx, smtp://host:port or "
        "lmtp://host:port; tls is verify (default), encrypt, may or none. Every row is checked "
        "before any is written.",
    )
    q.add_argument("file", help="the CSV file (UTF-8)")
    q.set_defaults(func=cmd_agency_import)

    for mod in (check, admin, report):
        mod.register(sub, common)
    dkim.register(sub, common)
    senders.register(sub, common)
    return parser


# ---- commands ------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from config.loader import config_path
    from gateway.app import serve

    path = config_path(getattr(args, "config", None))
    return serve(settings, str(path) if path else None)


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    async def fn(db: Any) -> int:
        applied = await db.upgrade()
        print("schema upgraded: " + ", ".join(applied) if applied else "schema is up to date")
        return 0

    return run_db(settings, fn, upgrade=False)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            return Path(args.password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as e:
            raise CliError(f"--password-file {args.password_file}: {e.strerror}") from None
    if not sys.stdin.isatty():
        raise CliError("no terminal to prompt for a password: use --password-file")
    first = getpass.getpass(f"Password for {args.name}: ")
    if first != getpass.getpass("Again: "):
        raise CliError("the passwords do not match")
    return first


def cmd_user_add(args: argparse.Namespace, settings: Settings) -> int:
    from store import users

    password = _read_password(args)

    async def fn(db: Any) -> int:
        async with db.transaction() as s:
            u = await users.add_user(s, args.name, password, args.role)
        print(f"user {u.name} added with role {', '.join(u.roles)}")
        return 0

    return run_db(settings, fn)


def cmd_user_list(args: argparse.Namespace, settings: Settings) -> int:
    from store import users

    async def fn(db: Any) -> int:
        async with db.transaction() as s:
            found = await users.list_users(s)
        if args.json:
            print_json(
                {
                    "users": [
                        {"name": u.name, "roles": list(u.roles), "active": u.active} for u in found
                    ]
                }
            )
        else:
            print_table(
                [[u.name, ",".join(u.roles), "yes" if u.active else "no"] for u in found],
                ["NAME", "ROLES", "ACTIVE"],
            )
        return 0

    return run_db(settings, fn)


def cmd_user_active(args: argparse.Namespace, settings: Settings) -> int:
    from store import users

    async def fn(db: Any) -> int:
        async with db.transaction() as s:
            await users.set_active(s, args.name, args.active)
        print(f"user {args.name} {'enabled' if args.active else 'disabled'}")
        return 0

    return run_db(settings, fn)


def cmd_user_password(args: argparse.Namespace, settings: Settings) -> int:
    from store import users

    password = _read_password(args)

    async def fn(db: Any) -> int:
        async with db.transaction() as s:
            await users.set_password(s, args.name, password)
        print(f"password of {args.name} changed; their web sessions are ended")
        return 0

    return run_db(settings, fn)


def cmd_user_token(args: argparse.Namespace, settings: Settings) -> int:
    from store import users

    async def fn(db: Any) -> int:
        async with db.transaction() as s:
            token = await users.new_token(s, args.name)
        print(token)
        return 0

    return run_db(settings, fn)


def cmd_agency_add(args: argparse.Namespace, settings: Settings) -> int:
    from store import agencies

    a = agencies.AgencyIn(
        code=args.code,
        name=args.name,
        address=args.address,
        aliases=args.alias,
        domains=args.domain,
        route=args.route,
        tls=args.tls,
        format=args.format,
    ).validate()

    async def fn(db: Any) -> int:
        async with db.transaction() as s:
            await agencies.upsert_agency(s, a)
        print(f"agency {a.code} saved")
        return 0

    return run_db(settings, fn)


def cmd_agency_list(args: argparse.Namespace, settings: Settings) -> int:
    from store import agencies

    async def fn(db: Any) -> int:
        async with db.transaction() as s:
            found = await agencies.list_agencies(s)
        if args.json:
            print_json(
                {
                    "agencies": [
                        {
                            "code": a.code,
                            "name": a.name,
                            "aliases": a.aliases,
                            "domains": a.domains,
                            "address": a.address,
                            "route": a.route,
                            "tls": a.tls,
                            "format": a.format,
                            "active": a.active,
                        }
                        for a in found
                    ]
                }
            )
        else:
            print_table(
                [[a.code, a.name, a.address, a.route, a.tls, a.format] for a in found],
                ["CODE", "NAME", "ADDRESS", "ROUTE", "TLS", "FORMAT"],
            )
        return 0

    return run_db(settings, fn)


def cmd_agency_import(args: argparse.Namespace, settings: Settings) -> int:
    from store import agencies

    try:
        text = Path(args.file).read_text(encoding="utf-8-sig")
    except OSError as e:
        raise CliError(f"{args.file}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"{args.file}: not UTF-8 text") from None
    parsed = agencies.parse_csv(text)  # all rows checked before anything is written

    async def fn(db: Any) -> int:
        async with db.transaction() as s:
            for a in parsed:
                await agencies.upsert_agency(s, a)
        print(f"{len(parsed)} agencies imported from {args.file}")
        return 0

    return run_db(settings, fn)


# ---- entry point ---------------------------------------------------------------------------


def _known_errors() -> tuple[type[BaseException], ...]:
    from store.agencies import AgencyError
    from store.embedded import EmbeddedPostgresError
    from store.users import UserError

    return (CliError, AgencyError, UserError, EmbeddedPostgresError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(getattr(args, "config", None))
    except ConfigError as e:
        print(f"edocgw: {e}", file=sys.stderr)
        return EXIT_CONFIG
    from gateway.logsetup import setup_logging

    # The service logs at the configured level; one-shot commands speak only when it matters.
    level = settings.logging.level if args.command == "serve" else "WARNING"
    setup_logging(level, settings.logging.format)
    try:
        code = int(args.func(args, settings) or 0)
        sys.stdout.flush()  # inside the try: a reader that went away is seen here
        return code
    except ConfigError as e:  # found after loading, e.g. by serve's checks before start
        print(f"edocgw: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except BrokenPipeError:
        # `edocgw show 10 | head`: the reader has all it wanted. End quietly; stdout points
        # at /dev/null so the interpreter's own final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    except _known_errors() as e:
        print(f"edocgw: {e}", file=sys.stderr)
        return EXIT_FAIL
    except Exception as e:
        if os.environ.get("EDOCGW_DEBUG"):
            raise
        logging.getLogger("edocgw").debug("unexpected error", exc_info=True)
        print(f"edocgw: {type(e).__name__}: {e} (set EDOCGW_DEBUG=1 for details)", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
