"""`edocgw dkim keygen`: the gateway's DKIM key and the DNS record to publish for it.

The key goes to `[dkim] key_file` (or `--out`), readable by its owner only. An existing key
is never overwritten without `--force`: the command then prints the record of that key, so
it can be run again to see what to publish.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from config import Settings
from gateway.cli.common import CliError
from gateway.delivery.dkimsign import DkimKeyError, DkimSigner, generate, public_record


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("dkim", parents=[common], help="the gateway's DKIM signing key")
    sub = p.add_subparsers(dest="dkim_command", required=True)
    q = sub.add_parser(
        "keygen",
        parents=[common],
        help="write a DKIM key and print the DNS TXT record to publish",
    )
    q.add_argument("--type", choices=["rsa", "ed25519"], default="rsa", help="default rsa")
    q.add_argument("--bits", type=int, default=2048, help="RSA key size (default 2048)")
    q.add_argument("--out", metavar="FILE", help="key file (default: [dkim] key_file)")
    q.add_argument("--force", action="store_true", help="replace an existing key file")
    q.add_argument("--json", action="store_true", help="print {name, type, value, key_file}")
    q.set_defaults(func=cmd_keygen)


def cmd_keygen(args: argparse.Namespace, settings: Settings) -> int:
    d = settings.dkim
    domain = d.domain or settings.gateway.hostname
    out = Path(args.out or d.key_file or Path(settings.gateway.data_dir) / "dkim.pem")
    if out.exists() and not args.force:
        pem = out.read_bytes()
        try:
            DkimSigner.from_pem(domain, d.selector, pem, str(out))
        except DkimKeyError as e:
            raise CliError(f"{e}; use --force to replace it") from None
        record, written = public_record(pem), False
    else:
        try:
            pem, record = generate(args.type, args.bits)
        except ValueError as e:
            raise CliError(f"--bits: {e}") from None
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        os.replace(tmp, out)
        written = True
    name = f"{d.selector}._domainkey.{domain}"
    if args.json:
        print(
            json.dumps(
                {"name": name, "type": "TXT", "value": record, "key_file": str(out.resolve())}
            )
        )
        return 0
    chunks = [record[i : i + 250] for i in range(0, len(record), 250)]
    quoted = " ".join(f'"{c}"' for c in chunks)
    print(f"; {'wrote' if written else 'existing key'} {out.resolve()}")
    if not d.domain or not d.key_file:
        print(f'; set [dkim] domain = "{domain}", selector = "{d.selector}", key_file = "{out}"')
    print(f"{name}. IN TXT ( {quoted} )")
    return 0
