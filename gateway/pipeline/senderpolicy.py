"""What the sender's identity adds to the policy decision (DESIGN §3, issue 14).

Two findings: a DMARC failure the SMTP handler chose to hold (`gateway.senderauth.policy`
stored the action), and Directive 15 §3's official exchange: documents whose authenticated
From domain is outside `[policy] official_domains` are flagged `sender_not_official`, and
held when `unofficial_sender = "hold"`. The strictest action wins, as for any finding.

The authenticated From domain: for a checked message, its From domain when DMARC (or, for a
domain without a DMARC record, an aligned SPF or DKIM pass) proved it, else none at all; for
mail the gateway trusts (agency relays, staff who logged in, IMAP accounts it was given) the
From domain as written.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import getaddresses
from typing import Any

from config.settings import PolicySettings
from gateway.pipeline.policy import Action, Decision, strictest
from store.senders import Rule, match

FLAG_NOT_OFFICIAL = "sender_not_official"
FLAG_DENIED = "sender_denied"


@dataclass(frozen=True)
class SenderFindings:
    findings: list[tuple[Action, str]] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)


def is_official(domain: str | None, official_domains: list[str]) -> bool:
    """Suffix match on whole labels: `vp.chinhphu.gov.vn` is in `gov.vn`, `xgov.vn` is not."""
    if not domain:
        return False
    d = domain.lower().rstrip(".")
    return any(d == o or d.endswith("." + o) for o in official_domains)


def authenticated_from_domain(
    auth_results: dict[str, Any] | None, header_from: str | None
) -> str | None:
    if auth_results is not None:
        ok = auth_results.get("dmarc") == "pass" or auth_results.get("from_aligned")
        return (auth_results.get("from_domain") or None) if ok else None
    domains = {a.rpartition("@")[2].lower() for a in _addresses(header_from or "")}
    return domains.pop() if len(domains) == 1 else None


def _from_address(header_from: str | None) -> str | None:
    addrs = [a for a in _addresses(header_from or "") if "@" in a]
    return addrs[0].lower() if len(addrs) == 1 else None


@functools.lru_cache(maxsize=1024)
def _addresses(header_from: str) -> tuple[str, ...]:
    """The addresses a From header names. Kept per header text: an agency's few senders
    write the same From again and again, and the email package's address parser costs
    more than the rest of the sender checks."""
    return tuple(a for _, a in getaddresses([header_from]) if a)


def sender_findings(
    auth_results: dict[str, Any] | None,
    header_from: str | None,
    *,
    carries_documents: bool,
    policy: PolicySettings,
    rules: Sequence[Rule] = (),
    mail_from: str = "",
) -> SenderFindings:
    """`rules`: the allow/deny list (store.senders). A deny rule matching the claimed From
    or the envelope sender holds the message; an allow rule matching the authenticated From
    exempts it from the official-domain rule."""
    findings: list[tuple[Action, str]] = []
    flags: list[str] = []
    if auth_results and auth_results.get("action") == "hold":
        domain = auth_results.get("from_domain") or "?"
        findings.append(("hold", f"dmarc:{auth_results.get('dmarc_policy') or 'none'}:{domain}"))
    claimed = _from_address(header_from)
    for who in (claimed, mail_from or None):
        rule = match(list(rules), who)
        if rule is not None and rule.action == "deny":
            flags.append(FLAG_DENIED)
            findings.append(("hold", f"{FLAG_DENIED}:{rule.pattern}"))
            break
    if carries_documents:
        domain = authenticated_from_domain(auth_results, header_from)
        proven = claimed if claimed and domain and claimed.endswith("@" + domain) else domain
        rule = match(list(rules), proven)
        allowed = rule is not None and rule.action == "allow"
        if not allowed and not is_official(domain, policy.official_domains):
            flags.append(FLAG_NOT_OFFICIAL)
            shown = domain or (auth_results or {}).get("from_domain") or "?"
            findings.append((policy.unofficial_sender, f"{FLAG_NOT_OFFICIAL}:{shown}"))
    return SenderFindings(findings, flags)


def with_sender_findings(decision: Decision, sender: SenderFindings) -> Decision:
    """`decision` joined with the sender findings; a finding that only forwards adds no
    reason (the flag records it)."""
    found = [(a, r) for a, r in sender.findings if a != "forward"]
    if not found:
        return decision
    action = strictest([decision.action, *(a for a, _ in found)])
    reasons = (list(decision.reasons) if decision.action == action else []) + [
        r for a, r in found if a == action
    ]
    return Decision(action, reasons)
