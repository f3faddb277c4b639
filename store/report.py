"""The Directive 15 usage report: per agency, how much travelled through the gateway.

All in SQL, one statement per view (per agency; per month), so the figures over a million
messages come back in about a second (bench/report.py). Definitions, for the whole range
`[since, until)` of `messages.received_at` (internal mail — receipts, DSNs — and duplicates
left out):
- documents_in: messages the agency sent (envelope sender is its inbox, else in one of its
  mail domains; an inbox match wins over a domain, then the lowest code);
- signed_valid: of those, the messages whose signatures verified `valid` as a whole;
- documents_out: messages with a delivery to the agency that was not held or cancelled;
- delivered: messages delivered to it;
- median_seconds_to_deliver: median of (delivered_at − received_at) of its deliveries
  (percentile_cont(0.5)), null when none was delivered.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

_TS = DateTime(timezone=True)

_WINDOW = """
win AS (
    SELECT id, received_at, lower(mail_from) AS sender, verdict
    FROM messages
    WHERE source <> 'internal' AND duplicate_of IS NULL
      AND (CAST(:since AS timestamptz) IS NULL OR received_at >= :since)
      AND (CAST(:until AS timestamptz) IS NULL OR received_at < :until)
), addr AS (
    SELECT DISTINCT ON (lower(address)) lower(address) AS key, code
    FROM agencies ORDER BY lower(address), code
), dom AS (
    SELECT DISTINCT ON (d) d AS key, code
    FROM agencies, unnest(domains) AS d ORDER BY d, code
)"""

_BY_AGENCY = text(
    f"""
WITH {_WINDOW}, by_sender AS (
    SELECT sender, count(*) AS n, count(*) FILTER (WHERE verdict = 'valid') AS valid
    FROM win GROUP BY sender
), sent AS (
    SELECT coalesce(a.code, d.code) AS code, sum(s.n) AS documents_in,
           sum(s.valid) AS signed_valid
    FROM by_sender AS s
    LEFT JOIN addr AS a ON a.key = s.sender
    LEFT JOIN dom AS d ON d.key = split_part(s.sender, '@', 2)
    WHERE coalesce(a.code, d.code) IS NOT NULL
    GROUP BY 1
), per_message AS (
    SELECT dl.agency_code AS code, dl.message_id,
           bool_or(dl.state NOT IN ('held', 'cancelled')) AS forwarded,
           bool_or(dl.state = 'delivered') AS delivered
    FROM deliveries AS dl JOIN win AS w ON w.id = dl.message_id
    WHERE dl.agency_code IS NOT NULL
    GROUP BY dl.agency_code, dl.message_id
), sent_to AS (
    SELECT code, count(*) FILTER (WHERE forwarded) AS documents_out,
           count(*) FILTER (WHERE delivered) AS delivered
    FROM per_message GROUP BY code
), speed AS (
    SELECT dl.agency_code AS code,
           percentile_cont(0.5) WITHIN GROUP (
               ORDER BY extract(epoch FROM dl.delivered_at - w.received_at)
           ) AS median
    FROM deliveries AS dl JOIN win AS w ON w.id = dl.message_id
    WHERE dl.state = 'delivered' AND dl.delivered_at IS NOT NULL AND dl.agency_code IS NOT NULL
    GROUP BY dl.agency_code
)
SELECT ag.code, ag.name,
       coalesce(sent.documents_in, 0) AS documents_in,
       coalesce(sent_to.documents_out, 0) AS documents_out,
       coalesce(sent_to.delivered, 0) AS delivered,
       coalesce(sent.signed_valid, 0) AS signed_valid,
       speed.median AS median_seconds_to_deliver
FROM agencies AS ag
LEFT JOIN sent ON sent.code = ag.code
LEFT JOIN sent_to ON sent_to.code = ag.code
LEFT JOIN speed ON speed.code = ag.code
ORDER BY ag.code
"""
).bindparams(bindparam("since", type_=_TS), bindparam("until", type_=_TS))

_BY_MONTH = text(
    f"""
WITH {_WINDOW}, months AS (
    SELECT to_char(received_at AT TIME ZONE :tz, 'YYYY-MM') AS month, id, sender
    FROM win
), sent AS (
    SELECT m.month, count(*) AS documents_in
    FROM months AS m
    WHERE EXISTS (SELECT 1 FROM addr WHERE addr.key = m.sender)
       OR EXISTS (SELECT 1 FROM dom WHERE dom.key = split_part(m.sender, '@', 2))
    GROUP BY m.month
), per_message AS (
    SELECT m.month, dl.agency_code, dl.message_id,
           bool_or(dl.state NOT IN ('held', 'cancelled')) AS forwarded,
           bool_or(dl.state = 'delivered') AS delivered
    FROM deliveries AS dl JOIN months AS m ON m.id = dl.message_id
    WHERE dl.agency_code IS NOT NULL
    GROUP BY m.month, dl.agency_code, dl.message_id
), sent_to AS (
    SELECT month, count(*) FILTER (WHERE forwarded) AS documents_out,
           count(*) FILTER (WHERE delivered) AS delivered
    FROM per_message GROUP BY month
)
SELECT coalesce(sent.month, sent_to.month) AS month,
       coalesce(sent.documents_in, 0) AS documents_in,
       coalesce(sent_to.documents_out, 0) AS documents_out,
       coalesce(sent_to.delivered, 0) AS delivered
FROM sent FULL JOIN sent_to ON sent_to.month = sent.month
ORDER BY 1
"""
).bindparams(bindparam("since", type_=_TS), bindparam("until", type_=_TS))

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


async def usage_by_agency(
    session: AsyncSession, since: dt.date | None, until: dt.date | None
) -> list[AgencyUsage]:
    start, end = day_bounds(since, until)
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
