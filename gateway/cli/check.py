"""``edocgw check FILE…``: classify and verify documents offline (no database, no service).

The JSON printed with ``--json`` is the contract of DESIGN §7; other tools read it."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from gateway.pipeline.verdicts import (
    document_signatures,
    document_verdicts,
    e_document_for,
    shown_verdict,
)
from mailparse import ClassifyContext, DocumentFacts, classify, message_facts
from mailparse.filetype import detect_type
from mailparse.plan import MessagePlan, PlannedDocument, pairing_names, plan, plan_files
from signing import (
    SignatureReport,
    TrustStore,
    TrustStoreError,
    aggregate,
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
    weak_algorithms: str = "indeterminate"
    _store: TrustStore | None = field(default=None, repr=False)

    def store(self) -> TrustStore:
        """Parsed once per `check` call; no anchors means every chain is untrusted."""
        if self._store is None:
            revocation = "soft-fail" if self.soft_fail else "hard-fail"
            if self.anchors:
                self._store = TrustStore.load(
                    self.anchors, self.crls, revocation, self.weak_algorithms
                )
            else:
                self._store = TrustStore.empty(revocation, self.weak_algorithms)
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


def _reports(p: MessagePlan, trust: TrustArgs) -> dict[int, list[SignatureReport]]:
    """Every verification the plan lists, run here as the gateway's verifier processes run
    them: a document's bytes, with the content a detached signature signs."""
    store = trust.store()
    out: dict[int, list[SignatureReport]] = {}
    for v in p.verifications:
        d = p.documents[v.document]
        content = p.documents[v.detached].attachment.data if v.detached is not None else None
        out[v.document] = verify_document(
            d.attachment.data, d.detected_type, d.filename, store, content
        )
    return out


class _Reporter:
    """REPORTs for the documents of one plan. A detached ``x.pdf.p7s``/``.sig`` is reported
    on the document it signs (paired by the plan), and on itself only when unpaired; each
    verdict is the gateway's (`document_verdicts`): a document covered by a signature
    (detached, or the .p7m it came out of) takes that signature's verdict."""

    def __init__(self, p: MessagePlan, ctx: ClassifyContext, trust: TrustArgs) -> None:
        self.plan = p
        self.ctx = ctx
        self.reports = _reports(p, trust)
        self.verdicts = document_verdicts(p.documents, self.reports)
        self.signatures = document_signatures(p.documents, self.reports)

    def report(self, d: PlannedDocument, label: str | None = None) -> dict[str, Any]:
        facts = classify(d.attachment, self.ctx)
        shown = [] if d.signs is not None else list(self.reports.get(d.index, []))
        for sig in self.plan.covering(d.index):
            if sig.signs == d.index:
                shown += self.reports.get(sig.index, [])
        return {
            "file": label or d.filename or f"part {d.part_path}",
            "detected_type": d.detected_type,
            "facts": facts.to_dict(),
            "signatures": [r.to_dict() for r in shown],
            # a document whose text could not be read is `unreadable`, whatever its signatures
            # say: a secrecy mark may be on it (the gateway holds it by `[policy] unreadable`)
            "verdict": shown_verdict(self.verdicts[d.index], facts.unreadable),
            "reason": facts.unreadable,
            "e_document": _dict_or_none(
                e_document_for(d.detected_type, facts, self.signatures.get(d.index, []))
            ),
            "attachments": [self.report(c) for c in self.plan.children(d.index)],
            "defects": list(dict.fromkeys(d.attachment.defects + facts.flags)),
        }


def _dict_or_none(check: Any) -> dict[str, Any] | None:
    return check.to_dict() if check is not None else None


def _message_report(path: str, data: bytes, trust: TrustArgs) -> dict[str, Any]:
    p = plan(data)
    ctx = p.context()
    facts = message_facts(ctx)  # the subject and body alone: what the mail says it carries
    smime = p.smime
    signatures = (
        [r.to_dict() for r in verify_smime(smime.signature, smime.signed, trust.store())]
        if smime is not None
        else []
    )
    defects = list(p.defects) + (["malformed"] if p.malformed else [])
    reporter = _Reporter(p, ctx, trust)
    return {
        "file": path,
        "detected_type": "eml",
        "facts": facts.to_dict(),
        "signatures": signatures,
        "verdict": aggregate(s["verdict"] for s in signatures),
        "reason": None,
        "e_document": None,  # the mail itself; each attached document has its own
        "attachments": [reporter.report(d) for d in p.children(None)],
        "defects": defects,
    }


def _unreadable_report(path: str, reason: str) -> dict[str, Any]:
    return {
        "file": path,
        "detected_type": None,
        "facts": DocumentFacts().to_dict(),
        "signatures": [],
        "verdict": None,
        "reason": None,
        "e_document": None,
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
    p = plan_files([(name, data), *_partner_files(path)])
    return _Reporter(p, ClassifyContext(), trust).report(p.documents[0], label=path)


MAX_PARTNERS = 16
MAX_PARTNER_BYTES = 64 * 1024 * 1024


def _partner_files(path: str) -> list[tuple[str, bytes]]:
    """The files beside `path` that the plan's pairing rule looks at (`x.pdf.p7s`, `x.sig`
    for `x.pdf`; `x.pdf` for `x.pdf.p7s`), so a detached pair on disk is judged as in a mail."""
    directory, name = os.path.split(path)
    try:
        names = sorted(e.name for e in os.scandir(directory or ".") if e.is_file())
    except OSError:
        return []
    out: list[tuple[str, bytes]] = []
    for other in pairing_names(name, names)[:MAX_PARTNERS]:
        candidate = os.path.join(directory, other)
        try:
            if os.path.getsize(candidate) < MAX_PARTNER_BYTES:
                with open(candidate, "rb") as fh:
                    out.append((other, fh.read()))
        except OSError:
            continue
    return out


def run(args: argparse.Namespace, settings: Any = None) -> int:
    """Check every file; exit 0 when all were read, 2 when one could not be.

    From ``settings`` only ``[trust] weak_algorithms`` is used (anchors and CRLs come from
    the command line)."""
    weak = getattr(getattr(settings, "trust", None), "weak_algorithms", "indeterminate")
    trust = TrustArgs(
        anchors=list(args.trust or []),
        crls=list(args.crl or []),
        soft_fail=bool(args.soft_fail),
        weak_algorithms=weak,
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
