"""Web admin sessions and the login back-off, kept in PostgreSQL.

A session is a row keyed by the SHA-256 of the random id in the browser's cookie: logging
out, disabling the user or changing the password deletes the rows, and the next request with
the old cookie is anonymous. Failed logins are counted per (user name, client address), so a
stranger guessing at the admin's name slows down only himself; after `free` failures each
further one doubles the wait, up to a cap.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import AdminLoginFailure, AdminSession, User
from store.users import UserInfo

ANY_NAME = ""  # the per-address row that counts failures under every name
FORGET_AFTER = dt.timedelta(hours=24)  # a quiet (user, address) starts again from zero
FIRST_WAIT = 5.0  # seconds after the first failure past the free ones; then it doubles


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


async def open_session(session: AsyncSession, user_name: str, lifetime: dt.timedelta) -> str:
    """A new session for `user_name`; returns the random id for the cookie (kept only hashed).
    Expired rows are swept here, so the table stays as small as the number of live logins."""
    await session.execute(delete(AdminSession).where(AdminSession.expires_at <= func.now()))
    sid = secrets.token_urlsafe(32)
    session.add(
        AdminSession(
            id_hash=_hash(sid),
            user_name=user_name,
            expires_at=dt.datetime.now(dt.UTC) + lifetime,
        )
    )
    await session.flush()
    return sid


async def session_user(session: AsyncSession, session_id: str) -> UserInfo | None:
    """The active user of a live session, or None (ended, expired, unknown, user disabled)."""
    row = (
        await session.execute(
            select(User.name, User.roles, User.active)
            .join(AdminSession, AdminSession.user_name == User.name)
            .where(AdminSession.id_hash == _hash(session_id), AdminSession.expires_at > func.now())
        )
    ).first()
    if row is None or not row.active:
        return None
    return UserInfo(name=row.name, roles=tuple(row.roles), active=row.active)


async def end_session(session: AsyncSession, session_id: str) -> None:
    await session.execute(delete(AdminSession).where(AdminSession.id_hash == _hash(session_id)))


async def end_user_sessions(session: AsyncSession, user_name: str) -> int:
    """End every session of `user_name` (disabled, password changed); returns how many."""
    res = await session.execute(delete(AdminSession).where(AdminSession.user_name == user_name))
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Backoff:
    free: int  # failures allowed before any wait
    max_wait: float  # seconds; the doubling stops here
    free_per_address: int  # failures under any name from one address before it waits


async def login_wait(session: AsyncSession, name: str, client: str) -> int:
    """Whole seconds until (name, client) may try again; 0 when it may now."""
    wait = await session.scalar(
        select(func.max(func.extract("epoch", AdminLoginFailure.locked_until - func.now()))).where(
            AdminLoginFailure.client == client,
            AdminLoginFailure.user_name.in_((name.casefold(), ANY_NAME)),
            AdminLoginFailure.locked_until > func.now(),
        )
    )
    return int(wait) + 1 if wait is not None and wait > 0 else 0


_FAIL = text(
    """INSERT INTO admin_login_failures AS f (user_name, client, failures, last_at, locked_until)
VALUES (:name, :client, 1, now(), CASE WHEN 1 > :free THEN now() + make_interval(secs => :base) END)
ON CONFLICT (user_name, client) DO UPDATE SET
    failures = CASE WHEN f.last_at < now() - make_interval(secs => :forget) THEN 1
                    ELSE f.failures + 1 END,
    last_at = now(),
    locked_until = CASE
        WHEN f.last_at < now() - make_interval(secs => :forget) THEN NULL
        WHEN f.failures + 1 > :free THEN now() + make_interval(
            secs => LEAST(:cap, :base * power(2, LEAST(f.failures + 1 - :free - 1, 40))))
        END"""
)


async def login_failed(session: AsyncSession, name: str, client: str, policy: Backoff) -> None:
    """Count one failure for (name, client) and for the address under any name: past the
    free failures, the k-th extra one locks the pair for FIRST_WAIT·2^(k-1) s (capped)."""
    forget = FORGET_AFTER.total_seconds()
    for key, free in ((name.casefold(), policy.free), (ANY_NAME, policy.free_per_address)):
        await session.execute(
            _FAIL,
            {
                "name": key,
                "client": client,
                "free": free,
                "cap": policy.max_wait,
                "base": FIRST_WAIT,
                "forget": forget,
            },
        )


async def login_succeeded(session: AsyncSession, name: str, client: str) -> None:
    """A right password clears that pair's count (the address's total stays: a sprayer who
    guesses one account right does not get a fresh budget for the others)."""
    await session.execute(
        delete(AdminLoginFailure).where(
            AdminLoginFailure.user_name == name.casefold(), AdminLoginFailure.client == client
        )
    )
    await session.execute(
        delete(AdminLoginFailure).where(AdminLoginFailure.last_at < func.now() - FORGET_AFTER)
    )
