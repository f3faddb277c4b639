"""From what was found (analysis + signature reports) to what is stored and done.

Pure: verdicts are aggregated, the policy decides, routing picks destinations, and the
result is one `store.results.MessageResult` with its events, plus the notice for the sender.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from config import Settings
from gateway.pipeline.analyse import ContentAnalysis, DocPlan
from gateway.pipeline.policy import Decision, DocumentCheck, decide, describe
from gateway.pipeline.routing import (
    AgencyIndex,
    RouteInput,
    RouteResult,
    most_urgent,
    priority_of,
    route,
)
from signing import SignatureReport, aggregate
from store.results import DeliveryRow, DocumentRow, MessageResult, SignatureRow


@dataclass(frozen=True)
class Envelope:
    """The stored envelope of the message being processed."""

    message_id: int
    source: str
    mail_from: str
    rcpt_to: Sequence[str]


@dataclass
class Outcome:
    result: MessageResult
    decision: Decision
    routing: RouteResult | None
    notice: str  # accepted | held | quarantined | rejected
    notice_detail: dict[str, Any] = field(default_factory=dict)


def signature_row(rep: SignatureReport) -> SignatureRow:
    return SignatureRow(
        format=rep.format,
        verdict=rep.verdict,
        reason=rep.reason,
        signer_cn=rep.signer_cn,
        signer_o=rep.signer_o,
        signer_uid=rep.signer_uid,
        serial=rep.serial,
        issuer_cn=rep.issuer_cn,
        cert_sha256=rep.cert_sha256,
        signing_time=rep.signing_time,
        signing_time_source=rep.signing_time_source,
        covers_whole_file=rep.covers_whole_file,
        detail=rep.detail or None,
    )


def _label(d: DocPlan) -> str:
    return d.filename or f"part {d.part_path}"


def document_verdicts(
    docs: Sequence[DocPlan], reports: dict[int, list[SignatureReport]]
) -> dict[int, str]:
    """Each document's verdict: its own signatures and those of a detached or enveloping
    signature that covers it; `malformed` for an unreadable unsigned file; else `unsigned`."""
    covering: dict[int, list[str]] = {}
    for d in docs:
        for target in d.covers:
            covering.setdefault(target, []).extend(r.verdict for r in reports.get(d.index, []))
    out: dict[int, str] = {}
    for d in docs:
        verdicts = [r.verdict for r in reports.get(d.index, [])] + covering.get(d.index, [])
        if not verdicts and d.malformed:
            verdicts = ["malformed"]
        out[d.index] = aggregate(verdicts)
    return out


def build_outcome(
    env: Envelope,
    analysis: ContentAnalysis,
    reports: dict[int, list[SignatureReport]],
    smime_reports: list[SignatureReport],
    agencies: AgencyIndex,
    settings: Settings,
) -> Outcome:
    docs = analysis.docs
    verdict_of = document_verdicts(docs, reports)
    smime_verdict = aggregate(r.verdict for r in smime_reports) if smime_reports else None

    all_verdicts = [r.verdict for rs in reports.values() for r in rs]
    all_verdicts += [r.verdict for r in smime_reports]
    if analysis.malformed or any(d.malformed for d in docs):
        all_verdicts.append("malformed")
    message_verdict = aggregate(all_verdicts)
    urgency = most_urgent([analysis.message_urgency, *(d.facts.urgency for d in docs)])

    checks = [
        DocumentCheck(
            label=_label(d),
            detected_type=d.detected_type,
            # An S/MIME signature over the whole mail signs its attachments too.
            verdict=smime_verdict
            if verdict_of[d.index] == "unsigned" and smime_verdict
            else verdict_of[d.index],
            secrecy=d.facts.secrecy,
            kind=d.facts.kind,
            unreadable=d.facts.unreadable,
        )
        for d in docs
    ]
    if analysis.message_secrecy:  # a mark on the mail itself, with or without documents
        checks.append(
            DocumentCheck(
                label="thư (tiêu đề/nội dung)",
                detected_type="eml",
                verdict=smime_verdict or "unsigned",
                secrecy=analysis.message_secrecy,
                kind=None,
            )
        )
    decision = decide(checks, settings.policy, message_verdict=message_verdict)

    events: list[tuple[str, dict[str, Any]]] = [
        (
            "parsed",
            {
                "documents": len(docs),
                "malformed": analysis.malformed,
                "defects": analysis.defects[:50],
                "smime": analysis.smime.kind if analysis.smime else None,
            },
        ),
        (
            "classified",
            {"documents": [_doc_summary(d) for d in docs][:100], "urgency": urgency},
        ),
        (
            "verified",
            {
                "verdict": message_verdict,
                "documents": {d.part_path: verdict_of[d.index] for d in docs},
                "smime": smime_verdict,
                "signatures": sum(len(v) for v in reports.values()) + len(smime_reports),
            },
        ),
    ]

    routing: RouteResult | None = None
    deliveries: list[DeliveryRow] = []
    reasons = list(decision.reasons)
    action = decision.action
    if action in ("forward", "hold"):
        routing = route(agencies, _route_input(env, analysis, settings))
        state = "queued" if action == "forward" else "held"
        priority = priority_of(urgency)
        deliveries = [
            DeliveryRow(d.recipient, d.agency_code, priority=priority, state=state)
            for d in routing.destinations
        ]
        if deliveries:
            events.append(("routed", routing.to_dict()))
        elif action == "forward":
            action, reasons = "hold", ["no_route"]
        else:
            reasons.append("no_route")
    final = Decision(action, reasons)

    detail: dict[str, Any] = {"reasons": reasons}
    if reasons and final.action != "forward":
        detail["reason"] = describe(reasons)
    if routing is not None:
        detail["unresolved"] = routing.unresolved
        detail["destinations"] = [d.recipient for d in routing.destinations]
    if final.action == "hold":
        events.append(("held", detail))
    elif final.action in ("quarantine", "reject"):
        events.append(("quarantined", {**detail, "action": final.action}))

    result = MessageResult(
        message_id=env.message_id,
        state=final.state,
        verdict=message_verdict,
        urgency=urgency,
        documents=[_document_row(d, verdict_of[d.index], reports) for d in docs],
        message_signatures=[signature_row(r) for r in smime_reports],
        deliveries=deliveries,
        events=events,
    )
    return Outcome(result, final, routing, final.notice, detail)


def _route_input(env: Envelope, analysis: ContentAnalysis, settings: Settings) -> RouteInput:
    to_codes: list[str] = []
    lines: list[str] = []
    for d in analysis.docs:
        to_codes.extend(d.facts.to_codes)
        lines.extend(d.facts.recipients)
    return RouteInput(
        rcpt_to=list(env.rcpt_to),
        subject=analysis.subject,
        edxml_to_codes=to_codes,
        recipient_lines=lines,
        processing_addresses=frozenset(settings.gateway.processing_addresses),
        local_domains=frozenset(settings.gateway.local_domains),
        content_routing=env.source == "imap",
    )


def _doc_summary(d: DocPlan) -> dict[str, Any]:
    f = d.facts
    return {
        "part": d.part_path,
        "filename": d.filename,
        "type": d.detected_type,
        "kind": f.kind,
        "number": f.number,
        "notation": f.notation,
        "urgency": f.urgency,
        "secrecy": f.secrecy,
        "unreadable": f.unreadable,
    }


def _document_row(
    d: DocPlan, verdict: str, reports: dict[int, list[SignatureReport]]
) -> DocumentRow:
    f = d.facts
    return DocumentRow(
        part_path=d.part_path,
        filename=d.filename,
        declared_type=d.declared_type,
        detected_type=d.detected_type,
        size=d.size,
        sha256=d.sha256,
        facts={
            "kind": f.kind,
            "kind_abbr": f.kind_abbr,
            "number": f.number,
            "year": f.year,
            "notation": f.notation,
            "issuer": f.issuer,
            "place": f.place,
            "doc_date": f.date,
            "subject": f.subject,
            "signer": f.signer,
            "urgency": f.urgency,
            "secrecy": f.secrecy,
            "recipients": list(f.recipients),
            "agency_codes": list(f.agency_codes),
            "unreadable": f.unreadable,
        },
        sources=dict(f.sources),
        confidence=dict(f.confidence),
        flags=list(f.flags),
        defects=list(d.defects),
        # Unread is said before any signature verdict (the signatures keep theirs).
        verdict="unreadable" if f.unreadable else verdict,
        signatures=[signature_row(r) for r in reports.get(d.index, [])],
    )
