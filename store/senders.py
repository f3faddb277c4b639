"""Per-sender exceptions to the official-sender rule (issue 14): allow and deny lists.

A pattern is an address (`vanthu@mof.vn`, that mailbox only) or a domain (`mof.vn`, the
domain and its subdomains). The most specific pattern that matches decides: an address
before a domain, a longer domain before a shorter one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import SenderRule

ACTIONS = ("allow", "deny")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


class SenderRuleError(ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    pattern: str
    action: str  # allow | deny
    note: str = ""


def normalise(pattern: str) -> str:
    """Lower case, no brackets or trailing dot; SenderRuleError for anything else."""
    p = pattern.strip().strip("<>").rstrip(".").lower().removeprefix("@")
    local, at, domain = p.rpartition("@")
    domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    if not _DOMAIN.match(domain) or (at and (not local or " " in local)):
        raise SenderRuleError(f"expected an address or a domain, got {pattern!r}")
    return f"{local}@{domain}" if at else domain


def match(rules: list[Rule], address: str | None) -> Rule | None:
    """The rule deciding for `address` (or a bare domain), if any."""
    if not address:
        return None
    a = address.strip().strip("<>").rstrip(".").lower()
    domain = a.rpartition("@")[2]
    best: tuple[int, Rule] | None = None
    for r in rules:
        if "@" in r.pattern:
            score = 1000 if r.pattern == a else -1
        elif domain == r.pattern or domain.endswith("." + r.pattern):
            score = len(r.pattern)
        else:
            score = -1
        if score >= 0 and (best is None or score > best[0]):
            best = (score, r)
    return best[1] if best else None


async def set_rule(session: AsyncSession, pattern: str, action: str, note: str = "") -> Rule:
    if action not in ACTIONS:
        raise SenderRuleError(f"expected allow or deny, got {action!r}")
    p = normalise(pattern)
    stmt = insert(SenderRule).values(pattern=p, action=action, note=note)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[SenderRule.pattern], set_={"action": action, "note": note}
        )
    )
    return Rule(p, action, note)


async def remove_rule(session: AsyncSession, pattern: str) -> bool:
    p = normalise(pattern)
    result = await session.execute(delete(SenderRule).where(SenderRule.pattern == p))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def list_rules(session: AsyncSession) -> list[Rule]:
    rows = (await session.scalars(select(SenderRule).order_by(SenderRule.pattern))).all()
    return [Rule(r.pattern, r.action, r.note) for r in rows]
