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
    RouteFacts,
    RouteResult,
    most_urgent,
    priority_of,
    route,
)
from gateway.pipeline.senderpolicy import sender_findings, with_sender_findings
from gateway.pipeline.status import NO_NOTICE, StatusInfo
from gateway.pipeline.verdicts import (
    document_signatures,
    document_verdicts,
    e_document_for,
    shown_verdict,
)
from signing import EDocumentCheck, SignatureReport, aggregate
from store.results import DeliveryRow, DocumentRow, MessageResult, SignatureRow
from store.senders import Rule


@dataclass(frozen=True)
class Envelope:
    """The stored envelope of the message being processed."""

    message_id: int
    source: str
    mail_from: str
    rcpt_to: Sequence[str]
    auth_results: dict[str, Any] | None = None  # inbound SPF/DKIM/DMARC, None: unchecked
    header_from: str | None = None


@dataclass
class Outcome:
    result: MessageResult
    decision: Decision
    routing: RouteResult | None
    notice: str  # accepted | held | quarantined | rejected
    notice_detail: dict[str, Any] = field(default_factory=dict)
    status: StatusInfo | None = None  # an edXML status package (see gateway.pipeline.status)


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


def e_document_of(d: DocPlan, signatures: list[SignatureReport]) -> EDocumentCheck | None:
    """The Decree 30 check for a pipeline document: the same call `edocgw check` makes."""
    return e_document_for(d.detected_type, d.facts, signatures)


def build_outcome(
    env: Envelope,
    analysis: ContentAnalysis,
    reports: dict[int, list[SignatureReport]],
    smime_reports: list[SignatureReport],
    agencies: AgencyIndex,
    settings: Settings,
    sender_rules: Sequence[Rule] = (),
) -> Outcome:
    docs = analysis.docs
    verdict_of = document_verdicts(docs, reports)
    signatures_of = document_signatures(docs, reports)
    e_document = {d.index: e_document_of(d, signatures_of[d.index]) for d in docs}
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
            e_document_problems=e.problems if (e := e_document[d.index]) is not None else None,
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
    sender = sender_findings(
        env.auth_results,
        env.header_from,
        carries_documents=any(c.is_document for c in checks),
        policy=settings.policy,
        rules=sender_rules,
        mail_from=env.mail_from,
    )
    decision = with_sender_findings(
        decide(checks, settings.policy, message_verdict=message_verdict), sender
    )

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
                # Decree 30 e-document check, shown whatever the policy does with it
                "e_documents": {
                    d.part_path: {"conformant": e.conformant, "problems": list(e.problems)}
                    for d in docs
                    if (e := e_document[d.index]) is not None
                },
                **({"flags": sender.flags} if sender.flags else {}),
            },
        ),
    ]

    facts = route_facts(analysis)
    routing: RouteResult | None = None
    deliveries: list[DeliveryRow] = []
    reasons = list(decision.reasons)
    action = decision.action
    if analysis.status is not None and action in ("forward", "hold"):
        action, reasons = "forward", []  # a status package is logged, never forwarded
    elif action in ("forward", "hold"):
        gw = settings.gateway
        inp = facts.input(env.rcpt_to, env.source, gw.processing_addresses, gw.local_domains)
        routing = route(agencies, inp)
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
        documents=[
            _document_row(d, verdict_of[d.index], reports, e_document[d.index]) for d in docs
        ],
        message_signatures=[signature_row(r) for r in smime_reports],
        deliveries=deliveries,
        events=events,
        route_input=facts.to_json(),
        edxml_ref=edxml_reference(analysis),
    )
    if analysis.status is not None:
        return Outcome(result, final, routing, NO_NOTICE, detail, status=analysis.status)
    return Outcome(result, final, routing, final.notice, detail)


def route_facts(analysis: ContentAnalysis) -> RouteFacts:
    """What routing reads of the content: the subject, the codes the edXML packages address
    (from the plan) and the documents' recipient lines (from their facts)."""
    return RouteFacts(
        subject=analysis.subject,
        edxml_to_codes=tuple(analysis.edxml_to_codes),
        recipient_lines=tuple(line for d in analysis.docs for line in d.facts.recipients),
    )


def edxml_reference(analysis: ContentAnalysis) -> dict[str, Any] | None:
    """What a status package answering the message's edXML document quotes (stored with the
    message, so the receipts need not read the mail again)."""
    ref = analysis.edxml
    if ref is None:
        return None
    day = ref.promulgation_date
    return {
        "from_code": ref.from_code,
        "document_id": ref.document_id,
        "code_number": ref.code_number,
        "code_notation": ref.code_notation,
        "promulgation_date": day.isoformat() if day else None,
    }


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
    d: DocPlan,
    verdict: str,
    reports: dict[int, list[SignatureReport]],
    e_document: EDocumentCheck | None = None,
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
            "parent_issuer": f.parent_issuer,
            "place": f.place,
            "doc_date": f.date,
            "subject": f.subject,
            "signer": f.signer,
            "signer_position": f.signer_position,
            "signer_competence": f.signer_competence,
            "meeting_start": f.meeting_start,
            "meeting_place": f.meeting_place,
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
        verdict=shown_verdict(verdict, f.unreadable),
        signatures=[signature_row(r) for r in reports.get(d.index, [])],
        e_document=e_document.to_dict() if e_document is not None else None,
    )
