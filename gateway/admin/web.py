"""The server-rendered admin pages: login, delivery log, message detail, queue, held mail.

Plain HTML forms (usable without JavaScript); every POST carries the session's CSRF token;
actions redirect back (303) so a reload never repeats them.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from gateway.admin import actions
from gateway.admin.auth import COOKIE, CSRF_FIELD, csrf_ok, logged_in
from gateway.admin.common import Who, context, identify, log_filter, parse_id
from gateway.admin.eventtext import detail_items
from gateway.senderauth.results import sender_auth_line
from store import queries, senders, sessions
from store.models import DELIVERY_STATES, MESSAGE_STATES
from store.users import authenticate

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _when(v: Any) -> str:
    if v is None:
        return ""
    if hasattr(v, "astimezone"):
        return v.astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
    return str(v)


TEMPLATES.env.filters["when"] = _when
TEMPLATES.env.filters["sender_auth"] = sender_auth_line
TEMPLATES.env.filters["detail_items"] = detail_items

Handler = Callable[[Request, Who], Awaitable[Response]]


def render(request: Request, who: Who, name: str, status: int = 200, **ctx: Any) -> Response:
    resp = TEMPLATES.TemplateResponse(
        request,
        name,
        {"user": who.user if who.is_admin else None, "csrf": who.session.csrf, **ctx},
        status_code=status,
    )
    if who.session.new:
        context(request).codec.set_cookie(resp, who.session, request)
    return resp


def error_page(request: Request, who: Who, status: int, title: str, message: str) -> Response:
    return render(request, who, "error.html", status, title=title, message=message, back=None)


def _local_path(value: str | None, default: str) -> str:
    """Only same-site paths are followed after login or an action (no open redirect)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


