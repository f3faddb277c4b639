"""The agency registry: codes (mã định danh), names and aliases, mail domains and routes."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Agency

# Decision 20/2020/QĐ-TTg: LLL.KK.JJ.Xnn; the older 3-group form is still met on input.
STRICT_CODE = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$")
LEGACY_CODE = re.compile(r"^\d{2}\.\d{2}\.[A-Z]\d{2}$")
TLS_POLICIES = ("verify", "encrypt", "may", "none")
FORMATS = ("mime", "edxml")  # what the agency receives: the original mail, or an edXML package
COLUMNS = ("code", "name", "aliases", "domains", "address", "route", "tls", "format")
# smtp:// is a smarthost; lmtp:// is a final mail store (e.g. Dovecot) spoken to in LMTP.
_ROUTE = re.compile(
    r"^(mx|(smtp|lmtp)://[A-Za-z0-9.\-]+:\d{1,5}|(smtp|lmtp)://\[[0-9a-fA-F:.]+\]:\d{1,5})$"
)


class AgencyError(ValueError):
    pass


@dataclass
class AgencyIn:
    code: str
    name: str
    address: str
    aliases: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    route: str = "mx"
    tls: str = "verify"
    format: str = "mime"

    def validate(self) -> AgencyIn:
        if not (STRICT_CODE.match(self.code) or LEGACY_CODE.match(self.code)):
            raise AgencyError(
                f"code {self.code!r} is not an agency code like 000.00.00.H53 (LLL.KK.JJ.Xnn)"
            )
        if not self.name.strip():
            raise AgencyError("name is empty")
        if self.address.count("@") != 1 or not all(self.address.split("@")):
            raise AgencyError(f"address {self.address!r} is not an e-mail address")
        if not _ROUTE.match(self.route):
            raise AgencyError(
                f"route {self.route!r}: expected mx, smtp://host:port or lmtp://host:port"
            )
        if self.tls not in TLS_POLICIES:
            raise AgencyError(f"tls {self.tls!r}: expected one of {', '.join(TLS_POLICIES)}")
        if self.format not in FORMATS:
            raise AgencyError(f"format {self.format!r}: expected one of {', '.join(FORMATS)}")
        self.domains = [d.lower().rstrip(".") for d in self.domains]
        self.address = self.address.strip()
        return self


async def upsert_agency(session: AsyncSession, a: AgencyIn) -> None:
    a.validate()
    values = {
        "code": a.code,
        "name": a.name.strip(),
        "aliases": a.aliases,
        "domains": a.domains,
        "address": a.address,
        "route": a.route,
        "tls": a.tls,
        "format": a.format,
        "active": True,
    }
    stmt = insert(Agency).values(**values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Agency.code], set_={k: v for k, v in values.items() if k != "code"}
        )
    )


def _split(cell: str | None) -> list[str]:
    return [x.strip() for x in (cell or "").split(";") if x.strip()]


def parse_csv(text: str) -> list[AgencyIn]:
    """Parse the whole file first; any bad row raises AgencyError naming its line number."""
    rows = list(csv.reader(io.StringIO(text)))
    out: list[AgencyIn] = []
    for lineno, row in enumerate(rows, start=1):
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if lineno == 1 and [c.strip().lower() for c in row[:2]] == ["code", "name"]:
            continue
        if len(row) < 5 or len(row) > len(COLUMNS):
            raise AgencyError(
                f"line {lineno}: expected the columns {','.join(COLUMNS)} (got {len(row)})"
            )
        cells = [c.strip() for c in row] + [""] * (len(COLUMNS) - len(row))
        try:
            out.append(
                AgencyIn(
                    code=cells[0],
                    name=cells[1],
                    aliases=_split(cells[2]),
                    domains=_split(cells[3]),
                    address=cells[4],
                    route=cells[5] or "mx",
                    tls=cells[6] or "verify",
                    format=cells[7].lower() or "mime",
                ).validate()
            )
        except AgencyError as e:
            raise AgencyError(f"line {lineno}: {e}") from None
    return out


async def list_agencies(session: AsyncSession, active_only: bool = False) -> list[Agency]:
    q = select(Agency).order_by(Agency.code)
    if active_only:
        q = q.where(Agency.active.is_(True))
    return list((await session.scalars(q)).all())


async def agencies_by_code(session: AsyncSession, codes: Sequence[str]) -> dict[str, Agency]:
    """The agencies with these codes (active or not), by code."""
    rows = (await session.scalars(select(Agency).where(Agency.code.in_(list(codes))))).all()
    return {a.code: a for a in rows}


@dataclass(frozen=True)
class LocalAddresses:
    """What the active agencies make local for the relay rules."""

    domains: list[str]
    addresses: list[str]


async def local_addresses(session: AsyncSession) -> LocalAddresses:
    """The mail domains and inbox addresses of every active agency."""
    rows = (
        await session.execute(select(Agency.domains, Agency.address).where(Agency.active.is_(True)))
    ).all()
    return LocalAddresses(
        domains=[d for r in rows for d in (r.domains or ())],
        addresses=[r.address for r in rows if r.address],
    )
