"""Who is asking: signed session cookies, CSRF tokens, bearer tokens, the login back-off.

The cookie is HMAC-signed (`HttpOnly`, `SameSite=Strict`) and carries the CSRF token and, once
logged in, a random session id whose hash is a row in PostgreSQL (store.sessions): the row,
not the cookie, says who is logged in, so logout, disabling a user or a password change end
the session at once, in every gateway process. Every visitor gets a cookie — anonymous ones
carry only a CSRF token and cost no database row — so the login form is protected like every
other form. Logging in issues a fresh cookie, session id and CSRF token.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from config import Settings

COOKIE = "edocgw_session"
ANON_LIFETIME = 2 * 3600
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


def load_session_key(settings: Settings) -> bytes:
    """The configured key file, else one generated once into data_dir (mode 0600)."""
    configured = settings.admin.session_secret_file
    if configured:
        key = Path(configured).read_bytes().strip()
        if len(key) < 16:
            raise ValueError(f"admin.session_secret_file {configured}: needs at least 16 bytes")
        return key
    path = Path(settings.gateway.data_dir) / "admin-session.key"
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


@dataclass
class Session:
    sid: str | None  # the random session id (its hash is the database row); None: anonymous
    csrf: str
    expires: int
    new: bool = False  # must be (re)sent to the browser


class SessionCodec:
    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"edocgw-admin-session\0" + key).digest()

    def _sign(self, body: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, body, hashlib.sha256).digest()).decode()

    def encode(self, s: Session) -> str:
        body = base64.urlsafe_b64encode(
            json.dumps({"s": s.sid, "c": s.csrf, "e": s.expires}).encode()
        )
        return body.decode() + "." + self._sign(body)

    def decode(self, value: str | None) -> Session | None:
        if not value or "." not in value:
            return None
        body, _, sig = value.rpartition(".")
        if not hmac.compare_digest(sig, self._sign(body.encode())):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body.encode()))
            sid = data.get("s")
            s = Session(sid=str(sid) if sid else None, csrf=str(data["c"]), expires=int(data["e"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return s if s.expires > time.time() else None

    def session(self, request: Request) -> Session:
        """The request's valid session, or a new anonymous one (to be set on the response)."""
        s = self.decode(request.cookies.get(COOKIE))
        if s is None:
            s = anonymous()
        return s

    def set_cookie(self, response: Response, s: Session, request: Request) -> None:
        response.set_cookie(
            COOKIE,
            self.encode(s),
            max_age=max(0, s.expires - int(time.time())),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )


def anonymous() -> Session:
    return Session(
        sid=None,
        csrf=secrets.token_urlsafe(24),
        expires=int(time.time()) + ANON_LIFETIME,
        new=True,
    )


def logged_in(sid: str, lifetime: dt.timedelta) -> Session:
    """The cookie of a session just opened in the database (store.sessions.open_session)."""
    return Session(
        sid=sid,
        csrf=secrets.token_urlsafe(24),
        expires=int(time.time() + lifetime.total_seconds()),
        new=True,
    )


def csrf_ok(session: Session, supplied: str | None) -> bool:
    return bool(supplied) and hmac.compare_digest(session.csrf, str(supplied))


def bearer_token(request: Request) -> str | None:
    h = request.headers.get("authorization", "")
    scheme, _, token = h.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