def page(fn: Handler, *, post: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """Wraps a page: login required (redirect), admin role required (403), CSRF on POST."""

    async def endpoint(request: Request) -> Response:
        who = await identify(request)
        if who.user is None:
            if post:
                return error_page(request, who, 401, "Chưa đăng nhập", "Log in first.")
            target = urllib.parse.quote(
                request.url.path + ("?" + request.url.query if request.url.query else "")
            )
            return RedirectResponse(f"/login?next={target}", 303)
        if not who.is_admin:
            return error_page(
                request, who, 403, "Không có quyền · Forbidden", "This page is for admins only."
            )
        if post:
            form = await request.form()
            request.state.form = form
            if not csrf_ok(who.session, form.get(CSRF_FIELD)):  # type: ignore[arg-type]
                return error_page(
                    request,
                    who,
                    403,
                    "Yêu cầu bị từ chối · Refused",
                    "The form's CSRF token is missing or wrong: reload the page and try again.",
                )
        return await fn(request, who)

    return endpoint


# ---- login ---------------------------------------------------------------------------------


async def login_form(request: Request) -> Response:
    who = await identify(request)
    nxt = _local_path(request.query_params.get("next"), "/messages")
    if who.is_admin:
        return RedirectResponse(nxt, 303)
    return render(request, who, "login.html", next=nxt, error=None, username="")


async def login_submit(request: Request) -> Response:
    ctx = context(request)
    who = await identify(request)
    form = await request.form()
    name = str(form.get("username") or "").strip()[:200]
    password = str(form.get("password") or "")[:1000]
    nxt = _local_path(str(form.get("next") or ""), "/messages")
    if not csrf_ok(who.session, form.get(CSRF_FIELD)):  # type: ignore[arg-type]
        return render(
            request, who, "login.html", 403, next=nxt, username=name,
            error="Phiên đã hết hạn, hãy thử lại · The form expired (CSRF token): try again.",
        )  # fmt: skip
    host = request.client.host if request.client else "?"
    async with ctx.db.transaction() as s:
        wait = await sessions.login_wait(s, name, host)
    if wait:
        resp = render(
            request, who, "login.html", 429, next=nxt, username=name,
            error=f"Quá nhiều lần đăng nhập sai · Too many failed logins: wait {wait} s.",
        )  # fmt: skip
        resp.headers["Retry-After"] = str(wait)
        return resp
    async with ctx.db.transaction() as s:
        user = await authenticate(s, name, password, "admin")
        if user is None:
            await sessions.login_failed(s, name, host, ctx.backoff)
        else:
            await sessions.login_succeeded(s, name, host)
            sid = await sessions.open_session(s, user.name, ctx.settings.admin.session_lifetime)
    if user is None:
        return render(
            request, who, "login.html", 401, next=nxt, username=name,
            error="Sai tên hoặc mật khẩu, hoặc không phải quản trị · Wrong name or password, or not an admin.",
        )  # fmt: skip
    resp = RedirectResponse(nxt, 303)
    ctx.codec.set_cookie(resp, logged_in(sid, ctx.settings.admin.session_lifetime), request)
    return resp


async def logout(request: Request) -> Response:
    who = await identify(request)
    form = await request.form()
    if who.user is None:  # already ended (logged out elsewhere, disabled): nothing to do
        return RedirectResponse("/login", 303)
    if not csrf_ok(who.session, form.get(CSRF_FIELD)):  # type: ignore[arg-type]
        return error_page(
            request, who, 403, "Refused", "The form's CSRF token is missing or wrong."
        )
    if who.session.sid:  # the row goes: the cookie, wherever a copy of it is, is dead
        async with context(request).db.transaction() as s:
            await sessions.end_session(s, who.session.sid)
    resp = RedirectResponse("/login", 303)
    resp.delete_cookie(COOKIE, path="/")
    return resp


# ---- pages ---------------------------------------------------------------------------------


async def _waiting_count(request: Request) -> int:
    async with context(request).db.transaction() as s:
        return await queries.waiting_count(s)


async def log_page(request: Request, who: Who) -> Response:
    params = dict(request.query_params)
    error = None
    found: list[queries.MessageSummary] = []
    try:
        f = log_filter(params)
        async with context(request).db.transaction() as s:
            found = await queries.list_messages(s, f)
    except queries.QueryError as e:
        error, f = str(e), None  # type: ignore[assignment]
    older = None
    if f is not None and len(found) == f.limit:
        q = {k: v for k, v in params.items() if v and k != "before"}
        older = "/messages?" + urllib.parse.urlencode({**q, "before": found[-1].id})
    return render(
        request,
        who,
        "log.html",
        400 if error else 200,
        page="log",
        messages=found,
        params=params,
        error=error,
        older=older,
        states=list(dict.fromkeys(MESSAGE_STATES + DELIVERY_STATES)),
        waiting=await _waiting_count(request),
    )


async def message_page(request: Request, who: Who) -> Response:
    mid = parse_id(request.path_params["id"])
    m = None
    if mid is not None:
        async with context(request).db.transaction() as s:
            m = await queries.message_detail(s, mid)
    if m is None:
        return error_page(request, who, 404, "Không tìm thấy · Not found", "No such message.")
    return render(
        request, who, "message.html", page="log", m=m, waiting=await _waiting_count(request)
    )


async def raw_download(request: Request, who: Who) -> Response:
    mid = parse_id(request.path_params["id"])
    raw = None
    if mid is not None:
        async with context(request).db.transaction() as s:
            raw = await queries.raw_message(s, mid)
    if raw is None:
        return error_page(request, who, 404, "Không tìm thấy · Not found", "No such message.")
    return raw_response(mid or 0, raw)


def raw_response(message_id: int, raw: bytes) -> Response:
    return Response(
        raw,
        media_type="message/rfc822",
        headers={
            "Content-Disposition": f'attachment; filename="edocgw-{message_id}.eml"',
            "X-Content-Type-Options": "nosniff",
        },
    )


async def queue_page(request: Request, who: Who) -> Response:
    async with context(request).db.transaction() as s:
        shape = await queries.queue_shape(s)
        entries = await queries.queue_entries(s)
    return render(
        request,
        who,
        "queue.html",
        page="queue",
        shape=shape,
        entries=entries,
        waiting=await _waiting_count(request),
    )


async def held_page(request: Request, who: Who) -> Response:
    async with context(request).db.transaction() as s:
        found = await queries.waiting_messages(s)
    return render(request, who, "held.html", page="held", messages=found, waiting=len(found))


# ---- actions -------------------------------------------------------------------------------


async def _act(
    request: Request, who: Who, back: str, fn: Callable[[Any], Awaitable[Any]]
) -> Response:
    ctx = context(request)
    try:
        async with ctx.db.transaction() as s:
            await fn(s)
    except actions.ActionError as e:
        return render(
            request, who, "error.html", e.status, title="Không thực hiện được · Not done",
            message=str(e), back=back,
        )  # fmt: skip
    return RedirectResponse(_local_path(str(request.state.form.get("back") or ""), back), 303)


def _by(who: Who) -> str:
    assert who.user is not None
    return f"web:{who.user.name}"


async def release_action(request: Request, who: Who) -> Response:
    mid = parse_id(request.path_params["id"])
    if mid is None:
        return error_page(request, who, 404, "Không tìm thấy · Not found", "No such message.")
    form = request.state.form
    to = [c for c in str(form.get("to") or "").replace(",", " ").split() if c]
    force = form.get("force") in ("1", "on", "true")
    settings = context(request).settings

    async def fn(s: Any) -> None:
        await actions.release_message(s, settings, mid, _by(who), to=to, force=force)

    return await _act(request, who, f"/messages/{mid}", fn)


async def cancel_action(request: Request, who: Who) -> Response:
    mid = parse_id(request.path_params["id"])
    if mid is None:
        return error_page(request, who, 404, "Không tìm thấy · Not found", "No such message.")
    reason = str(request.state.form.get("reason") or "")[:500]

    async def fn(s: Any) -> None:
        await actions.cancel_message(s, mid, _by(who), reason)

    return await _act(request, who, f"/messages/{mid}", fn)


async def retry_action(request: Request, who: Who) -> Response:
    did = parse_id(request.path_params["id"])
    if did is None:
        return error_page(request, who, 404, "Không tìm thấy · Not found", "No such delivery.")

    async def fn(s: Any) -> None:
        await actions.retry_delivery(s, did, _by(who))

    return await _act(request, who, "/queue", fn)


async def retry_deferred_action(request: Request, who: Who) -> Response:
    async def fn(s: Any) -> None:
        await actions.retry_all_deferred(s, _by(who))

    return await _act(request, who, "/queue", fn)


# ---- per-sender allow and deny lists (issue 14) -------------------------------------------


async def senders_page(request: Request, who: Who, error: str | None = None) -> Response:
    async with context(request).db.transaction() as s:
        rules = await senders.list_rules(s)
    return render(
        request,
        who,
        "senders.html",
        400 if error else 200,
        page="senders",
        rules=rules,
        error=error,
        waiting=await _waiting_count(request),
    )


async def sender_set_action(request: Request, who: Who) -> Response:
    form = request.state.form
    try:
        async with context(request).db.transaction() as s:
            await senders.set_rule(
                s,
                str(form.get("pattern") or ""),
                str(form.get("action") or ""),
                str(form.get("note") or "")[:500],
            )
    except senders.SenderRuleError as e:
        return await senders_page(request, who, str(e))
    return RedirectResponse("/senders", 303)


async def sender_remove_action(request: Request, who: Who) -> Response:
    try:
        async with context(request).db.transaction() as s:
            await senders.remove_rule(s, str(request.state.form.get("pattern") or ""))
    except senders.SenderRuleError as e:
        return await senders_page(request, who, str(e))
    return RedirectResponse("/senders", 303)


async def home(request: Request) -> Response:
    return RedirectResponse("/messages", 303)


routes = [
    Route("/", home),
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login_submit, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/messages", page(log_page)),
    Route("/messages/{id}", page(message_page)),
    Route("/messages/{id}/raw", page(raw_download)),
    Route("/messages/{id}/release", page(release_action, post=True), methods=["POST"]),
    Route("/messages/{id}/cancel", page(cancel_action, post=True), methods=["POST"]),
    Route("/deliveries/retry-deferred", page(retry_deferred_action, post=True), methods=["POST"]),
    Route("/deliveries/{id}/retry", page(retry_action, post=True), methods=["POST"]),
    Route("/queue", page(queue_page)),
    Route("/held", page(held_page)),
    Route("/senders", page(senders_page)),
    Route("/senders", page(sender_set_action, post=True), methods=["POST"]),
    Route("/senders/remove", page(sender_remove_action, post=True), methods=["POST"]),
]
