"""The admin ASGI app: pages, /api/, /metrics, /healthz and the stylesheet.

/metrics is open by default: it carries only aggregate counts (no subjects, addresses or
agency names), Prometheus scrapes without a login, and the listener is on loopback unless an
operator moves it; `[admin] metrics_require_auth = true` puts it behind the admin login.
/healthz is open too (load balancers and systemd probes): it tells only whether the
database answers and which components are alive.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from config import Settings
from gateway import metrics
from gateway.admin import api, report, web
from gateway.admin.auth import SessionCodec
from gateway.admin.common import AdminContext, context, identify
from store import queries, sessions
from store.db import Database

log = logging.getLogger("edocgw.admin")


async def metrics_endpoint(request: Request) -> Response:
    ctx = context(request)
    if ctx.settings.admin.metrics_require_auth:
        who = await identify(request)
        if who.user is None:
            return api.error(401, "log in, or send Authorization: Bearer <token>")
        if not who.is_admin:
            return api.error(403, "not an admin")
    try:
        async with ctx.db.transaction() as s:
            metrics.STORE.snapshot = await asyncio.wait_for(queries.store_counts(s), 10)
    except Exception as e:  # still export the process metrics; the gap shows in the graphs
        log.warning("reading store counts for /metrics failed", extra={"error": str(e)})
        metrics.STORE.snapshot = None
    return Response(generate_latest(metrics.registry()), media_type=CONTENT_TYPE_LATEST)


def _alive(component: Any) -> bool:
    check = getattr(component, "alive", None)
    if callable(check):
        return bool(check())
    task = getattr(component, "_task", None)
    if isinstance(task, asyncio.Task):
        return not task.done()
    return True  # nothing to look at: it started, so count it as up


async def healthz(request: Request) -> Response:
    ctx = context(request)
    db_ok = await ctx.db.ping()
    comps = {
        getattr(c, "name", type(c).__name__): _alive(c)
        for c in ctx.components
        if getattr(c, "name", None) != AdminServerName
    }
    ok = db_ok and all(comps.values())
    return JSONResponse(
        {"status": "ok" if ok else "fail", "database": db_ok, "components": comps},
        status_code=200 if ok else 503,
    )


AdminServerName = "admin-web"


async def not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return api.error(404, "no such endpoint")
    return PlainTextResponse("404 Not Found", status_code=404)


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return api.error(405, "method not allowed")
    return PlainTextResponse("405 Method Not Allowed", status_code=405)


SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; form-action 'self'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """No framing, no foreign scripts, nothing cached: admin pages hold mail contents."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def build_app(
    settings: Settings, db: Database, key: bytes, components: Sequence[Any] = ()
) -> Starlette:
    app = Starlette(
        routes=[
            *api.routes,
            *web.routes,
            *report.routes,
            Route("/metrics", metrics_endpoint),
            Route("/healthz", healthz),
            Mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static"))),
        ],
        exception_handlers={404: not_found, 405: method_not_allowed},
        middleware=[Middleware(SecurityHeaders)],
    )
    app.state.admin = AdminContext(
        settings=settings,
        db=db,
        codec=SessionCodec(key),
        backoff=sessions.Backoff(
            free=settings.admin.login_failures_per_minute,
            max_wait=settings.admin.login_backoff_max.total_seconds(),
            free_per_address=4 * settings.admin.login_failures_per_minute,
        ),
        components=components,
    )
    return app
