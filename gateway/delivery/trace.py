"""Trace headers prepended to a forwarded message; the original bytes follow untouched.

Nothing inside the original changes, so document and S/MIME signatures still verify at the
destination. `X-Edocgw-Id` is derived from the message's row id and the gateway's hostname,
so every retry, from any gateway process sharing the database, carries the same id and a
receiving gateway can drop duplicates. The header block itself is stable across retries
(the Received date is the time of acceptance).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from email.utils import format_datetime
from typing import Any

from gateway.senderauth.results import result_clauses


def edocgw_id(message_id: int, hostname: str) -> str:
    digest = hashlib.sha256(f"edocgw:{hostname}:{message_id}".encode()).hexdigest()[:32]
    return f"{digest}@{hostname}"


def _clean(value: str) -> str:
    """Header-safe: no CR/LF (a peer string must never inject a header), printable ASCII."""
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in value)[:200]


def verdict_summary(message_verdict: str | None, document_verdicts: list[str | None]) -> str:
    counts = Counter(v or "unknown" for v in document_verdicts)
    docs = ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "none"
    return f"x-edocgw-signature={_clean(message_verdict or 'none')} (documents: {docs})"


def trace_headers(
    *,
    hostname: str,
    message_id: int,
    peer: str,
    source: str,
    recipient: str,
    received_at: dt.datetime,
    message_verdict: str | None,
    document_verdicts: list[str | None],
    eol: bytes = b"\r\n",
    auth_results: dict[str, Any] | None = None,
) -> bytes:
    """`auth_results`: the inbound SPF/DKIM/DMARC results (RFC 8601 clauses in the
    Authentication-Results header before the signature summary); None: not checked."""
    xid = edocgw_id(message_id, hostname)
    sep = ";" + eol.decode() + "\t"
    clauses = result_clauses(auth_results) if auth_results else []
    with_ = {"smtp": "ESMTP", "imap": "IMAP", "internal": "local"}.get(source, "ESMTP")
    lines = [
        f"Received: from {_clean(peer)}{eol.decode()}\tby {hostname} (edocgw) with {with_}"
        f" id {message_id}{eol.decode()}\tfor <{_clean(recipient)}>;"
        f" {format_datetime(received_at.astimezone(dt.UTC))}",
        f"X-Edocgw-Id: {xid}",
        f"Authentication-Results: {hostname}{sep}"
        + sep.join([*clauses, verdict_summary(message_verdict, document_verdicts)]),
    ]
    return b"".join(line.encode("ascii") + eol for line in lines)


def line_ending(raw: bytes) -> bytes:
    """The original's line ending, so the prepended headers match it."""
    nl = raw.find(b"\n")
    return b"\r\n" if nl <= 0 or raw[nl - 1 : nl] == b"\r" else b"\n"
