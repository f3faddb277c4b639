"""The outcome of the inbound checks, as stored (jsonb) and as an Authentication-Results
header (RFC 8601), and the removal of forged headers claiming the gateway's authserv-id.

Removal works on the raw header block, line by line, so the original bytes of everything
else (and so every signature over them) are forwarded untouched.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

# RFC 8601 result keywords the gateway writes.
TEMPERROR = "temperror"


@dataclass(frozen=True)
class DkimResult:
    result: str  # pass | fail | neutral | policy | temperror | permerror
    domain: str  # d=
    selector: str  # s=
    reason: str = ""


@dataclass(frozen=True)
class AuthResults:
    spf: str  # result for MAIL FROM (or HELO for the null sender)
    spf_domain: str
    helo: str  # SPF result for the HELO identity
    helo_domain: str
    dkim: list[DkimResult] = field(default_factory=list)
    dmarc: str = "none"  # pass | fail | none | temperror | permerror
    from_domain: str = ""
    dmarc_policy: str = ""  # the domain's p= (or sp=) that applies: none | quarantine | reject
    from_aligned: bool = False  # an SPF or DKIM pass aligned with the From domain
    reason: str = ""  # why DMARC gave what it gave, for people
    action: str = "forward"  # forward | hold | reject | temperror (policy.answer)

    @property
    def dkim_summary(self) -> str:
        """One word: pass when any signature passed, else the first result, else none."""
        results = [d.result for d in self.dkim]
        if "pass" in results:
            return "pass"
        return results[0] if results else "none"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AuthResults:
        dkim = [DkimResult(**x) for x in d.get("dkim", [])]
        fields = {k: v for k, v in d.items() if k in cls.__dataclass_fields__ and k != "dkim"}
        return cls(dkim=dkim, **fields)


def _clean(value: str, limit: int = 200) -> str:
    """A value safe inside a header: printable ASCII without ';', '(' or ')'."""
    return "".join(c if 33 <= ord(c) < 127 and c not in ';()"\\' else "?" for c in value)[:limit]


def summary(d: dict[str, Any] | None) -> str:
    """`spf=pass dkim=pass dmarc=pass` for listings; '' for an unchecked message."""
    if not d:
        return ""
    r = AuthResults.from_dict(d)
    return f"spf={r.spf} dkim={r.dkim_summary} dmarc={r.dmarc}"


def result_clauses(d: dict[str, Any]) -> list[str]:
    """The resinfo clauses of RFC 8601 §2.2 for stored results."""
    r = AuthResults.from_dict(d)
    out = [f"spf={r.spf} smtp.mailfrom={_clean(r.spf_domain) or 'unknown'}"]
    if r.helo_domain:
        out.append(f"spf={r.helo} smtp.helo={_clean(r.helo_domain)}")
    if not r.dkim:
        out.append("dkim=none")
    for k in r.dkim:
        note = f" ({_clean(k.reason, 80).replace('?', ' ')})" if k.reason else ""
        out.append(
            f"dkim={k.result}{note} header.d={_clean(k.domain)} header.s={_clean(k.selector)}"
        )
    policy = f" (p={r.dmarc_policy})" if r.dmarc_policy else ""
    out.append(f"dmarc={r.dmarc}{policy} header.from={_clean(r.from_domain) or 'unknown'}")
    return out


def sender_auth_line(d: dict[str, Any] | None) -> str:
    """The stored results in one line for people (the clauses of our header, and why)."""
    if not d:
        return ""
    line = "; ".join(result_clauses(d))
    reason = AuthResults.from_dict(d).reason
    return f"{line} ({reason})" if reason else line


_HEADER_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.DOTALL)


def strip_own_results(raw: bytes, authserv_id: str) -> bytes:
    """`raw` without the Authentication-Results fields whose authserv-id is `authserv_id`
    (RFC 8601 §5: a border MTA removes those; only the gateway may write them). Every other
    byte stays as it was; with nothing to remove, `raw` itself is returned."""
    end = _header_end(raw)
    head = raw[:end]
    if b"authentication-results" not in head.lower():
        return raw
    own = authserv_id.lower().encode("ascii", "replace")
    fields: list[list[bytes]] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    kept = []
    for f in fields:
        m = _HEADER_LINE.match(f[0])
        whole = b"".join(f)
        if m and m.group(1).lower() == b"authentication-results":
            if _authserv_id(whole[m.end() :]) == own:
                continue
        kept.append(whole)
    if len(kept) == len(fields):
        return raw
    return b"".join(kept) + raw[end:]


def _authserv_id(value: bytes) -> bytes:
    """The authserv-id: the first token of the value, before ';' or white space (comments
    and folding before it are skipped)."""
    v = re.sub(rb"\([^)]*\)", b" ", value).strip()
    return re.split(rb"[;\s]", v, maxsplit=1)[0].lower()


def _header_end(raw: bytes) -> int:
    """Offset just past the header block (its blank line excluded). The bare-LF search stops
    where the CRLF blank line is: a whole-message search for a "\\n\\n" that CRLF mail never
    has cost every delivery of a 200 KB message a scan of all of it."""
    if raw.startswith((b"\r\n", b"\n")):
        return 0
    crlf = raw.find(b"\r\n\r\n")
    lf = raw.find(b"\n\n", 0, len(raw) if crlf < 0 else crlf + 2)
    if lf >= 0:  # found before the CRLF blank line, so it ends first
        return lf + 1
    return crlf + 2 if crlf >= 0 else len(raw)
