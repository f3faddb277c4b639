"""A small authoritative DNS server on 127.0.0.1 for tests (dnspython builds the replies).

MX records for the domains given (an empty list publishes a null MX, RFC 7505), TXT records
(SPF, DKIM keys, DMARC policies; a long one is split into 255-byte strings as DNS requires)
and A records; NXDOMAIN with an SOA (so resolvers may cache the answer, RFC 2308) for every
other name. Every question is counted by name, so a test can see what reached the server and
what a cache answered.
"""

from __future__ import annotations

import asyncio
import collections

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

TTL = 300


class LoopbackDns(asyncio.DatagramProtocol):
    def __init__(
        self,
        mx: dict[str, list[tuple[int, str]]],
        txt: dict[str, list[str]] | None = None,
        a: dict[str, list[str]] | None = None,
    ) -> None:
        self.mx = mx
        self.txt = txt or {}
        self.a = a or {}
        self.asked: collections.Counter[str] = collections.Counter()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port = int(transport.get_extra_info("sockname")[1])

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        q = query.question[0]
        name = q.name.to_text().rstrip(".").lower()
        self.asked[name] += 1
        if name in self.mx and q.rdtype == dns.rdatatype.MX:
            records = self.mx[name] or [(0, ".")]
            texts = [
                f"{pref} {host.rstrip('.')}." if host != "." else "0 ." for pref, host in records
            ]
            reply.answer.append(dns.rrset.from_text(q.name, TTL, "IN", "MX", *texts))
        elif name in self.txt and q.rdtype == dns.rdatatype.TXT:
            records = [_txt_rdata(t) for t in self.txt[name]]
            reply.answer.append(dns.rrset.from_rdata(q.name, TTL, *records))
        elif name in self.a and q.rdtype == dns.rdatatype.A:
            reply.answer.append(dns.rrset.from_text(q.name, TTL, "IN", "A", *self.a[name]))
        elif name not in self.mx and name not in self.txt and name not in self.a:
            reply.set_rcode(dns.rcode.NXDOMAIN)
            soa = "ns.test. hostmaster.test. 1 3600 600 86400 300"
            reply.authority.append(dns.rrset.from_text("test.", TTL, "IN", "SOA", soa))
        assert self.transport is not None
        self.transport.sendto(reply.to_wire(), addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _txt_rdata(text: str) -> dns.rdtypes.ANY.TXT.TXT:
    """One TXT record as strings of at most 255 bytes each (RFC 1035 §3.3.14)."""
    data = text.encode()
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks)


async def start_dns(
    mx: dict[str, list[tuple[int, str]]],
    txt: dict[str, list[str]] | None = None,
    a: dict[str, list[str]] | None = None,
) -> LoopbackDns:
    loop = asyncio.get_running_loop()
    _, server = await loop.create_datagram_endpoint(
        lambda: LoopbackDns(mx, txt, a), local_addr=("127.0.0.1", 0)
    )
    return server
