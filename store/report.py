"""The Directive 15 usage report: per agency, how much travelled through the gateway.

All in SQL, one statement per view (per agency; per month): one pass over the messages for
the senders and one join of deliveries with messages for the rest (bench/report.py times it).
Definitions, for the range `[since, until)` of `messages.received_at` (internal mail —
receipts, DSNs — and duplicates left out):
- documents_in: messages the agency sent (envelope sender is its inbox, else in one of its
  mail domains; an inbox match wins over a domain, then the lowest code);
- signed_valid: of those, the messages whose signatures verified `valid` as a whole;
- documents_out: copies forwarded to the agency: its deliveries not held or cancelled (a
  message to two of its inboxes counts twice — counting distinct messages instead cost 80 %
  more time over a million messages);
- delivered: its deliveries delivered;
- median_seconds_to_deliver: median of (delivered_at − received_at) of its deliveries
  (percentile_cont(0.5)), null when none was delivered.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

_TS = DateTime(timezone=True)

# The messages counted: no internal mail, no duplicates, within [since, until).
_COUNTED = """
    m.source <> 'internal' AND m.duplicate_of IS NULL
    AND (CAST(:since AS timestamptz) IS NULL OR m.received_at >= :since)
    AND (CAST(:until AS timestamptz) IS NULL OR m.received_at < :until)"""

# Who sent a message: the agency whose inbox is the envelope sender, else whose domain it is in.
_SENDER_KEYS = """
addr AS (
    SELECT DISTINCT ON (lower(address)) lower(address) AS key, code
    FROM agencies ORDER BY lower(address), code
), dom AS (
    SELECT DISTINCT ON (d) d AS key, code
    FROM agencies, unnest(domains) AS d ORDER BY d, code
)"""

# Each CTE is used once, so PostgreSQL inlines it and may scan in parallel; grouping keys are
# compared bytewise (COLLATE "C"): the codes are ASCII and sorting 10^6 rows by locale costs.
_BY_AGENCY = text(
    f"""
WITH {_SENDER_KEYS}, by_sender AS (
    SELECT lower(m.mail_from) AS sender, count(*) AS n,
           count(*) FILTER (WHERE m.verdict = 'valid') AS valid
    FROM messages AS m
    WHERE {_COUNTED}
    GROUP BY 1
), sent AS (
    SELECT coalesce(a.code, d.code) AS code, sum(s.n) AS documents_in,
           sum(s.valid) AS signed_valid
    FROM by_sender AS s
    LEFT JOIN addr AS a ON a.key = s.sender
    LEFT JOIN dom AS d ON d.key = split_part(s.sender, '@', 2)
    WHERE coalesce(a.code, d.code) IS NOT NULL
    GROUP BY 1
), sent_to AS (
    SELECT dl.agency_code COLLATE "C" AS code,
           count(*) FILTER (WHERE dl.state NOT IN ('held', 'cancelled')) AS documents_out,
           count(*) FILTER (WHERE dl.state = 'delivered') AS delivered,
           percentile_cont(0.5) WITHIN GROUP (
               ORDER BY date_part('epoch', dl.delivered_at - m.received_at)
           ) FILTER (WHERE dl.state = 'delivered' AND dl.delivered_at IS NOT NULL) AS median
    FROM deliveries AS dl JOIN messages AS m ON m.id = dl.message_id
    WHERE dl.agency_code IS NOT NULL AND {_COUNTED}
    GROUP BY 1
)
SELECT ag.code, ag.name,
       coalesce(sent.documents_in, 0) AS documents_in,
       coalesce(sent_to.documents_out, 0) AS documents_out,
       coalesce(sent_to.delivered, 0) AS delivered,
       coalesce(sent.signed_valid, 0) AS signed_valid,
       sent_to.median AS median_seconds_to_deliver
