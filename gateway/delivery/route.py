"""Where a delivery goes: the agency's smarthost, else `[delivery] smarthost`, else MX.

An agency route `lmtp://host:port` names a final mail store (Dovecot, Cyrus) spoken to in LMTP.

MX look-ups use dnspython's async resolver with a lifetime, so a dead DNS server is a
temporary failure after a bounded wait, and a domain that does not exist (or publishes a
null MX, RFC 7505) is a permanent one. One `MxResolver` serves a delivery service, with
dnspython's cache: answers are reused for their TTL and NXDOMAIN/no-data answers for the zone's
negative TTL (RFC 2308), so a queue of notices to one mistyped domain costs one look-up, not
one per delivery.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver

from gateway.delivery.smtp import Result, Target


@dataclass(frozen=True)
class RouteInput:
    recipient: str
    route: str | None  # the agency's route, None without an agency
    tls: str | None  # the agency's TLS policy


def split_hostport(value: str, default_port: int = 25) -> tuple[str, int]:
    value = value.removeprefix("smtp://").removeprefix("lmtp://")
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    return host.strip("[]"), int(port)


class MxResolver:
    def __init__(self, servers: list[tuple[str, int]] | None = None, cache_size: int = 4096):
        """`servers`: (address, port) of the DNS resolvers to ask; none: /etc/resolv.conf's."""
        try:
            self.resolver = dns.asyncresolver.Resolver(configure=not servers)
        except dns.resolver.NoResolverConfiguration:  # no /etc/resolv.conf: look-ups fail
            self.resolver = dns.asyncresolver.Resolver(configure=False)  # as temporary
        if servers:
            self.resolver.nameservers = [dns.nameserver.Do53Nameserver(a, p) for a, p in servers]
        self.resolver.cache = dns.resolver.LRUCache(cache_size)

    async def mx(self, domain: str, lifetime: float) -> dns.resolver.Answer:
        return await self.lookup(domain, "MX", lifetime)

    async def lookup(self, name: str, rdtype: str, lifetime: float) -> dns.resolver.Answer:
        """Any record type through the same servers and cache (SPF, DKIM and DMARC use TXT,
        A, AAAA, MX and PTR); raises dnspython's exceptions."""
        if not self.resolver.nameservers:
            raise dns.resolver.NoNameservers
        return await self.resolver.resolve(name, rdtype, lifetime=lifetime)


_SHARED: dict[tuple[tuple[str, int], ...], MxResolver] = {}


def shared_resolver(dns_servers: list[str]) -> MxResolver:
    """The process's one resolver for `[delivery] dns_servers`: delivery and the inbound
    sender checks share its servers and its cache."""
    servers = tuple(split_hostport(x, 53) for x in dns_servers)
    found = _SHARED.get(servers)
    if found is None:
        found = _SHARED[servers] = MxResolver(list(servers))
    return found


async def resolve(
    r: RouteInput, *, smarthost: str, require_tls: bool, dns_lifetime: float, mx: MxResolver
) -> list[Target] | Result:
    """The servers to try in order, or a failure `Result` when there is nowhere to go."""
    policy = r.tls or ("verify" if require_tls else "may")
    if r.route and r.route.startswith(("smtp://", "lmtp://")):
        host, port = split_hostport(r.route)
        return [Target(host, port, policy, lmtp=r.route.startswith("lmtp://"))]
    if smarthost:
        host, port = split_hostport(smarthost)
        return [Target(host, port, policy)]
    domain = r.recipient.rpartition("@")[2].rstrip(".").lower()
    if not domain:
        return Result("permanent", None, f"no domain in {r.recipient!r}", status="5.1.3")
    return await mx_targets(mx, domain, policy, dns_lifetime)


async def mx_targets(
    mx: MxResolver, domain: str, policy: str, lifetime: float
) -> list[Target] | Result:
    try:
        answer = await mx.mx(domain, lifetime)
    except dns.resolver.NXDOMAIN:
        return Result(
            "permanent", None, f"domain {domain} does not exist (DNS NXDOMAIN)", status="5.1.2"
        )
    except dns.resolver.NoAnswer:
        return [Target(domain, 25, policy)]  # implicit MX (RFC 5321 §5.1)
    except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.exception.DNSException) as e:
        return Result(
            "temporary",
            None,
            f"MX look-up for {domain} failed: {type(e).__name__}",
            unreachable=True,
            status="4.4.3",
        )
    records = sorted(answer, key=lambda rr: rr.preference)  # type: ignore[attr-defined]
    hosts = [str(rr.exchange).rstrip(".") for rr in records]  # type: ignore[attr-defined]
    if hosts == [""] or hosts == ["."]:
        return Result(
            "permanent", None, f"domain {domain} accepts no mail (null MX)", status="5.1.10"
        )
    return [Target(h, 25, policy) for h in hosts if h]
