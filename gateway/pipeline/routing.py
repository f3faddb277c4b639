"""Where a message goes (DESIGN §6): a pure function over plain data.

Rules, in order of authority:
1. edXML ``To`` organ codes → agencies by code.
2. Envelope recipients whose address or domain belongs to an agency (relay traffic; the
   envelope address is kept as the recipient).
3. For mail to a processing address (or a gateway-local address): agency codes in the
   subject (``[000.00.00.H53]``); failing that, the documents' "Kính gửi"/"Nơi nhận" lines
   matched to agency names and aliases.
4. Nothing resolved → no destination (the caller holds the message and tells the sender).

Envelope recipients that are neither processing/local addresses nor agency addresses or
domains are plain relay: delivered to that address with no agency. One destination per
recipient address, and one per agency for the rules that choose the agency's own inbox.

Names are compared after NFC normalisation and case folding, with tone marks placed one way
("hoà" = "hòa", "uỷ" = "ủy"), common abbreviations expanded (UBND, HĐND, TP, TW), list
punctuation ("- ", trailing ";") and parenthesised notes ("(để báo cáo)") dropped. A line
written without any diacritics is matched on the diacritic-free form as a last resort.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mailparse.agency import find_codes

_PARENS = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_TOKEN = re.compile(r"\w+")
# Old ("hoà", "uỷ") and new ("hòa", "ủy") tone placement compare equal: pick the latter.
_TONE_PAIRS = {
    **{f"o{t}": f"{o}a" for t, o in zip("àáảãạ", "òóỏõọ", strict=True)},
    **{f"o{t}": f"{o}e" for t, o in zip("èéẻẽẹ", "òóỏõọ", strict=True)},
    **{f"u{t}": f"{u}y" for t, u in zip("ỳýỷỹỵ", "ùúủũụ", strict=True)},
}
_TONE = re.compile("|".join(_TONE_PAIRS))
_ABBREVIATIONS = {
    "ubnd": "ủy ban nhân dân",
    "hđnd": "hội đồng nhân dân",
    "hdnd": "hội đồng nhân dân",
    "ub": "ủy ban",
    "tp": "thành phố",
    "tw": "trung ương",
    "vp": "văn phòng",
}
# Lines of a "Nơi nhận" block that name no destination.
_IGNORED_PREFIXES = ("lưu", "như trên", "như điều", "như kính gửi", "như đề gửi")
_MIN_PREFIX_TOKENS = 2
# Positions written before the organ they belong to; the organ is the destination.
_ROLES = (
    "đồng chí",
    "ông",
    "bà",
    "lãnh đạo",
    "thường trực",
    "chủ tịch",
    "phó chủ tịch",
    "giám đốc",
    "phó giám đốc",
    "tổng giám đốc",
    "bộ trưởng",
    "thứ trưởng",
    "thủ trưởng",
    "chánh văn phòng",
    "trưởng ban",
    "viện trưởng",
    "cục trưởng",
    "vụ trưởng",
)

RULE_EDXML = "edxml"
RULE_ENVELOPE = "envelope"
RULE_SUBJECT = "subject"
RULE_RECIPIENTS = "recipients"
RULE_RELAY = "relay"


@dataclass(frozen=True)
class AgencyRef:
    """What routing needs of an agency row."""

    code: str
    name: str
    address: str
    aliases: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    active: bool = True


@dataclass(frozen=True)
class RouteInput:
    """The facts of one message that routing looks at."""

    rcpt_to: Sequence[str] = ()
    subject: str = ""
    edxml_to_codes: Sequence[str] = ()
    recipient_lines: Sequence[str] = ()
    processing_addresses: frozenset[str] = frozenset()
    local_domains: frozenset[str] = frozenset()
    # Route by content even without a processing address (mail fetched over IMAP).
    content_routing: bool = False


@dataclass(frozen=True)
class RouteFacts:
    """What routing reads of a message's content, as the pipeline decided it. Stored with
    the message (`messages.route_input`), so an admin's release routes again from exactly
    this, against the agency registry of the day."""

    subject: str = ""
    edxml_to_codes: tuple[str, ...] = ()
    recipient_lines: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "edxml_to_codes": list(self.edxml_to_codes),
            "recipient_lines": list(self.recipient_lines),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RouteFacts:
        return cls(
            subject=str(data.get("subject") or ""),
            edxml_to_codes=tuple(data.get("edxml_to_codes") or ()),
            recipient_lines=tuple(data.get("recipient_lines") or ()),
        )

    def input(
        self,
        rcpt_to: Sequence[str],
        source: str,
        processing_addresses: Iterable[str],
        local_domains: Iterable[str],
    ) -> RouteInput:
        """The routing input for this content with the message's envelope and the
        gateway's addresses (mail fetched over IMAP is routed by content)."""
        return RouteInput(
            rcpt_to=list(rcpt_to),
            subject=self.subject,
            edxml_to_codes=self.edxml_to_codes,
            recipient_lines=self.recipient_lines,
            processing_addresses=frozenset(processing_addresses),
            local_domains=frozenset(local_domains),
            content_routing=source == "imap",
        )


