"""Who is asking: signed session cookies, CSRF tokens, bearer tokens, the login rate limit.

The session lives entirely in one HMAC-signed cookie (`HttpOnly`, `SameSite=Strict`), so
several gateway processes behind one address share logins as long as they share the key
file. Every visitor gets a session — anonymous ones carry only a CSRF token — so the login
form is protected like every other form. Logging in issues a fresh cookie and CSRF token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from config import Settings

COOKIE = "edocgw_session"
SESSION_LIFETIME = 8 * 3600
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
    user: str | None
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
            json.dumps({"u": s.user, "c": s.csrf, "e": s.expires}).encode()
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
            s = Session(user=data["u"], csrf=str(data["c"]), expires=int(data["e"]))
        except (ValueError, KeyError, TypeError):
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
        user=None,
        csrf=secrets.token_urlsafe(24),
        expires=int(time.time()) + ANON_LIFETIME,
        new=True,
    )


def logged_in(user: str) -> Session:
    return Session(
        user=user,
        csrf=secrets.token_urlsafe(24),
        expires=int(time.time()) + SESSION_LIFETIME,
        new=True,
    )


def csrf_ok(session: Session, supplied: str | None) -> bool:
    return bool(supplied) and hmac.compare_digest(session.csrf, str(supplied))


def bearer_token(request: Request) -> str | None:
    h = request.headers.get("authorization", "")
    scheme, _, token = h.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class LoginLimiter:
    """At most `limit` failed logins per client address and per user name in `window` s."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures[key]
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, keys: list[str]) -> int:
        """Seconds to wait before another attempt, 0 when allowed."""
        now = time.monotonic()
        wait = 0.0
        for k in keys:
            q = self._recent(k, now)
            if len(q) >= self.limit:
                wait = max(wait, q[0] + self.window - now)
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, keys: list[str]) -> None:
        now = time.monotonic()
        for k in keys:
            self._recent(k, now).append(now)
        if len(self._failures) > 10_000:  # forget idle keys so memory stays bounded
            for k in [k for k, q in self._failures.items() if not self._recent(k, now)]:
                del self._failures[k]
