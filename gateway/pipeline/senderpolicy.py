"""What sender authentication adds to the policy decision (DESIGN §3, issue 14).

The SMTP handler already refused what must be refused (DMARC reject, DNS temperror) and
stored the action for the rest (`gateway.senderauth.policy.decide`); here a stored `hold`
joins the document findings, and the strictest action wins as for any other finding.
"""

from __future__ import annotations

from typing import Any

from gateway.pipeline.policy import Action, Decision, strictest


def sender_findings(auth_results: dict[str, Any] | None) -> list[tuple[Action, str]]:
    if not auth_results or auth_results.get("action") != "hold":
        return []
    domain = auth_results.get("from_domain") or "?"
    policy = auth_results.get("dmarc_policy") or "none"
    return [("hold", f"dmarc:{policy}:{domain}")]


def with_sender_findings(decision: Decision, auth_results: dict[str, Any] | None) -> Decision:
    found = sender_findings(auth_results)
    if not found:
        return decision
    actions = [decision.action, *(a for a, _ in found)]
    action = strictest(actions)
    reasons = (list(decision.reasons) if decision.action == action else []) + [
        r for a, r in found if a == action
    ]
    return Decision(action, reasons)