@dataclass(frozen=True)
class Destination:
    recipient: str
    agency_code: str | None
    rule: str
    matched: str  # the code, address or line that chose this destination


@dataclass
class RouteResult:
    destinations: list[Destination] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)  # codes and lines that matched nothing
    content_routed: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "destinations": [
                {
                    "recipient": d.recipient,
                    "agency": d.agency_code,
                    "rule": d.rule,
                    "matched": d.matched,
                }
                for d in self.destinations
            ],
            "unresolved": list(self.unresolved),
        }


# -- text normalisation ----------------------------------------------------------------------


def normalise_name(text: str) -> str:
    """The comparison form of an agency name or a recipient line ("" when it names nothing)."""
    t = unicodedata.normalize("NFC", text).casefold()
    t = _TONE.sub(lambda m: _TONE_PAIRS[m.group(0)], t)
    t = _PARENS.sub(" ", t)
    tokens: list[str] = []
    for tok in _TOKEN.findall(t):
        tokens.extend(_ABBREVIATIONS.get(tok, tok).split())
    return " ".join(tokens)


def strip_diacritics(norm: str) -> str:
    """A normalised name without tone and vowel marks (đ → d): for lines typed without them."""
    decomposed = unicodedata.normalize("NFD", norm.replace("đ", "d"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _strip_roles(norm: str) -> str:
    """The line without leading positions ("phó chủ tịch ủy ban …" → "ủy ban …")."""
    changed = True
    while changed:
        changed = False
        for role in sorted(_ROLES, key=len, reverse=True):
            if norm.startswith(role + " "):
                norm = norm[len(role) + 1 :]
                changed = True
                break
    return norm


def _is_ignored(norm: str) -> bool:
    return not norm or any(norm == p or norm.startswith(p + " ") for p in _IGNORED_PREFIXES)


def _split_lines(lines: Iterable[str]) -> list[str]:
    """Recipient lines as written, one name each (";" may join several on one line)."""
    out: list[str] = []
    for line in lines:
        for piece in line.split(";"):
            piece = piece.strip(" \t\r\n-–—+•*·.,:")
            if piece and piece not in out:
                out.append(piece)
    return out


def codes_in_subject(subject: str) -> list[str]:
    """Agency codes written in a subject (``[000.00.00.H53]``), as `mailparse.plan` reads them."""
    return find_codes(subject or "")[0]


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


# -- the agency index ------------------------------------------------------------------------


@dataclass
class AgencyIndex:
    """Agencies indexed every way routing looks them up (build once, route many)."""

    by_code: dict[str, AgencyRef] = field(default_factory=dict)
    by_address: dict[str, AgencyRef] = field(default_factory=dict)
    by_domain: dict[str, list[AgencyRef]] = field(default_factory=dict)
    by_name: dict[str, set[str]] = field(default_factory=dict)
    by_prefix: dict[str, set[str]] = field(default_factory=dict)
    by_ascii_name: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, agencies: Iterable[AgencyRef]) -> AgencyIndex:
        idx = cls()
        for a in sorted(agencies, key=lambda a: a.code):
            if not a.active:
                continue
            idx.by_code[a.code] = a
            idx.by_address.setdefault(a.address.strip().lower(), a)
            for d in a.domains:
                idx.by_domain.setdefault(d.lower().rstrip("."), []).append(a)
            for name in (a.name, *a.aliases):
                norm = normalise_name(name)
                if not norm:
                    continue
                idx.by_name.setdefault(norm, set()).add(a.code)
                idx.by_ascii_name.setdefault(strip_diacritics(norm), set()).add(a.code)
                tokens = norm.split()
                for n in range(_MIN_PREFIX_TOKENS, len(tokens)):
                    idx.by_prefix.setdefault(" ".join(tokens[:n]), set()).add(a.code)
        return idx

    def match_line(self, line: str) -> AgencyRef | None:
        """The one agency a recipient line names, or None (no match, or ambiguous)."""
        norm = normalise_name(line)
        if _is_ignored(norm):
            return None
        forms = [norm]
        bare = _strip_roles(norm)
        if bare and bare != norm:
            forms.append(bare)  # "Chủ tịch UBND tỉnh Tây Ninh" → the committee
        for form in forms:
            found = self._match(form)
            if found is not None:
                return found
        typed = unicodedata.normalize("NFC", line).casefold()
        if typed == strip_diacritics(typed):  # typed without diacritics: last resort
            for form in forms:
                hits = self.by_ascii_name.get(strip_diacritics(form))
                if hits:
                    return self._one(hits)
        return None

    def _match(self, norm: str) -> AgencyRef | None:
        exact = self.by_name.get(norm)
        if exact:
            return self._one(exact)
        # A line that is the start of exactly one agency's name ("Sở Nội vụ" → "… tỉnh X").
        if len(norm.split()) >= _MIN_PREFIX_TOKENS:
            hits = self.by_prefix.get(norm)
            if hits:
                return self._one(hits)
        return None

    def _one(self, codes: set[str]) -> AgencyRef | None:
        return self.by_code[next(iter(codes))] if len(codes) == 1 else None

    def agency_for_address(self, address: str) -> AgencyRef | None:
        a = self.by_address.get(address.strip().lower())
        if a is not None:
            return a
        same_domain = self.by_domain.get(_domain(address), [])
        return same_domain[0] if same_domain else None


# -- routing ---------------------------------------------------------------------------------


def route(agencies: AgencyIndex | Iterable[AgencyRef], inp: RouteInput) -> RouteResult:
    """Destinations of one message by the rules of DESIGN §6 (see the module docstring)."""
    idx = agencies if isinstance(agencies, AgencyIndex) else AgencyIndex.build(agencies)
    result = RouteResult()
    seen_recipients: set[str] = set()
    seen_agencies: set[str] = set()

    def add(recipient: str, agency: AgencyRef | None, rule: str, matched: str) -> None:
        key = recipient.lower()
        if key in seen_recipients:
            return
        if agency is not None and rule != RULE_ENVELOPE and agency.code in seen_agencies:
            return
        seen_recipients.add(key)
        if agency is not None:
            seen_agencies.add(agency.code)
        code = agency.code if agency is not None else None
        result.destinations.append(Destination(recipient, code, rule, matched))

    # Rule 2 first in time (explicit envelope addresses win a tie for the same agency), but
    # it does not stop rule 1 from adding the agencies the edXML header names.
    by_content = inp.content_routing
    relay: list[str] = []
    processing = {a.lower() for a in inp.processing_addresses}
    for rcpt in inp.rcpt_to:
        address = rcpt.strip()
        if not address:
            continue
        if address.lower() in processing:
            by_content = True
            continue
        agency = idx.agency_for_address(address)
        if agency is not None:
            add(address, agency, RULE_ENVELOPE, address)
        elif _domain(address) in inp.local_domains:
            by_content = True
        else:
            relay.append(address)

    resolved_by_code = False
    for code in dict.fromkeys(inp.edxml_to_codes):
        agency = idx.by_code.get(code)
        if agency is None:
            result.unresolved.append(code)
            continue
        resolved_by_code = True
        add(agency.address, agency, RULE_EDXML, code)

    if by_content and not resolved_by_code:
        result.content_routed = True
        subject_hit = False
        for code in codes_in_subject(inp.subject):
            agency = idx.by_code.get(code)
            if agency is None:
                result.unresolved.append(code)
                continue
            subject_hit = True
            add(agency.address, agency, RULE_SUBJECT, code)
        if not subject_hit:
            for line in _split_lines(inp.recipient_lines):
                agency = idx.match_line(line)
                if agency is not None:
                    add(agency.address, agency, RULE_RECIPIENTS, line)
                elif not _is_ignored(normalise_name(line)):
                    result.unresolved.append(line)

    for address in relay:
        add(address, None, RULE_RELAY, address)
    return result


URGENCY_PRIORITY = {"Hỏa tốc hẹn giờ": 4, "Hỏa tốc": 3, "Thượng khẩn": 2, "Khẩn": 1}


def priority_of(urgency: str | None) -> int:
    """Delivery priority of an urgency mark: Hỏa tốc hẹn giờ 4 … Khẩn 1, otherwise 0."""
    return URGENCY_PRIORITY.get(urgency or "", 0)


def most_urgent(urgencies: Iterable[str | None]) -> str | None:
    best: str | None = None
    for u in urgencies:
        if u and priority_of(u) > priority_of(best):
            best = u
    return best
