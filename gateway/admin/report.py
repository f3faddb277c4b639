"""The usage report page (Directive 15): a bar chart per month and the table per agency.

The chart is SVG drawn here on the server (no script, no CDN): for each month three bars,
documents received from agencies, forwarded to agencies, delivered; the table has the same
columns as `edocgw report`. Dates in the form are whole days in Vietnam's time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin.common import Who, context
from gateway.admin.web import page, render
from store.report import MonthUsage, usage_by_agency, usage_by_month

SERIES = (
    ("documents_in", "Gửi đi · Sent in", "#2e6fba"),
    ("documents_out", "Chuyển đến · Forwarded", "#e08a1e"),
    ("delivered", "Đã chuyển · Delivered", "#2b9348"),
)


@dataclass(frozen=True)
class Range:
    since: dt.date | None
    until: dt.date | None
    error: str | None = None


def _range(request: Request) -> Range:
    out: dict[str, dt.date | None] = {}
    for key in ("since", "until"):
        value = (request.query_params.get(key) or "").strip()
        try:
            out[key] = dt.date.fromisoformat(value) if value else None
        except ValueError:
            return Range(None, None, f"{key}: expected a date like 2026-01-31, got {value!r}")
    since, until = out["since"], out["until"]
    if since and until and since > until:
        return Range(None, None, f"since {since} is after until {until}")
    return Range(since, until)


def bar_chart(months: list[MonthUsage], width: int = 720, height: int = 240) -> Markup:
    """Grouped bars, one group per month; every bar has a <title> with its value."""
    if not months:
        return Markup("")
    top = max(max(getattr(m, k) for k, _, _ in SERIES) for m in months) or 1
    left, bottom, plot_h = 40, 30, height - 50
    group = (width - left - 10) / len(months)
    bar = max(min(group / (len(SERIES) + 1), 40), 2)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg">',
        "<title>Văn bản theo tháng · Documents per month</title>",
        f'<line x1="{left}" y1="{10 + plot_h}" x2="{width - 5}" y2="{10 + plot_h}" stroke="#888"/>',
        f'<text x="{left - 6}" y="16" text-anchor="end" font-size="11">{top}</text>',
        f'<text x="{left - 6}" y="{10 + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    for i, m in enumerate(months):
        x0 = left + i * group + (group - bar * len(SERIES)) / 2
        parts.append(f'<g class="month" data-month="{escape(m.month)}">')
        for j, (key, label, colour) in enumerate(SERIES):
            value = getattr(m, key)
            h = plot_h * value / top
            parts.append(
                f'<rect class="bar {key}" data-value="{value}" x="{x0 + j * bar:.1f}" '
                f'y="{10 + plot_h - h:.1f}" width="{bar - 1:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{escape(m.month)} · {escape(label)}: {value}</title>'
                "</rect>"
            )
        parts.append(
            f'<text x="{left + i * group + group / 2:.1f}" y="{height - bottom + 18}" '
            f'text-anchor="middle" font-size="11">{escape(m.month)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


async def report_page(request: Request, who: Who) -> Response:
    r = _range(request)
    agencies, months = [], []
    if r.error is None:
        async with context(request).db.transaction() as s:
            agencies = await usage_by_agency(s, r.since, r.until)
            months = await usage_by_month(s, r.since, r.until)
    return render(
        request,
        who,
        "report.html",
        400 if r.error else 200,
        page="report",
        range=r,
        params=dict(request.query_params),
        agencies=agencies,
        months=months,
        chart=bar_chart(months),
        series=SERIES,
    )


routes = [Route("/report", page(report_page))]
