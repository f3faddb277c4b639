"""Relay rules of DESIGN §3 as pure functions over an address and a snapshot of what is local.

A client in `relay_networks` or authenticated may send anywhere. Anyone else may send only to
local recipients: the processing addresses, agency inbox addresses, postmaster, and any address
at an agency's mail domain (inbound mail the gateway forwards). An unknown address at a local
domain is `550 5.1.1`; anything else is `550 5.7.1 relay denied`.
Routing tricks (`user%host@`, `host!user@`, quoted `"a@b"@`) never turn a local domain into a
foreign destination: the address is judged by its final domain and, for untrusted clients, a
local part carrying routing characters is refused outright.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import idna

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ROUTING_CHARS = frozenset("%!@")
# Characters that read as `@` or `.` but are not: `vanban＠chinhphu.gov.vn` looks local to a
# person and is not to a mail server. Never part of an address the gateway accepts.
AT_LOOKALIKES = frozenset("\uff20\ufe6b")  # ＠ ﹫
DOT_LOOKALIKES = frozenset("\u3002\uff0e\uff61\u2024\ufe52")  # 。 ． ｡ ․ ﹒


@dataclass(frozen=True)
class Address:
    local: str  # unquoted when the quoted form was only quoting
    domain: str  # lower case, no trailing dot

    @property
    def key(self) -> str:
        """What local addresses are compared by (local parts compared case-insensitively)."""
        return f"{self.local.lower()}@{self.domain}"


@dataclass(frozen=True)
class LocalDirectory:
    """A snapshot of the addresses and domains the gateway accepts mail for from anyone."""

    processing: frozenset[str] = frozenset()
    local_domains: frozenset[str] = frozenset()
    agency_domains: frozenset[str] = frozenset()
    agency_addresses: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls,
        processing: Iterable[str],
        local_domains: Iterable[str],
        agency_domains: Iterable[str] = (),
        agency_addresses: Iterable[str] = (),
    ) -> LocalDirectory:
        return cls(
            processing=frozenset(a.key for a in map(parse_address, processing) if a),
            local_domains=frozenset(normalise_domain(d) for d in local_domains),
            agency_domains=frozenset(normalise_domain(d) for d in agency_domains),
            agency_addresses=frozenset(a.key for a in map(parse_address, agency_addresses) if a),
        )


def normalise_domain(domain: str) -> str:
    return domain.strip().lower().rstrip(".")


def parse_address(addr: str) -> Address | None:
    """Split an addr-spec at its last `@`; None when it is not an address with a domain."""
    local, at, domain = addr.strip().strip("<>").rpartition("@")
    domain = normalise_domain(domain)
    if not at or not local or not domain or has_surrogates(addr) or has_controls(addr):
        return None
    if len(local) >= 2 and local[0] == '"' and local[-1] == '"':
        inner = local[1:-1]
        out, escaped = [], False
        for ch in inner:
            if escaped or ch != "\\":
                out.append(ch)
                escaped = False
            else:
                escaped = True
        local = "".join(out)
    return Address(local, domain)


def has_controls(s: str) -> bool:
    """NUL, CR, LF and friends have no place in an address (and PostgreSQL text refuses NUL)."""
    return any(ord(c) < 32 or c == "\x7f" for c in s)


def has_surrogates(s: str) -> bool:
    """aiosmtpd decodes SMTPUTF8 arguments with surrogateescape: invalid UTF-8 shows up here."""
    try:
        s.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def client_may_relay(ip: str | None, networks: Iterable[IPNetwork], authenticated: bool) -> bool:
    if authenticated:
        return True
    if not ip:
        return False
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == n.version and addr in n for n in networks)


def check_international(addr: str, smtputf8: bool) -> str | None:
    """The rules for non-ASCII addresses (RFC 6531): only after `MAIL FROM:<…> SMTPUTF8`,
    with a domain that is valid IDNA 2008, and never with a look-alike of `@` anywhere or of
    `.` in the domain. None when *addr* passes (every ASCII address does)."""
    if addr.isascii():
        return None
    if AT_LOOKALIKES & set(addr):
        return f"553 5.1.3 <{addr}>: a look-alike of '@' is not an address separator"
    if not smtputf8:
        return f"553 5.6.7 <{addr}>: a non-ASCII address needs SMTPUTF8"
    a = parse_address(addr)
    if a is None or a.domain.isascii():
        return None
    if DOT_LOOKALIKES & set(a.domain):
        return f"553 5.1.2 <{addr}>: a look-alike of '.' in the domain"
    try:
        idna.encode(a.domain, uts46=False)
    except idna.IDNAError:
        return f"553 5.1.2 <{addr}>: the domain is not a valid internationalised name"
    return None


def check_recipient(
    addr: str, local: LocalDirectory, may_relay: bool, smtputf8: bool = False
) -> str | None:
    """None when the recipient is acceptable, else the SMTP reply that refuses it."""
    a = parse_address(addr)
    if a is None:
        if has_surrogates(addr):
            return "553 5.6.7 Recipient address is not valid UTF-8"
        return "553 5.1.3 Bad recipient address syntax"
    refusal = check_international(addr, smtputf8)
    if refusal:
        return refusal
    key = a.key
    if key in local.processing or key in local.agency_addresses:
        return None
    routing = bool(ROUTING_CHARS & set(a.local))
    if a.domain in local.agency_domains:
        if routing and not may_relay:
            return f"550 5.7.1 <{addr}>: relay denied (routing characters in the local part)"
        return None
    if a.domain in local.local_domains:
        if a.local.lower() == "postmaster":
            return None
        return f"550 5.1.1 <{addr}>: recipient address unknown"
    if may_relay:
        return None
    return f"550 5.7.1 <{addr}>: relay denied"


def check_sender(addr: str, smtputf8: bool = False) -> str | None:
    """Any sender, the null sender `<>` included (bounces), as long as it is valid UTF-8 and
    passes the rules for international addresses."""
    if has_surrogates(addr):
        return "553 5.6.7 Sender address is not valid UTF-8"
    if has_controls(addr):
        return "553 5.1.7 Bad sender address syntax"
    return check_international(addr, smtputf8)
