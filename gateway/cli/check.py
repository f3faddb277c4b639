"""``edocgw check FILE…``: classify and verify documents offline (no database, no service).

The JSON printed with ``--json`` is the contract of DESIGN §7; other tools read it."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from mailparse import (
    Attachment,
    ClassifyContext,
    SmimeInfo,
    classify,
    message_facts,
    open_file,
    parse,
)
from mailparse.filetype import detect_type
from signing import (
    TrustStore,
    TrustStoreError,
    aggregate,
    extract_p7m_content,
    verify_document,
    verify_smime,
)

EXIT_OK = 0
EXIT_UNREADABLE = 2


@dataclass
class TrustArgs:
    """What the signature check needs from the command line."""

    anchors: list[str] = field(default_factory=list)
    crls: list[str] = field(default_factory=list)
    soft_fail: bool = False
    _store: TrustStore | None = field(default=None, repr=False)

    def store(self) -> TrustStore:
        """Parsed once per `check` call; no anchors means every chain is untrusted."""
        if self._store is None:
            revocation = "soft-fail" if self.soft_fail else "hard-fail"
            if self.anchors:
                self._store = TrustStore.load(self.anchors, self.crls, revocation)
            else:
                self._store = TrustStore.empty(revocation)
        return self._store


def register(subparsers: Any, common: argparse.ArgumentParser | None = None) -> None:
    """Add the ``check`` sub-command; ``common`` (optional) carries ``--config`` and friends."""
    p = subparsers.add_parser(
        "check",
        parents=[common] if common is not None else [],
        help="classify and verify documents or .eml files offline",
        description="Classify documents and verify their signatures offline; .eml files are "
        "parsed as messages and each attachment is reported.",
    )
    p.add_argument("files", metavar="FILE", nargs="+", help="documents or .eml messages")
    p.add_argument(
        "--trust", action="append", default=[], metavar="PEM_OR_DIR", help="trust anchors"
    )
    p.add_argument("--crl", action="append", default=[], metavar="FILE_OR_DIR", help="CRL files")
    p.add_argument("--soft-fail", action="store_true", help="accept missing revocation data")
    p.add_argument("--json", action="store_true", help='print {"files": [REPORT, …]} on stdout')
    p.set_defaults(func=run)


def _verify(
    target: Attachment,
    companions: list[Attachment],
    trust: TrustArgs,
) -> list[dict[str, Any]]:
    """Signature reports for one document. A detached ``x.pdf.p7s``/``.sig`` is reported
    on ``x.pdf`` (paired by name), and on itself only when its partner is missing."""
    store = trust.store()
    name = target.filename or ""
    if target.detected_type == "cms":
        base = _detached_partner_name(name)
        if base is not None and any(c.filename == base for c in companions):
            return []  # reported on the document it signs
        return [r.to_dict() for r in verify_document(target.data, "cms", name, store)]
    reports = [r.to_dict() for r in verify_document(target.data, target.detected_type, name, store)]
    for c in companions:
        if c.detected_type == "cms" and name and _detached_partner_name(c.filename or "") == name:
            reports += [
                r.to_dict() for r in verify_document(c.data, "cms", c.filename, store, target.data)
            ]
    return reports


def _verify_smime(smime: SmimeInfo, trust: TrustArgs) -> list[dict[str, Any]]:
    """A message's S/MIME signature, checked on the signed part's raw bytes."""
    store = trust.store()
    return [r.to_dict() for r in verify_smime(smime.signature, smime.signed_bytes, store)]


def _detached_partner_name(name: str) -> str | None:
    """`x.pdf` for `x.pdf.p7s` / `x.pdf.sig`; None for anything else (`.p7m` envelops)."""
    lower = name.lower()
    for ext in (".p7s", ".sig"):
        if lower.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return None


def _p7m_inner(att: Attachment) -> list[Attachment]:
    """The document inside an enveloping `.p7m`, so it is classified like any other."""
    if att.detected_type != "cms" or _detached_partner_name(att.filename or "") is not None:
        return []
    inner = extract_p7m_content(att.data)
    if not inner:
        return []
    name = att.filename or "document.p7m"
    inner_name = name[:-4] if name.lower().endswith(".p7m") else name + ".content"
    child = open_file(inner, inner_name)
    child.part_path = f"{att.part_path}.1" if att.part_path else "1"
    return [child]


def _attachment_report(
    att: Attachment,
    siblings: list[Attachment],
    ctx: ClassifyContext,
    trust: TrustArgs,
    label: str | None = None,
) -> dict[str, Any]:
    facts = classify(att, ctx)
    signatures = _verify(att, [s for s in siblings if s is not att], trust)
    children = list(att.children) + _p7m_inner(att)
    return {
        "file": label or att.filename or f"part {att.part_path}",
        "detected_type": att.detected_type,
        "facts": facts.to_dict(),
        "signatures": signatures,
        # A document whose text could not be read is `unreadable`, whatever its signatures
        # say: a secrecy mark may be on it (the gateway holds it by `[policy] unreadable`).
        "verdict": "unreadable"
        if facts.unreadable
        else aggregate(s["verdict"] for s in signatures),
        "reason": facts.unreadable,
        "attachments": [_attachment_report(c, children, ctx, trust) for c in children],
        "defects": list(dict.fromkeys(att.defects + facts.flags)),
    }


def _message_report(path: str, data: bytes, trust: TrustArgs) -> dict[str, Any]:
    msg = parse(data)
    ctx = ClassifyContext(subject=msg.subject, body_text=msg.body_text)
    facts = message_facts(ctx)  # the subject and body alone: what the mail says it carries
    signatures = _verify_smime(msg.smime, trust) if msg.smime else []
    defects = list(msg.defects) + (["malformed"] if msg.malformed else [])
    return {
        "file": path,
        "detected_type": "eml",
        "facts": facts.to_dict(),
        "signatures": signatures,
        "verdict": aggregate(s["verdict"] for s in signatures),
        "reason": None,
        "attachments": [
            _attachment_report(a, msg.attachments, ctx, trust) for a in msg.attachments
        ],
        "defects": defects,
    }


def _unreadable_report(path: str, reason: str) -> dict[str, Any]:
    from mailparse import DocumentFacts

    return {
        "file": path,
        "detected_type": None,
        "facts": DocumentFacts().to_dict(),
        "signatures": [],
        "verdict": None,
        "reason": None,
        "attachments": [],
        "defects": [f"unreadable:{reason}"],
    }


def check_file(path: str, trust: TrustArgs) -> dict[str, Any]:
    """The REPORT for one path; raises OSError when the file cannot be read."""
    with open(path, "rb") as fh:
        data = fh.read()
    name = os.path.basename(path)
    kind = detect_type(data, name)
    if kind == "eml" or (name.lower().endswith(".eml") and kind == "text"):
        return _message_report(path, data, trust)
    att = open_file(data, name)
    siblings = _sibling_files(path)
    return _attachment_report(att, [att, *siblings], ClassifyContext(), trust, label=path)


def _sibling_files(path: str) -> list[Attachment]:
    """The other half of a detached signature pair lying next to `path`, as a companion:
    `x.pdf.p7s`/`x.pdf.sig` for `x.pdf`, and `x.pdf` for `x.pdf.p7s`."""
    candidates = [path + ext for ext in (".p7s", ".sig")]
    partner = _detached_partner_name(path)
    if partner is not None:
        candidates.append(partner)
    out: list[Attachment] = []
    for candidate in candidates:
        if os.path.isfile(candidate) and os.path.getsize(candidate) < 64 * 1024 * 1024:
            with open(candidate, "rb") as fh:
                out.append(open_file(fh.read(), os.path.basename(candidate)))
    return out


def run(args: argparse.Namespace, settings: Any = None) -> int:
    """Check every file; exit 0 when all were read, 2 when one could not be.

    ``settings`` is accepted for the CLI's calling convention; nothing here needs it."""
    trust = TrustArgs(
        anchors=list(args.trust or []), crls=list(args.crl or []), soft_fail=bool(args.soft_fail)
    )
    reports: list[dict[str, Any]] = []
    status = EXIT_OK
    progress = _Progress(len(args.files))
    for index, path in enumerate(args.files, start=1):
        progress.update(index, path)
        try:
            reports.append(check_file(path, trust))
        except TrustStoreError as exc:
            progress.clear()
            print(f"edocgw check: {exc}", file=sys.stderr)
            return EXIT_UNREADABLE
        except OSError as exc:
            status = EXIT_UNREADABLE
            reason = exc.strerror or type(exc).__name__
            progress.clear()
            print(f"edocgw check: cannot read {path}: {reason}", file=sys.stderr)
            reports.append(_unreadable_report(path, reason))
        except Exception as exc:  # never a traceback on the terminal
            status = EXIT_UNREADABLE
            progress.clear()
            print(
                f"edocgw check: {path}: {type(exc).__name__}: {exc}".splitlines()[0],
                file=sys.stderr,
            )
            reports.append(_unreadable_report(path, type(exc).__name__))
    progress.clear()
    if args.json:
        json.dump({"files": reports}, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print_table(reports)
    return status


class _Progress:
    """A one-line bar on stderr, only on a terminal and only for several files."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.enabled = total > 1 and sys.stderr.isatty()

    def update(self, index: int, path: str) -> None:
        if self.enabled:
            done = int(30 * (index - 1) / self.total)
            name = os.path.basename(path)[:40]
            sys.stderr.write(f"\r[{'#' * done}{'.' * (30 - done)}] {index}/{self.total} {name:<40}")
            sys.stderr.flush()

    def clear(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 80 + "\r")
            sys.stderr.flush()


def _number(facts: dict[str, Any]) -> str:
    if not facts.get("number") and not facts.get("notation"):
        return "-"
    year = f"/{facts['year']}" if facts.get("year") else ""
    return f"{facts.get('number') or '?'}{year}/{facts.get('notation') or '?'}"


def _rows(report: dict[str, Any], depth: int, out: list[list[str]]) -> None:
    f = report["facts"]
    name = os.path.basename(report["file"]) if depth == 0 else report["file"]
    out.append(
        [
            ("  " * depth + ("└ " if depth else "")) + name,
            report["detected_type"] or "?",
            f.get("kind") or "-",
            _number(f),
            f.get("date") or "-",
            f.get("urgency") or "-",
            f.get("secrecy") or "-",
            report["verdict"] or "-",
            str(len(report["defects"])) if report["defects"] else "",
        ]
    )
    for child in report["attachments"]:
        _rows(child, depth + 1, out)


def print_table(reports: list[dict[str, Any]]) -> None:
    """Readable table: one line per file and per attachment inside it."""
    header = ["FILE", "TYPE", "KIND", "NUMBER", "DATE", "URGENCY", "SECRECY", "VERDICT", "DEFECTS"]
    rows: list[list[str]] = []
    for report in reports:
        _rows(report, 0, rows)
    widths = [min(48, max(len(r[i]) for r in [header, *rows])) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell[: widths[i]].ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    for report in reports:
        f = report["facts"]
        if f.get("secrecy"):
            print(
                f"! {report['file']}: carries a secrecy mark ({f['secrecy']}): must not be sent over the Internet"
            )