FROM agencies AS ag
LEFT JOIN sent ON sent.code = ag.code
LEFT JOIN sent_to ON sent_to.code = ag.code COLLATE "C"
ORDER BY ag.code
"""
).bindparams(bindparam("since", type_=_TS), bindparam("until", type_=_TS))

_BY_MONTH = text(
    f"""
WITH {_SENDER_KEYS}, sent AS (
    SELECT date_trunc('month', m.received_at AT TIME ZONE :tz) AS month, count(*) AS documents_in
    FROM messages AS m
    WHERE {_COUNTED}
      AND (EXISTS (SELECT 1 FROM addr WHERE addr.key = lower(m.mail_from))
           OR EXISTS (SELECT 1 FROM dom WHERE dom.key = lower(split_part(m.mail_from, '@', 2))))
    GROUP BY 1
), sent_to AS (
    SELECT date_trunc('month', m.received_at AT TIME ZONE :tz) AS month,
           count(*) FILTER (WHERE dl.state NOT IN ('held', 'cancelled')) AS documents_out,
           count(*) FILTER (WHERE dl.state = 'delivered') AS delivered
    FROM deliveries AS dl JOIN messages AS m ON m.id = dl.message_id
    WHERE dl.agency_code IS NOT NULL AND {_COUNTED}
    GROUP BY 1
)
SELECT to_char(coalesce(sent.month, sent_to.month), 'YYYY-MM') AS month,
       coalesce(sent.documents_in, 0) AS documents_in,
       coalesce(sent_to.documents_out, 0) AS documents_out,
       coalesce(sent_to.delivered, 0) AS delivered
FROM sent FULL JOIN sent_to ON sent_to.month = sent.month
ORDER BY 1
"""
).bindparams(bindparam("since", type_=_TS), bindparam("until", type_=_TS))

# A one-off analytical statement: JIT compiling it costs more than it saves, and its hashes
# and sorts (a few hundred bytes a row) should stay in memory.
_TUNE = ("SET LOCAL jit = off", "SET LOCAL work_mem = '256MB'")

VN = dt.timezone(dt.timedelta(hours=7))
TZ_NAME = "Asia/Ho_Chi_Minh"


@dataclass(frozen=True)
class AgencyUsage:
    code: str
    name: str
    documents_in: int
    documents_out: int
    delivered: int
    signed_valid: int
    median_seconds_to_deliver: float | None


@dataclass(frozen=True)
class MonthUsage:
    month: str  # YYYY-MM, in Vietnam's time
    documents_in: int
    documents_out: int
    delivered: int


def day_bounds(
    since: dt.date | None, until: dt.date | None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Whole days in Vietnam's time: from `since` 00:00 up to the end of `until`."""
    start = dt.datetime.combine(since, dt.time(), VN) if since else None
    end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), VN) if until else None
    return start, end


async def _tune(session: AsyncSession) -> None:
    for statement in _TUNE:
        await session.execute(text(statement))


async def usage_by_agency(
    session: AsyncSession, since: dt.date | None, until: dt.date | None
) -> list[AgencyUsage]:
    start, end = day_bounds(since, until)
    await _tune(session)
    rows = (await session.execute(_BY_AGENCY, {"since": start, "until": end})).all()
    return [
        AgencyUsage(
            code=r.code,
            name=r.name,
            documents_in=int(r.documents_in),
            documents_out=int(r.documents_out),
            delivered=int(r.delivered),
            signed_valid=int(r.signed_valid),
            median_seconds_to_deliver=(
                None if r.median_seconds_to_deliver is None else float(r.median_seconds_to_deliver)
            ),
        )
        for r in rows
    ]


async def usage_by_month(
    session: AsyncSession, since: dt.date | None, until: dt.date | None
) -> list[MonthUsage]:
    start, end = day_bounds(since, until)
    rows = (await session.execute(_BY_MONTH, {"since": start, "until": end, "tz": TZ_NAME})).all()
    return [
        MonthUsage(r.month, int(r.documents_in), int(r.documents_out), int(r.delivered))
        for r in rows
    ]
