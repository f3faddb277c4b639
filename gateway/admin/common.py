"""What the web pages and the API share: the app's context, who the user is, request params."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from config import Settings
from gateway.admin.auth import Session, SessionCodec, anonymous, bearer_token
from store import queries, sessions
from store.db import Database
from store.users import UserInfo, user_for_token

MAX_ID = 2**63 - 1


@dataclass
class AdminContext:
    settings: Settings
    db: Database
    codec: SessionCodec
    backoff: sessions.Backoff
    components: Sequence[Any] = ()  # the service's components, for /healthz
    started: float = field(default_factory=time.monotonic)


def context(request: Request) -> AdminContext:
    return request.app.state.admin  # type: ignore[no-any-return]


@dataclass
class Who:
    user: UserInfo | None  # None: not logged in (or an unknown token)
    session: Session
    via: str  # "bearer", "session" or "none"

    @property
    def is_admin(self) -> bool:
        return self.user is not None and self.user.active and "admin" in self.user.roles


async def identify(request: Request) -> Who:
    """The bearer token if one is sent, else the user of the cookie's session row (read from
    the database on every request, so logout, disabling a user, a password change or a
    dropped role take effect at once). A cookie whose session has ended is replaced by an
    anonymous one."""
    ctx = context(request)
    session = ctx.codec.session(request)
    token = bearer_token(request)
    if token is not None:
        async with ctx.db.transaction() as s:
            user = await user_for_token(s, token)
        return Who(user, session, "bearer")
    if session.sid:
        async with ctx.db.transaction() as s:
            user = await sessions.session_user(s, session.sid)
        if user is not None:
            return Who(user, session, "session")
        session = anonymous()  # ended or expired: the browser gets a fresh anonymous cookie
    return Who(None, session, "none")


def parse_id(raw: str) -> int | None:
    """A row id from the path, or None (the caller answers 404)."""
    if not raw.isascii() or not raw.isdigit():
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_ID else None


def log_filter(params: Mapping[str, str], default_limit: int = 50) -> queries.LogFilter:
    """Filters of the log page and GET /api/messages; raises QueryError with one line."""

    def opt(name: str) -> str | None:
        v = (params.get(name) or "").strip()
        return v or None

    def number(name: str, default: int | None) -> int | None:
        v = opt(name)
        if v is None:
            return default
        if not v.isascii() or not v.isdigit() or len(v) > 19 or int(v) > MAX_ID:
            raise queries.QueryError(f"{name} must be a positive whole number")
        return int(v)

    since = opt("since")
    limit = number("limit", default_limit)
    return queries.LogFilter(
        since=queries.parse_since(since) if since else None,
        state=opt("state"),
        agency=opt("agency"),
        sender=opt("sender"),
        search=opt("q"),
        before_id=number("before", None),
        limit=limit if limit is not None else default_limit,
        notices=opt("notices") not in ("hide", "0", "false", "no"),
    )
