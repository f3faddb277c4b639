"""A small authoritative DNS server on 127.0.0.1 for MX tests (dnspython builds the replies).

MX records for the domains given (an empty list publishes a null MX, RFC 7505), NXDOMAIN with
an SOA (so resolvers may cache the answer, RFC 2308) for every other name; every question is
counted by name, so a test can see what reached the server and what a cache answered.
"""

from __future__ import annotations

import asyncio
import collections

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

TTL = 300


class LoopbackDns(asyncio.DatagramProtocol):
    def __init__(self, mx: dict[str, list[tuple[int, str]]]) -> None:
        self.mx = mx
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
        elif name not in self.mx:
            reply.set_rcode(dns.rcode.NXDOMAIN)
            soa = "ns.test. hostmaster.test. 1 3600 600 86400 300"
            reply.authority.append(dns.rrset.from_text("test.", TTL, "IN", "SOA", soa))
        assert self.transport is not None
        self.transport.sendto(reply.to_wire(), addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def start_dns(mx: dict[str, list[tuple[int, str]]]) -> LoopbackDns:
    loop = asyncio.get_running_loop()
    _, server = await loop.create_datagram_endpoint(
        lambda: LoopbackDns(mx), local_addr=("127.0.0.1", 0)
    )
    return server
