"""STARTTLS and AUTH: only after STARTTLS, against `users` with role submit, rate-limited."""

from __future__ import annotations

import asyncio
import base64
import smtplib
import ssl

from config import Settings
from gateway.smtp import SmtpListener
from store.db import Database
from tests.smtp.clients import HOST, TIMEOUT, raw_session, send, stored, swaks
from tests.smtp.conftest import PASSWORD, UTF8_PASSWORD, StartGateway


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _login_reply(port: int, user: str, password: str, starttls: bool = True) -> int:
    with smtplib.SMTP(HOST, port, timeout=TIMEOUT) as c:
        c.ehlo("client.test")
        if starttls:
            c.starttls(context=_tls())
            c.ehlo("client.test")
        # one AUTH PLAIN (smtplib's login() would try every mechanism, failing twice)
        blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return c.docmd("AUTH", "PLAIN " + blob)[0]


async def test_submission_with_swaks_starttls_and_auth_relays_anywhere(
    settings: Settings, users: None, db: Database, start_gateway: StartGateway
) -> None:
    settings.smtp.relay_networks = ["10.99.0.0/16"]  # type: ignore[list-item]
    gw = await start_gateway()
    for mech, user, password in (
        ("PLAIN", "staff", PASSWORD),
        ("LOGIN", "nhanvien", UTF8_PASSWORD),
    ):
        rc, out = await swaks(
            "--port", str(gw.submission_port), "--ehlo", "client.test",
            "--from", "staff@a.test", "--to", "someone@foreign.test",
            "--tls", "--auth", mech, "--auth-user", user, "--auth-password", password,
        )  # fmt: skip
        assert rc == 0, out
        assert "250 2.0.0 Ok: queued as" in out
    rows = await stored(db)
    assert [m.auth_user for m in rows] == ["staff", "nhanvien"]
    assert all(m.raw for m in rows)
    assert rows[0].rcpt_to == ["someone@foreign.test"]


async def test_auth_is_refused_before_starttls(gw: SmtpListener, users: None) -> None:
    blob = base64.b64encode(f"\0staff\0{PASSWORD}".encode())
    for port, refusal in ((gw.relay_port, 538), (gw.submission_port, 530)):
        greeting, ehlo, auth = await asyncio.to_thread(
            raw_session, port, [b"EHLO client.test\r\n", b"AUTH PLAIN " + blob + b"\r\n"]
        )
        assert greeting.code == 220
        assert "STARTTLS" in ehlo.text and "AUTH" not in ehlo.text
        assert auth.code == refusal, auth


async def test_submission_requires_auth_even_from_relay_networks(gw: SmtpListener) -> None:
    def attempt() -> int:
        with smtplib.SMTP(HOST, gw.submission_port, timeout=TIMEOUT) as c:
            c.ehlo("client.test")
            before_tls = c.mail("staff@a.test")[0]
            c.starttls(context=_tls())
            c.ehlo("client.test")
            after_tls = c.mail("staff@a.test")[0]
            return before_tls * 1000 + after_tls

    assert await asyncio.to_thread(attempt) == 530 * 1000 + 530


async def test_wrong_password_unknown_user_and_wrong_role_get_535(
    gw: SmtpListener, users: None
) -> None:
    port = gw.submission_port
    assert await asyncio.to_thread(_login_reply, port, "staff", "wrong") == 535
    assert await asyncio.to_thread(_login_reply, port, "ghost", PASSWORD) == 535
    assert await asyncio.to_thread(_login_reply, port, "webadmin", PASSWORD) == 535
    assert await asyncio.to_thread(_login_reply, port, "staff", PASSWORD) == 235


async def test_relay_listener_auth_allows_relay_from_outside_networks(
    settings: Settings, users: None, db: Database, start_gateway: StartGateway
) -> None:
    settings.smtp.relay_networks = ["10.99.0.0/16"]  # type: ignore[list-item]
    gw = await start_gateway()
    refused, _ = await send(gw.relay_port, ["someone@foreign.test"])
    assert refused["someone@foreign.test"].code == 550
    refused, reply = await send(
        gw.relay_port, ["someone@foreign.test"], starttls=True, login=("staff", PASSWORD)
    )
    assert refused == {} and reply.code == 250
    (m,) = await stored(db)
    assert m.auth_user == "staff"


async def test_failed_auth_is_rate_limited_per_ip(
    settings: Settings, users: None, start_gateway: StartGateway
) -> None:
    settings.smtp.auth_failures_per_minute = 3
    gw = await start_gateway()
    port = gw.submission_port
    for _ in range(3):
        assert await asyncio.to_thread(_login_reply, port, "staff", "wrong") == 535

    def blocked() -> tuple[int, bool]:
        with smtplib.SMTP(HOST, port, timeout=TIMEOUT) as c:
            c.ehlo("client.test")
            c.starttls(context=_tls())
            c.ehlo("client.test")
            code, _ = c.docmd(
                "AUTH", "PLAIN " + base64.b64encode(f"\0staff\0{PASSWORD}".encode()).decode()
            )
            try:
                c.noop()
                closed = False
            except smtplib.SMTPServerDisconnected:
                closed = True
            return code, closed

    # even the right password is refused now, and the connection is closed
    assert await asyncio.to_thread(blocked) == (421, True)


async def test_self_signed_certificate_is_made_once_and_reused(
    settings: Settings, start_gateway: StartGateway
) -> None:
    await start_gateway()
    folder = settings.gateway.data_dir / "tls"
    cert = (folder / "selfsigned.crt").read_bytes()
    assert (folder / "selfsigned.key").stat().st_mode & 0o077 == 0  # key not readable by others
    await start_gateway()  # a restart (second instance on the same data_dir)
    assert (folder / "selfsigned.crt").read_bytes() == cert
