"""Admin commands: `edocgw log`, `show`, `queue`, `retry`, `release`, `cancel` (DESIGN §7).

Reads go through `store.queries`, changes through `gateway.admin.actions`, JSON through
`gateway.admin.schemas` — the same code the web admin and the API use. Actions are logged
with the admin's name as `cli:<login user>`.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import os
import sys
from typing import Any

from config import Settings
from gateway.cli.common import CliError, print_json, print_table, run_db
from gateway.senderauth.results import sender_auth_line

# ANSI colours per state, used only when stdout is a terminal.
_COLOURS = {
    "received": "34",
    "processed": "32",
    "delivered": "32",
    "valid": "32",
    "queued": "36",
    "sending": "36",
    "deferred": "33",
    "held": "33",
    "indeterminate": "33",
    "untrusted": "33",
    "quarantined": "35",
    "failed": "31",
    "bounced": "31",
    "invalid": "31",
    "revoked": "31",
    "expired": "31",
    "malformed": "31",
    "cancelled": "2",
    "duplicate": "2",
}


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("log", parents=[common], help="the delivery log, newest first")
    p.add_argument("--since", metavar="T", help="a duration ago (2h, 3d) or a date/time")
    p.add_argument("--state", metavar="S", help="a message or delivery state")
    p.add_argument("--agency", metavar="CODE", help="messages for this agency code")
    p.add_argument("--sender", metavar="A", help="envelope or header sender contains A")
    p.add_argument("--search", metavar="TEXT", help="subject, sender, number/notation")
    p.add_argument(
        "--limit", metavar="N", type=int, default=50, help="at most N (default 50, at most 1000)"
    )
    p.add_argument(
        "--before", metavar="ID", type=int, help="only messages older than message ID (paging)"
    )
    p.add_argument("--all", action="store_true", help="every match, page by page (no limit)")
    p.add_argument(
        "--no-notices",
        action="store_true",
        help="leave out the gateway's own mail (receipts, DSNs, delay warnings)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument(
        "--verify", action="store_true", help="walk the event hash chain instead (exit 1 if broken)"
    )
    p.set_defaults(func=cmd_log)

    p = sub.add_parser("show", parents=[common], help="one message in full")
    p.add_argument("id", metavar="MESSAGE_ID", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("queue", parents=[common], help="pending deliveries by agency and age")
    p.add_argument("--state", action="append", choices=["queued", "sending", "deferred", "held"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_queue)

    p = sub.add_parser("retry", parents=[common], help="send a deferred delivery now")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("id", metavar="DELIVERY_ID", type=int, nargs="?")
    g.add_argument("--all-deferred", action="store_true", help="every deferred delivery")
    p.set_defaults(func=cmd_retry)

    p = sub.add_parser("release", parents=[common], help="forward a held message")
    p.add_argument("id", metavar="MESSAGE_ID", type=int)
    p.add_argument(
        "--to",
        metavar="CODE",
        action="append",
        default=[],
        help="send to this agency (repeatable); default: its held deliveries, else route again",
    )
    p.add_argument(
        "--force", action="store_true", help="release a quarantined message (checked by a human)"
    )
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("cancel", parents=[common], help="cancel a message's unsent deliveries")
    p.add_argument("id", metavar="MESSAGE_ID", type=int)
    p.add_argument("--reason", default="", help="why (kept in the log)")
    p.set_defaults(func=cmd_cancel)


# ---- helpers -------------------------------------------------------------------------------


def admin_name() -> str:
    try:
        user = os.environ.get("SUDO_USER") or getpass.getuser()
    except Exception:  # no passwd entry (containers)
        user = str(os.getuid())
    return f"cli:{user}"


def _paint(text: str, key: str | None, tty: bool) -> str:
    code = _COLOURS.get(key or "")
    return f"\x1b[{code}m{text}\x1b[0m" if tty and code else text


def _table(rows: list[list[tuple[str, str | None]]], headers: list[str]) -> None:
    """Cells are (text, colour key); colour only on a terminal, padding on the plain text."""
    tty = sys.stdout.isatty()
    if not tty:
        print_table([[t for t, _ in r] for r in rows], headers)
        return
    widths = [
        max(len(x) for x in col)
        for col in zip(headers, *[[t for t, _ in r] for r in rows], strict=False)
    ]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip())
    for r in rows:
        cells = [_paint(t.ljust(w), k, tty) for (t, k), w in zip(r, widths, strict=False)]
        print("  ".join(cells).rstrip())


def _short(text: str | None, n: int) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= n else text[: n - 1] + "…"


def _when(v: Any) -> str:
    return v.astimezone().strftime("%Y-%m-%d %H:%M:%S") if v is not None else "-"


def _one_line(detail: dict[str, Any]) -> str:
    from gateway.admin.eventtext import detail_text

    return detail_text(detail)


# ---- log -----------------------------------------------------------------------------------


def cmd_log(args: argparse.Namespace, settings: Settings) -> int:
    if args.verify:
        return _verify(args, settings)
    from gateway.admin.schemas import MessageList, dump
    from store import queries
    from store.edxml_packages import latest_statuses

    if args.before is not None and args.before < 1:
        raise CliError("--before must be a message id (a positive number)")
    if args.limit > queries.MAX_LIMIT and not args.all:
        raise CliError(
            f"--limit {args.limit}: at most {queries.MAX_LIMIT} at a time; "
            "page with --before ID, or list every match with --all"
        )
    try:
        f = queries.LogFilter(
            since=queries.parse_since(args.since) if args.since else None,
            state=args.state,
            agency=args.agency,
            sender=args.sender,
            search=args.search,
            before_id=args.before,
            limit=queries.MAX_LIMIT if args.all else args.limit,
            notices=not args.no_notices,
        )
    except queries.QueryError as e:
        raise CliError(str(e)) from None

    async def fn(db: Any) -> int:
        found: list[Any] = []
        page_filter = f
        while True:  # pages of at most MAX_LIMIT, by id (keyset paging)
            async with db.transaction() as s:
                page = await queries.list_messages(s, page_filter)
            found += page
            if not args.all or len(page) < page_filter.limit:
                break
            page_filter = dataclasses.replace(page_filter, before_id=page[-1].id)
        if args.json:
            print_json(dump(MessageList, {"messages": found}))
            return 0
        async with db.transaction() as s:  # edXML status packages back (issue 15)
            statuses = await latest_statuses(s, [m.id for m in found])
        _log_rows(found, statuses)
        return 0

    return run_db(settings, fn, existing=True)


def _sender(auth: dict[str, Any] | None, flags: list[str]) -> str:
    """`dmarc=pass`, `dmarc=fail`… for a checked sender, `trusted` otherwise; then flags."""
    word = f"dmarc={auth.get('dmarc')}" if auth else "trusted"
    return " ".join([word, *flags])


LOG_HEADERS = [
    "MÃ / ID",
    "NHẬN LÚC / RECEIVED",
    "ĐỘ KHẨN / URGENCY",
    "NGƯỜI GỬI / FROM",
    "TRÍCH YẾU / SUBJECT",
    "VĂN BẢN / DOCUMENTS",
    "TRẠNG THÁI / STATE",
    "LÝ DO / REASON",
    "CHỮ KÝ / VERDICT",
    "XÁC THỰC / SENDER",
    "CHUYỂN PHÁT / DELIVERIES",
]


def _log_rows(found: list[Any], statuses: dict[int, dict[str, Any]]) -> None:
    rows = []
    for m in found:
        dels = " ".join(
            f"{d.agency or d.recipient}:{d.state}"
            + (f"[{statuses[d.id].get('code')}]" if d.id in statuses else "")
            for d in m.deliveries
        )
        docs = "; ".join(
            ("/".join(x for x in (d.number, d.notation) if x) or (d.filename or "?"))
            + (f" ({d.unreadable})" if d.unreadable else "")  # why it was not read
            for d in m.documents
        )
        rows.append(
            [
                (str(m.id), None),
                (_when(m.received_at), None),
                (m.urgency or "-", None),
                (_short(m.mail_from or "<>", 28), None),
                (_short(m.subject, 40), None),
                (_short(docs, 24), None),
                (_state_text(m), m.state),
                (_short(m.reason, 40) or "-", None),
                (m.verdict or "-", m.verdict),
                (_sender(m.sender_auth, m.flags), None),
                (dels or "-", _worst_delivery(m.deliveries)),
            ]
        )
    _table(rows, LOG_HEADERS)


def _state_text(m: Any) -> str:
    """A duplicate names the message it repeats (that one was forwarded, this one is not)."""
    dup = getattr(m, "duplicate_of", None)
    return f"{m.state} of {dup}" if dup else m.state


def _worst_delivery(dels: list[Any]) -> str | None:
    for state in ("bounced", "deferred", "held", "queued", "sending", "delivered", "cancelled"):
        if any(d.state == state for d in dels):
            return state
    return None


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.eventlog.chainkey import (
        ChainKeyError,
        load_chain_key,
        read_witness,
        witness_path,
    )
    from store.events import seal_events, verify_chain

    try:  # a read command: never makes a key (no key and no checkpoints is a fresh log)
        key = load_chain_key(settings, create=False)
        witness = read_witness(witness_path(settings))
    except ChainKeyError as e:
        raise CliError(str(e)) from None

    async def fn(db: Any) -> int:
        while True:  # seal what is not chained yet, so the walk covers every event
            async with db.transaction() as s:
                if await seal_events(s) == 0:
                    break
        async with db.transaction() as s:
            report = await verify_chain(s, key, witness=witness)
        if args.json:
            print_json(
                {
                    "ok": report.ok,
                    "checked": report.checked,
                    "unsealed": report.unsealed,
                    "broken_event_id": report.broken_event_id,
                    "broken_seq": report.broken_seq,
                    "reason": report.reason or None,
                    "checkpoints": report.checkpoints,
                    "last_checkpoint_seq": report.last_checkpoint_seq,
                }
            )
        elif report.ok:
            print(
                f"event log intact: {report.checked} events checked, "
                f"{report.checkpoints} signed checkpoint(s) match"
                + ("" if report.checkpoints else " (none written yet)")
            )
        elif report.broken_seq is None:
            print(f"event log cannot be verified: {report.reason}")
        else:
            print(
                f"event log BROKEN at event {report.broken_event_id} "
                f"(chain position {report.broken_seq}): {report.reason}; "
                f"{report.checked} events checked"
            )
        return 0 if report.ok else 1

    return run_db(settings, fn, existing=True)


# ---- show ----------------------------------------------------------------------------------


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.admin.schemas import MessageDetailOut, dump
    from store import queries

    async def fn(db: Any) -> int:
        async with db.transaction() as s:
            m = await queries.message_detail(s, args.id)
        if m is None:
            raise CliError(f"no message {args.id}")
        if args.json:
            print_json(dump(MessageDetailOut, m))
        else:
            _print_detail(m)
        return 0

    return run_db(settings, fn, existing=True)


def _e_document_line(e: dict[str, Any]) -> str:
    """One line for the Decree 30 check: conformant or its problems, and who signed."""
    head = (
        "conformant"
        if e.get("conformant")
        else "NOT conformant: " + ", ".join(e.get("problems") or [])
    )
    who = [
        f"{label} {name}"
        for label, name in (
            ("person", e.get("personal_signer")),
            ("organisation", e.get("organisation_signer")),
        )
        if name
    ]
    return head + (f" ({'; '.join(who)})" if who else "")


def _print_detail(m: Any) -> None:
    tty = sys.stdout.isatty()
    print(f"Message {m.id}  {_paint(_state_text(m), m.state, tty)}  verdict {m.verdict or '-'}")
    for label, value in (
        ("Received", f"{_when(m.received_at)} via {m.source} from {m.peer}"),
        ("Auth user", m.auth_user),
        ("Mail from", m.mail_from or "<>"),
        ("Rcpt to", ", ".join(m.rcpt_to)),
        ("From", m.header_from),
        ("Subject", m.subject),
        ("Message-ID", m.message_id),
        ("Size", f"{m.size} bytes, sha256 {m.sha256}"),
        ("Sender auth", sender_auth_line(m.sender_auth) or "not checked (trusted client)"),
        ("Flags", ", ".join(m.flags)),
        ("Urgency", m.urgency),
        ("Error", m.error),
        ("Duplicate of", m.duplicate_of),
    ):
        if value:
            print(f"  {label + ':':<14}{value}")
    for sig in m.signatures:
        print(
            f"  S/MIME: {_paint(sig.verdict, sig.verdict, tty)} {sig.signer_cn or ''} {sig.reason or ''}"
        )
    for d in m.documents:
        print(f"\nDocument {d.id}: {d.filename or d.part_path} ({d.detected_type}, {d.size} bytes)")
        f = d.facts
        ident = "/".join(x for x in (f.number, f.notation) if x)
        for label, value in (
            ("Kind", f.kind),
            ("Number", ident),
            ("Issuer", f.issuer),
            ("Parent organ", f.parent_issuer),
            ("Place, date", ", ".join(str(x) for x in (f.place, f.date) if x)),
            ("Subject", f.subject),
            (
                "Signer",
                ", ".join(x for x in (f.signer_competence, f.signer_position, f.signer) if x),
            ),
            ("Meeting", f.meeting_start.isoformat() if f.meeting_start else None),
            ("Venue", f.meeting_place),
            ("Urgency", f.urgency),
            ("Secrecy", f.secrecy),
            ("Recipients", "; ".join(f.recipients)),
            ("Agency codes", ", ".join(f.agency_codes)),
            ("Flags", ", ".join(d.flags)),
            ("Defects", ", ".join(d.defects)),
        ):
            if value:
                print(f"  {label + ':':<14}{value}")
        print(f"  {'Verdict:':<14}{_paint(d.verdict or 'unsigned', d.verdict, tty)}")
        if d.e_document is not None:
            print(f"  {'E-document:':<14}{_e_document_line(d.e_document)}")
        if d.unreadable:
            print(f"  {'Unreadable:':<14}{d.unreadable}")
        for sig in d.signatures:
            print(
                f"    {sig.format}: {_paint(sig.verdict, sig.verdict, tty)}"
                f" {sig.signer_cn or '?'}"
                + (f" ({sig.signer_o})" if sig.signer_o else "")
                + (f" — {sig.reason}" if sig.reason else "")
                + (f"; {sig.detail}" if sig.detail else "")
            )
    for dl in m.deliveries:
        print(
            f"\nDelivery {dl.id} to {dl.recipient}"
            + (f" ({dl.agency})" if dl.agency else "")
            + f": {_paint(dl.state, dl.state, tty)}, {dl.attempts} attempt(s)"
        )
        if dl.last_reply:
            print(f"  last reply: {dl.last_reply}")
        if dl.next_attempt_at:
            print(f"  next attempt: {_when(dl.next_attempt_at)}")
        for e in dl.events:
            print(f"  {_when(e.at)}  {e.kind:<10} {_one_line(e.detail)}")
    if m.receipts:
        print("\nReceipts:")
        for e in m.receipts:
            print(f"  {_when(e.at)}  {e.kind:<12} {_one_line(e.detail)}")
    print("\nEvents:")
    for e in m.events:
        where = f" [delivery {e.delivery_id}]" if e.delivery_id else ""
        print(f"  {_when(e.at)}  {e.kind:<12}{where} {_one_line(e.detail)}")


# ---- queue ---------------------------------------------------------------------------------


def cmd_queue(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.admin.schemas import QueueOut, dump
    from store import queries

    states = tuple(args.state) if args.state else None

    async def fn(db: Any) -> int:
        async with db.transaction() as s:
            shape = await queries.queue_shape(s, states)
            entries = await queries.queue_entries(s, states, limit=1000 if args.json else 50)
        if args.json:
            print_json(dump(QueueOut, {"shape": shape, "deliveries": entries}))
            return 0
        ages = [lbl if lbl.endswith("+") else f"≤{lbl}" for lbl in shape.labels]
        headers = ["CƠ QUAN / AGENCY", "TỔNG / TOTAL", *ages]
        rows = [["TẤT CẢ / ALL", str(shape.total), *map(str, shape.totals)]]
        rows += [[a.agency, str(a.total), *map(str, a.counts)] for a in shape.agencies]
        widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
        for r in [headers, *rows]:
            print(
                r[0].ljust(widths[0])
                + " "
                + " ".join(c.rjust(max(w, 4)) for c, w in zip(r[1:], widths[1:], strict=False))
            )
        print(
            "TỔNG / TOTAL: deliveries waiting per agency; the other columns count them by "
            "age: ≤N = at most N minutes since the message was received (tuổi, phút)"
        )
        if shape.by_state:
            print("by state: " + ", ".join(f"{k} {v}" for k, v in sorted(shape.by_state.items())))
        return 0

    return run_db(settings, fn, existing=True)


# ---- actions -------------------------------------------------------------------------------


def _act(settings: Settings, action: Any) -> int:
    from gateway.admin.actions import ActionError

    async def fn(db: Any) -> int:
        try:
            async with db.transaction() as s:
                line = await action(s)
        except ActionError as e:
            raise CliError(str(e)) from None
        print(line)
        return 0

    return run_db(settings, fn, existing=True)


def cmd_retry(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.admin import actions

    by = admin_name()

    async def action(s: Any) -> str:
        if args.all_deferred:
            ids = await actions.retry_all_deferred(s, by)
            return f"{len(ids)} deferred deliveries queued for retry"
        await actions.retry_delivery(s, args.id, by)
        return f"delivery {args.id} queued for retry"

    return _act(settings, action)


def cmd_release(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.admin import actions

    async def action(s: Any) -> str:
        r = await actions.release_message(
            s, settings, args.id, admin_name(), to=args.to, force=args.force
        )
        ids = ", ".join(map(str, r.queued))
        return f"message {args.id} released ({r.how}): deliveries {ids} queued"

    return _act(settings, action)


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.admin import actions

    async def action(s: Any) -> str:
        ids = await actions.cancel_message(s, args.id, admin_name(), args.reason)
        return f"message {args.id} cancelled ({len(ids)} deliveries cancelled)"

    return _act(settings, action)
