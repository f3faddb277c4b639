"""The three inbound checks of one message, run concurrently within one time budget."""

from __future__ import annotations

import asyncio
from email.parser import BytesHeaderParser
from email.policy import compat32
from ipaddress import ip_address

from gateway.delivery.route import MxResolver
from gateway.senderauth.dkimcheck import dkim_results
from gateway.senderauth.dmarc import evaluate
from gateway.senderauth.lookups import Deadline
from gateway.senderauth.results import AuthResults
from gateway.senderauth.spfcheck import spf_result


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().strip("<>").rstrip(".").lower()


def helo_domain(helo: str) -> str:
    """The HELO name when it can be an SPF identity (a domain, not an address literal)."""
    h = helo.strip().rstrip(".").lower()
    if not h or "." not in h or h.startswith("["):
        return ""
    try:
        ip_address(h)
        return ""
    except ValueError:
        return h


def _plain_ip(ip: str) -> str:
    """An IPv4-mapped IPv6 peer as the IPv4 address SPF records name."""
    try:
        addr = ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    mapped = getattr(addr, "ipv4_mapped", None)
    return str(mapped or addr)


def from_header(raw: bytes) -> list[str]:
    head = BytesHeaderParser(policy=compat32).parsebytes(raw, headersonly=True)
    return [str(v) for v in head.get_all("From", [])]


async def check_sender(
    raw: bytes,
    *,
    ip: str,
    mail_from: str,
    helo: str,
    resolver: MxResolver,
    timeout: float,  # noqa: ASYNC109 (one budget shared by every look-up)
) -> AuthResults:
    """SPF for MAIL FROM and HELO, DKIM for every signature, then DMARC for the From
    domain. Never raises on what the client sent; DNS trouble is a temperror."""
    deadline = Deadline(timeout)
    ip = _plain_ip(ip)
    sender = "" if mail_from in ("", "<>") else mail_from
    hdom = helo_domain(helo)

    async def helo_spf() -> str:
        return await spf_result(resolver, ip, "", hdom, deadline) if hdom else "none"

    async def mailfrom_spf() -> str:
        if not sender:  # the null sender: SPF checks postmaster@HELO (RFC 7208 §2.4)
            return await helo_spf()
        return await spf_result(resolver, ip, sender, hdom or helo, deadline)

    spf_mf, spf_helo, dkim = await asyncio.gather(
        mailfrom_spf(), helo_spf(), dkim_results(raw, resolver, deadline)
    )
    spf_domain = _domain_of(sender) if sender else hdom
    outcome = await evaluate(
        resolver,
        await asyncio.to_thread(from_header, raw),
        spf=spf_mf,
        spf_domain=spf_domain,
        dkim=dkim,
        deadline=deadline,
    )
    return AuthResults(
        spf=spf_mf,
        spf_domain=spf_domain,
        helo=spf_helo,
        helo_domain=hdom,
        dkim=dkim,
        dmarc=outcome.result,
        from_domain=outcome.from_domain,
        dmarc_policy=outcome.policy,
        from_aligned=outcome.aligned,
        reason=outcome.reason,
    )
