"""DMARC (RFC 7489): the policy record, identifier alignment, and the result.

A small evaluator of our own over the SPF and DKIM results already in hand: the rules are
short (§6.3 tags, §3.1 alignment, §6.6.3 record discovery) and writing them here keeps every
look-up on the gateway's resolver. Organisational domains come from the Public Suffix List
(publicsuffixlist, which ships a current copy of the list and needs no download).
`pct` sampling is not applied: the policy applies to every failing message.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import getaddresses

from publicsuffixlist import PublicSuffixList

from gateway.delivery.route import MxResolver
from gateway.senderauth.lookups import Deadline, DnsTempError, txt
from gateway.senderauth.results import DkimResult

_PSL = PublicSuffixList()
POLICIES = ("none", "quarantine", "reject")


def org_domain(domain: str) -> str:
    """The organisational domain (RFC 7489 §3.2): one label below the public suffix."""
    domain = domain.lower().rstrip(".")
    return _PSL.privatesuffix(domain) or domain


def aligned(a: str, b: str, mode: str) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if not a or not b:
        return False
    return a == b if mode == "s" else org_domain(a) == org_domain(b)


@dataclass(frozen=True)
class DmarcRecord:
    p: str
    sp: str
    adkim: str
    aspf: str
    found_at: str  # the domain whose _dmarc record this is


def parse_record(text: str, found_at: str) -> DmarcRecord | None:
    """A DMARC record, or None when `text` is not a usable one (no v=DMARC1 first, or no
    valid p=)."""
    tags: dict[str, str] = {}
    for i, part in enumerate(text.split(";")):
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if i == 0:
            if key != "v" or value != "DMARC1":
                return None
            continue
        if sep and key and key not in tags:
            tags[key] = value
    p = tags.get("p", "").lower()
    if p not in POLICIES:
        return None  # §6.6.3: without a valid p= (and no rua) the record is ignored
    sp = tags.get("sp", "").lower()
    return DmarcRecord(
        p=p,
        sp=sp if sp in POLICIES else p,
        adkim="s" if tags.get("adkim", "").lower() == "s" else "r",
        aspf="s" if tags.get("aspf", "").lower() == "s" else "r",
        found_at=found_at,
    )


async def find_record(resolver: MxResolver, domain: str, deadline: Deadline) -> DmarcRecord | None:
    """§6.6.3: _dmarc.<From domain>, else _dmarc.<organisational domain>. Raises DnsTempError."""
    for name in dict.fromkeys((domain, org_domain(domain))):
        records = [r for r in await txt(resolver, f"_dmarc.{name}", deadline)]
        records = [r for r in records if r.strip().startswith("v=DMARC1")]
        if len(records) == 1:
            return parse_record(records[0], name)
        if len(records) > 1:
            return None  # more than one: as if none (§6.6.3 step 4)
    return None


def from_domains(header_from: list[str]) -> list[str]:
    """The domains of the From header's addresses (RFC 5322 allows several)."""
    out = []
    for _, addr in getaddresses(header_from):
        domain = addr.rpartition("@")[2].strip().rstrip(".").lower()
        if domain:
            out.append(domain)
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class DmarcOutcome:
    result: str  # pass | fail | none | temperror | permerror
    policy: str  # the p= or sp= that applies ('' when no record)
    from_domain: str
    reason: str
    aligned: bool = False  # SPF or DKIM passed for the From domain (relaxed without a record)


async def evaluate(
    resolver: MxResolver,
    from_header: list[str],
    *,
    spf: str,
    spf_domain: str,
    dkim: list[DkimResult],
    deadline: Deadline,
) -> DmarcOutcome:
    domains = from_domains(from_header)
    if len(domains) != 1:
        why = "no From domain" if not domains else "From names several domains"
        return DmarcOutcome("permerror", "", ",".join(domains), why)
    domain = domains[0]
    try:
        record = await find_record(resolver, domain, deadline)
    except DnsTempError as e:
        return DmarcOutcome("temperror", "", domain, f"DMARC record look-up failed: {e}")
    if record is None:
        ok = any(k.result == "pass" and aligned(k.domain, domain, "r") for k in dkim) or (
            spf == "pass" and aligned(spf_domain, domain, "r")
        )
        return DmarcOutcome("none", "", domain, f"{domain} publishes no DMARC record", ok)
    policy = record.p if record.found_at == domain else record.sp
    if any(k.result == "pass" and aligned(k.domain, domain, record.adkim) for k in dkim):
        return DmarcOutcome("pass", policy, domain, "aligned DKIM signature", True)
    if spf == "pass" and aligned(spf_domain, domain, record.aspf):
        return DmarcOutcome("pass", policy, domain, "aligned SPF", True)
    # A failure that a look-up which could not be made might have turned into a pass is
    # not a failure yet (the sender will retry).
    if any(k.result == "temperror" and aligned(k.domain, domain, record.adkim) for k in dkim) or (
        spf == "temperror" and aligned(spf_domain, domain, record.aspf)
    ):
        return DmarcOutcome("temperror", policy, domain, "SPF or DKIM look-up failed")
    why = f"neither SPF ({spf}, {spf_domain or 'no domain'}) nor DKIM"
    passed = [k.domain for k in dkim if k.result == "pass"]
    why += f" (valid for {', '.join(passed)})" if passed else ""
    return DmarcOutcome("fail", policy, domain, f"{why} aligned with From domain {domain}")
