"""The JSON API under /api/ and its OpenAPI document.

Every endpoint (the OpenAPI document included) needs an admin: a bearer token from
`edocgw user token`, or the web session — then state-changing calls must also send the
session's CSRF token in `X-CSRF-Token`. Answers: 401 not logged in, 403 not an admin, 404 no
such row, 409 the action does not apply now, 422 a bad parameter; errors are `{"error": …}`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.admin import actions
from gateway.admin.auth import CSRF_HEADER, csrf_ok
from gateway.admin.common import MAX_ID, Who, context, identify, log_filter, parse_id
from gateway.admin.schemas import (
    ActionOut,
    CancelIn,
    ErrorOut,
    MessageDetailOut,
    MessageList,
    QueueOut,
    ReleaseIn,
    dump,
)
from gateway.admin.web import raw_response
from store import queries
from store.models import DELIVERY_STATES, MESSAGE_STATES

MAX_BODY = 64 * 1024
Handler = Callable[[Request, Who], Awaitable[Response]]


def error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="edocgw"'} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def api(fn: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        who = await identify(request)
        if who.user is None:
            return error(401, "log in, or send Authorization: Bearer <token>")
        if not who.is_admin:
            return error(403, f"user {who.user.name} is not an admin")
        if (
            request.method not in ("GET", "HEAD")
            and who.via == "session"
            and not csrf_ok(who.session, request.headers.get(CSRF_HEADER))
        ):
            return error(403, "a session-authenticated change needs the X-CSRF-Token header")
        return await fn(request, who)

    return endpoint


async def _body(request: Request, model: type[BaseModel]) -> BaseModel | JSONResponse:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return error(413, "request body too large")
    if not raw.strip():
        return model()
    try:
        return model.model_validate(json.loads(raw))
    except (ValueError, RecursionError, ValidationError) as e:
        first = e.errors(include_url=False)[0]["msg"] if isinstance(e, ValidationError) else str(e)
        return error(422, f"bad request body: {first}")


def _by(who: Who) -> str:
    assert who.user is not None
    return f"api:{who.user.name}"


# ---- endpoints -----------------------------------------------------------------------------


async def list_messages(request: Request, who: Who) -> Response:
    try:
        f = log_filter(request.query_params)
    except queries.QueryError as e:
        return error(422, str(e))
    async with context(request).db.transaction() as s:
        found = await queries.list_messages(s, f)
    return JSONResponse(dump(MessageList, {"messages": found}))


async def held_messages(request: Request, who: Who) -> Response:
    async with context(request).db.transaction() as s:
        found = await queries.waiting_messages(s)
    return JSONResponse(dump(MessageList, {"messages": found}))


async def get_message(request: Request, who: Who) -> Response:
    mid = parse_id(request.path_params["id"])
    m = None
    if mid is not None:
        async with context(request).db.transaction() as s:
            m = await queries.message_detail(s, mid)
    if m is None:
        return error(404, "no such message")
    return JSONResponse(dump(MessageDetailOut, m))


async def get_raw(request: Request, who: Who) -> Response:
    mid = parse_id(request.path_params["id"])
    raw = None
    if mid is not None:
        async with context(request).db.transaction() as s:
            raw = await queries.raw_message(s, mid)
    if raw is None or mid is None:
        return error(404, "no such message")
    return raw_response(mid, raw)


async def get_queue(request: Request, who: Who) -> Response:
    wanted = request.query_params.getlist("state")
    bad = [s for s in wanted if s not in queries.PENDING_DELIVERY_STATES]
    if bad:
        return error(422, f"state must be one of {', '.join(queries.PENDING_DELIVERY_STATES)}")
    states = tuple(wanted) or None
    async with context(request).db.transaction() as s:
        shape = await queries.queue_shape(s, states)
        entries = await queries.queue_entries(s, states, limit=1000)
    return JSONResponse(dump(QueueOut, {"shape": shape, "deliveries": entries}))


async def _run(request: Request, fn: Callable[[Any], Awaitable[ActionOut]]) -> Response:
    try:
        async with context(request).db.transaction() as s:
            out = await fn(s)
    except actions.ActionError as e:
        return error(e.status, str(e))
    return JSONResponse(out.model_dump(mode="json"))


async def retry(request: Request, who: Who) -> Response:
    did = parse_id(request.path_params["id"])
    if did is None:
        return error(404, "no such delivery")

    async def fn(s: Any) -> ActionOut:
        await actions.retry_delivery(s, did, _by(who))
        return ActionOut(ok=True, detail=f"delivery {did} queued for retry", deliveries=[did])

    return await _run(request, fn)


async def retry_deferred(request: Request, who: Who) -> Response:
    async def fn(s: Any) -> ActionOut:
        ids = await actions.retry_all_deferred(s, _by(who))
        return ActionOut(ok=True, detail=f"{len(ids)} deliveries queued for retry", deliveries=ids)

    return await _run(request, fn)


async def release(request: Request, who: Who) -> Response:
    mid = parse_id(request.path_params["id"])
    if mid is None:
        return error(404, "no such message")
    body = await _body(request, ReleaseIn)
    if isinstance(body, Response):
        return body
    assert isinstance(body, ReleaseIn)
    settings = context(request).settings

    async def fn(s: Any) -> ActionOut:
        r = await actions.release_message(s, settings, mid, _by(who), to=body.to, force=body.force)
        return ActionOut(ok=True, detail=f"message {mid} released ({r.how})", deliveries=r.queued)

    return await _run(request, fn)


async def cancel(request: Request, who: Who) -> Response:
    mid = parse_id(request.path_params["id"])
    if mid is None:
        return error(404, "no such message")
    body = await _body(request, CancelIn)
    if isinstance(body, Response):
        return body
    assert isinstance(body, CancelIn)

    async def fn(s: Any) -> ActionOut:
        ids = await actions.cancel_message(s, mid, _by(who), body.reason)
        return ActionOut(ok=True, detail=f"message {mid} cancelled", deliveries=ids)

    return await _run(request, fn)


async def openapi(request: Request, who: Who) -> Response:
    return JSONResponse(openapi_document())


# ---- the OpenAPI document ------------------------------------------------------------------

_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_STATES = list(dict.fromkeys(MESSAGE_STATES + DELIVERY_STATES))


def _param(name: str, where: str, schema: dict[str, Any], desc: str, required: bool = False):
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": desc,
    }


def _json(ref: str, desc: str) -> dict[str, Any]:
    return {
        "description": desc,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        401: "not logged in",
        403: "not an admin (or a missing CSRF token)",
        404: "no such row",
        409: "the action does not apply in this state",
        413: "body too large",
        422: "bad parameter or body",
    }
    return {str(c): _json("ErrorOut", text[c]) for c in (401, 403, *codes)}


def _op(summary: str, ok: dict[str, Any], params=(), errors=(), body: str | None = None):
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": list(params),
        "responses": {"200": ok, **_errors(*errors)},
    }
    if body:
        op["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    return op


def openapi_document() -> dict[str, Any]:
    _, defs = models_json_schema(
        [
            (m, "serialization")
            for m in (MessageList, MessageDetailOut, QueueOut, ActionOut, ErrorOut)
        ]
        + [(m, "validation") for m in (ReleaseIn, CancelIn)],
        ref_template="#/components/schemas/{model}",
    )
    mid = _param("id", "path", _ID, "message id")
    did = _param("id", "path", _ID, "delivery id")
    raw_ok = {
        "description": "the message exactly as received",
        "content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}},
    }
    filters = [
        _param("since", "query", {"type": "string"}, "a duration ago (2h, 3d) or a date"),
        _param("state", "query", {"type": "string", "enum": _STATES}, "message/delivery state"),
        _param("agency", "query", {"type": "string", "maxLength": 500}, "agency code"),
        _param("sender", "query", {"type": "string", "maxLength": 500}, "sender contains"),
        _param("q", "query", {"type": "string", "maxLength": 500}, "subject, sender, number"),
        _param("before", "query", _ID, "only messages listed after this one (paging)"),
        _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}, "at most"),
        _param(
            "notices",
            "query",
            {"type": "string", "enum": ["show", "hide"]},
            "hide: leave out the gateway's own receipts and DSNs",
        ),
    ]
    queue_state = _param(
        "state",
        "query",
        {
            "type": "array",
            "items": {"type": "string", "enum": list(queries.PENDING_DELIVERY_STATES)},
        },
        "only these delivery states",
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "edocgw admin API", "version": "1"},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/api/messages": {
                "get": _op(
                    "The delivery log, newest first",
                    _json("MessageList", "messages"),
                    filters,
                    [422],
                )
            },
            "/api/held": {
                "get": _op("Held and quarantined messages", _json("MessageList", "messages"))
            },
            "/api/messages/{id}": {
                "get": _op(
                    "One message in full", _json("MessageDetailOut", "message"), [mid], [404]
                )
            },
            "/api/messages/{id}/raw": {"get": _op("The raw message", raw_ok, [mid], [404])},
            "/api/messages/{id}/release": {
                "post": _op(
                    "Release a held message",
                    _json("ActionOut", "released"),
                    [mid],
                    [404, 409, 413, 422],
                    body="ReleaseIn",
                )
            },
            "/api/messages/{id}/cancel": {
                "post": _op(
                    "Cancel a message's unsent deliveries",
                    _json("ActionOut", "cancelled"),
                    [mid],
                    [404, 409, 413, 422],
                    body="CancelIn",
                )
            },
            "/api/queue": {
                "get": _op("Pending deliveries", _json("QueueOut", "queue"), [queue_state], [422])
            },
            "/api/deliveries/{id}/retry": {
                "post": _op("Retry a delivery now", _json("ActionOut", "queued"), [did], [404, 409])
            },
            "/api/deliveries/retry-deferred": {
                "post": _op("Retry every deferred delivery", _json("ActionOut", "queued"))
            },
        },
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "edocgw_session"},
            },
        },
    }


routes = [
    Route("/api/openapi.json", api(openapi)),
    Route("/api/messages", api(list_messages)),
    Route("/api/held", api(held_messages)),
    Route("/api/messages/{id}", api(get_message)),
    Route("/api/messages/{id}/raw", api(get_raw)),
    Route("/api/messages/{id}/release", api(release), methods=["POST"]),
    Route("/api/messages/{id}/cancel", api(cancel), methods=["POST"]),
    Route("/api/queue", api(get_queue)),
    Route("/api/deliveries/retry-deferred", api(retry_deferred), methods=["POST"]),
    Route("/api/deliveries/{id}/retry", api(retry), methods=["POST"]),
]
