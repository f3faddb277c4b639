"""SPF (RFC 7208) with pyspf, for the MAIL FROM and HELO identities.

pyspf is the reference implementation (by one of the RFC's authors) and passes the RFC
test suite; it has no async interface, so a check runs in a worker thread and its DNS
function, which pyspf looks up as the module's `DNSLookup`, asks the gateway's resolver on
the event loop (`lookups.from_thread`). That function is replaced once, process-wide, by one
that uses the current thread's look-up function and falls back to pyspf's own otherwise.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import spf

from gateway.delivery.route import MxResolver
from gateway.senderauth.lookups import Deadline, DnsTempError, from_thread

_local = threading.local()
_original = spf.DNSLookup
_lock = threading.Lock()
_installed = False

Lookup = Callable[[str, str], list[object]]

# SPF threads mostly wait for DNS answers: a pool of their own, so a burst of checks against
# slow DNS does not take the default executor's few threads from everything else.
_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="spf")


def _dns_lookup(name: str, qtype: str, strict: Any = True, timeout: float = 20) -> list[Any]:
    fn: Lookup | None = getattr(_local, "lookup", None)
    if fn is None:
        return _original(name, qtype, strict, timeout)
    try:
        records = fn(name, qtype)
    except DnsTempError as e:
        raise spf.TempError(f"DNS {e}") from None
    out: list[Any] = []
    for rdata in records:
        if qtype in ("A", "AAAA"):
            out.append(((name, qtype), rdata.address))  # type: ignore[attr-defined]
        elif qtype == "MX":
            out.append(((name, qtype), (rdata.preference, rdata.exchange)))  # type: ignore[attr-defined]
        elif qtype == "PTR":
            out.append(((name, qtype), rdata.target.to_text(True)))  # type: ignore[attr-defined]
        elif qtype in ("TXT", "SPF"):
            out.append(((name, qtype), rdata.strings))  # type: ignore[attr-defined]
    return out


def _install() -> None:
    global _installed
    with _lock:
        if not _installed:
            spf.DNSLookup = _dns_lookup
            _installed = True


def _check_in_thread(lookup: Lookup, ip: str, sender: str, helo: str, seconds: float) -> str:
    _local.lookup = lookup
    try:
        q = spf.query(i=ip, s=sender, h=helo, timeout=seconds, querytime=seconds)
        result, _code, _text = q.check()
        return str(result)
    except Exception:  # pyspf raises on input it cannot parse (e.g. a bad IP)
        return "permerror"
    finally:
        _local.lookup = None


async def spf_result(
    resolver: MxResolver, ip: str, sender: str, helo: str, deadline: Deadline
) -> str:
    """pass | fail | softfail | neutral | none | permerror | temperror for `sender` (an
    empty sender checks postmaster@`helo`, RFC 7208 §2.4)."""
    _install()
    loop = asyncio.get_running_loop()
    seconds = max(deadline.left(), 0.1)

    def lookup(name: str, qtype: str) -> list[object]:
        return from_thread(loop, resolver, name, qtype, deadline)

    try:
        return await asyncio.wait_for(
            loop.run_in_executor(_POOL, _check_in_thread, lookup, ip, sender, helo, seconds),
            seconds + 3,
        )
    except TimeoutError:
        return "temperror"
