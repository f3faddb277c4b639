"""DKIM (RFC 6376) on every signature of a message, with dkimpy.

dkimpy is the maintained Python DKIM implementation (RSA and Ed25519, RFC 8463). Its own
async path needs aiodns, a second DNS stack; instead each signature's key record is fetched
here through the gateway's resolver and handed to dkimpy's synchronous verifier, which runs
in a worker thread (hashing a large body is CPU work that must not block the event loop).
"""

from __future__ import annotations

import asyncio
import re

import dkim

from gateway.delivery.route import MxResolver
from gateway.senderauth.lookups import Deadline, DnsTempError, txt
from gateway.senderauth.results import DkimResult

MAX_SIGNATURES = 10  # more is an attack on the verifier, not a real message


def _signature_tags(raw: bytes) -> list[tuple[str, str]]:
    """(d=, s=) of each DKIM-Signature, top first; ('', '') for one that cannot be parsed."""
    out = []
    try:
        d = dkim.DKIM(raw)
    except Exception:
        return []
    for name, value in d.headers:
        if name.lower() != b"dkim-signature":
            continue
        try:
            tags = dkim.util.parse_tag_value(value)
            out.append(
                (
                    tags.get(b"d", b"").decode("ascii", "replace").lower(),
                    tags.get(b"s", b"").decode("ascii", "replace"),
                )
            )
        except Exception:
            out.append(("", ""))
    return out


def _verify_all(raw: bytes, records: dict[int, bytes]) -> dict[int, tuple[str, str]]:
    """Each signature whose key record is in `records`, on one parse of the message."""
    d = dkim.DKIM(raw)
    return {idx: _verify_one(d, idx, record) for idx, record in records.items()}


def _verify_one(d: dkim.DKIM, idx: int, record: bytes) -> tuple[str, str]:
    try:
        ok = d.verify(idx=idx, dnsfunc=lambda name, timeout=5: record)
    except dkim.KeyFormatError as e:
        return "permerror", _short(e)
    except dkim.ValidationError as e:
        # a changed body or an expired signature fails (RFC 6376 §6.1.3, §3.5 x=); a
        # malformed signature is a permanent error
        text = str(e)
        return ("fail" if "mismatch" in text or "past" in text else "permerror"), _short(e)
    except dkim.DKIMException as e:
        return "fail", _short(e)
    except Exception as e:  # dkimpy raises plain errors on some broken input
        return "permerror", _short(e)
    return ("pass", "") if ok else ("fail", "signature did not verify")


def _short(e: Exception) -> str:
    return re.sub(r"\s+", " ", str(e) or type(e).__name__)[:120]


async def dkim_results(raw: bytes, resolver: MxResolver, deadline: Deadline) -> list[DkimResult]:
    """One result per DKIM-Signature, top first (at most MAX_SIGNATURES)."""
    sigs = (await asyncio.to_thread(_signature_tags, raw))[:MAX_SIGNATURES]
    early: dict[int, DkimResult] = {}
    records: dict[int, bytes] = {}
    for idx, (domain, selector) in enumerate(sigs):
        if not domain or not selector:
            early[idx] = DkimResult("permerror", domain, selector, "no d= or s= tag")
            continue
        try:
            found = await txt(resolver, f"{selector}._domainkey.{domain}", deadline)
        except DnsTempError as e:
            early[idx] = DkimResult("temperror", domain, selector, str(e))
            continue
        if not found:
            early[idx] = DkimResult("permerror", domain, selector, "no key record")
            continue
        records[idx] = found[0].encode("utf-8")
    verified = await asyncio.to_thread(_verify_all, raw, records) if records else {}
    out = []
    for idx, (domain, selector) in enumerate(sigs):
        if idx in early:
            out.append(early[idx])
        else:
            result, reason = verified[idx]
            out.append(DkimResult(result, domain, selector, reason))
    return out
