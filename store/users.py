"""Users for SMTP AUTH and the web admin: scrypt password hashes and API tokens."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import AdminSession, User

ROLES = ("submit", "admin")
_N, _R, _P = 2**14, 8, 1


class UserError(Exception):
    pass


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    key = Scrypt(salt=salt, length=32, n=_N, r=_R, p=_P).derive(password.encode())
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(key).decode()}"


def check_password(password: str, stored: str) -> bool:
    """Constant-time check; a malformed stored hash simply fails."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        kdf = Scrypt(salt=base64.b64decode(salt), length=32, n=int(n), r=int(r), p=int(p))
        kdf.verify(password.encode(), base64.b64decode(key))
        return True
    except (ValueError, InvalidKey):
        return False


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class UserInfo:
    name: str
    roles: tuple[str, ...]
    active: bool


def _info(u: User) -> UserInfo:
    return UserInfo(name=u.name, roles=tuple(u.roles), active=u.active)


async def add_user(session: AsyncSession, name: str, password: str, roles: list[str]) -> UserInfo:
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if not name or any(c.isspace() for c in name):
        raise UserError("user name must be non-empty and without spaces")
    if len(password) < 8:
        raise UserError("password must have at least 8 characters")
    if await session.scalar(select(User.id).where(User.name == name)) is not None:
        raise UserError(f"user {name} already exists")
    u = User(name=name, password_hash=hash_password(password), roles=sorted(set(roles)))
    session.add(u)
    await session.flush()
    return _info(u)


async def list_users(session: AsyncSession) -> list[UserInfo]:
    return [_info(u) for u in (await session.scalars(select(User).order_by(User.name))).all()]


async def set_active(session: AsyncSession, name: str, active: bool) -> None:
    """Enable or disable a user; disabling ends their web sessions in the same transaction."""
    res = await session.execute(update(User).where(User.name == name).values(active=active))
    if res.rowcount == 0:  # type: ignore[attr-defined]
        raise UserError(f"no user {name}")
    if not active:
        await session.execute(delete(AdminSession).where(AdminSession.user_name == name))


async def set_password(session: AsyncSession, name: str, password: str) -> None:
    """A new password; every web session of the user ends with the old one."""
    if len(password) < 8:
        raise UserError("password must have at least 8 characters")
    res = await session.execute(
        update(User).where(User.name == name).values(password_hash=hash_password(password))
    )
    if res.rowcount == 0:  # type: ignore[attr-defined]
        raise UserError(f"no user {name}")
    await session.execute(delete(AdminSession).where(AdminSession.user_name == name))


async def authenticate(
    session: AsyncSession, name: str, password: str, role: str
) -> UserInfo | None:
    """The user if the password is right, the account active and the role held.

    scrypt costs ~20-50 ms of CPU, so it runs in a thread, never on the event loop; an
    unknown name costs the same as a known one."""
    u = await session.scalar(select(User).where(User.name == name))
    stored = u.password_hash if u is not None else _DUMMY_HASH
    good = await asyncio.to_thread(check_password, password, stored)
    if u is None or not good or not u.active or role not in u.roles:
        return None
    return _info(u)


async def new_token(session: AsyncSession, name: str) -> str:
    """Issue an API token (shown once; only its hash is kept)."""
    token = "edocgw_" + secrets.token_urlsafe(32)
    res = await session.execute(
        update(User).where(User.name == name).values(token_hash=_token_hash(token))
    )
    if res.rowcount == 0:  # type: ignore[attr-defined]
        raise UserError(f"no user {name}")
    return token


async def user_for_token(session: AsyncSession, token: str) -> UserInfo | None:
    u = await session.scalar(select(User).where(User.token_hash == _token_hash(token)))
    if u is None or not u.active or u.token_hash is None:
        return None
    if not hmac.compare_digest(u.token_hash, _token_hash(token)):
        return None
    return _info(u)


_DUMMY_HASH = hash_password("not-a-real-password")
