"""DNS for the sender checks, through the gateway's one resolver (`[delivery] dns_servers`).

Everything asks `gateway.delivery.route.MxResolver`: its servers, its cache (answers and
NXDOMAIN for their TTL) and its time limits. A name that does not exist or has no such record
is an empty answer; a timeout, SERVFAIL or no reachable server is `DnsTempError`, which the
checks report as `temperror` (never as a pass).
"""

from __future__ import annotations

import asyncio
import time

import dns.exception
import dns.resolver

from gateway.delivery.route import MxResolver


class DnsTempError(Exception):
    """The answer could not be had now; asking again later may work."""


class Deadline:
    """One time budget for all look-ups of one message."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


async def lookup(resolver: MxResolver, name: str, rdtype: str, deadline: Deadline) -> list[object]:
    """The records of `name` (rdata objects); [] when none exist."""
    lifetime = deadline.left()
    if lifetime <= 0:
        raise DnsTempError(f"no time left to look up {name} {rdtype}")
    try:
        answer = await resolver.lookup(name, rdtype, lifetime)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.resolver.YXDOMAIN:
        return []
    except (dns.exception.DNSException, OSError) as e:
        raise DnsTempError(f"{name} {rdtype}: {type(e).__name__}") from None
    return list(answer)


async def txt(resolver: MxResolver, name: str, deadline: Deadline) -> list[str]:
    """The TXT records of `name`, each one's strings joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2)."""
    out = []
    for rr in await lookup(resolver, name, "TXT", deadline):
        out.append(b"".join(rr.strings).decode("utf-8", "replace"))  # type: ignore[attr-defined]
    return out


def from_thread(
    loop: asyncio.AbstractEventLoop,
    resolver: MxResolver,
    name: str,
    rdtype: str,
    deadline: Deadline,
) -> list[object]:
    """`lookup` for code running in a worker thread (pyspf): the query runs on the
    gateway's event loop, the thread waits for it."""
    fut = asyncio.run_coroutine_threadsafe(lookup(resolver, name, rdtype, deadline), loop)
    try:
        return fut.result(max(deadline.left(), 0) + 2)
    except TimeoutError:
        fut.cancel()
        raise DnsTempError(f"{name} {rdtype}: timed out") from None
