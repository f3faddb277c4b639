"""Admin sessions kept in PostgreSQL, in real headless Chromium against the served app: logout
ends the session (the old cookie, replayed with httpx, is refused), disabling the user or a new
password ends an open session, and failed logins from one address do not lock the same user
out from another address."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Browser, Page, expect

from gateway.admin.server import AdminServer
from store import users
from store.db import Database
from tests.admin.seed import ADMIN, ADMIN_PW, Seeded
from tests.admin.test_adm_api import login
from tests.admin.test_adm_browser import shot


async def browser_login(page: Page, base: str, password: str = ADMIN_PW) -> None:
    await page.goto(base + "/messages")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await page.get_by_label("Tên đăng nhập").fill(ADMIN)
    await page.get_by_label("Mật khẩu").fill(password)
    await page.get_by_role("button", name="Đăng nhập · Log in").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Delivery log")


async def session_cookie(page: Page) -> str:
    found = [c["value"] for c in await page.context.cookies() if c["name"] == "edocgw_session"]
    assert len(found) == 1
    return found[0]


async def replay(base: str, cookie: str) -> tuple[int, int]:
    """What a copy of the cookie gets now: the log page and the API."""
    async with httpx.AsyncClient(
        base_url=base, timeout=10, cookies={"edocgw_session": cookie}
    ) as c:
        return (await c.get("/messages")).status_code, (await c.get("/api/messages")).status_code


async def test_logout_ends_the_session(
    browser: Browser, server: AdminServer, seeded: Seeded
) -> None:
    page = await browser.new_page(locale="vi-VN")
    page.set_default_timeout(10_000)
    await browser_login(page, server.url)
    cookie = await session_cookie(page)
    assert await replay(server.url, cookie) == (200, 200)  # a copy works while logged in

    await page.get_by_role("button", name="Đăng xuất · Log out").click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    await shot(page, "sessions-01-logged-out")
    await page.goto(server.url + "/messages")  # the browser is logged out ...
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    # ... and so is every copy of its old cookie, though its signature is still good
    assert await replay(server.url, cookie) == (303, 401)
    # A second tab's "Log out" after the session ended just shows the login page.
    async with httpx.AsyncClient(
        base_url=server.url, timeout=10, cookies={"edocgw_session": cookie}
    ) as c:
        again = await c.post("/logout", data={"csrf": "whatever"})
        assert again.status_code == 303 and again.headers["location"] == "/login"
    await page.context.add_cookies([{"name": "edocgw_session", "value": cookie, "url": server.url}])
    await page.goto(server.url + "/messages")
    await expect(page).to_have_url(re.compile(r"/login\?next="))


async def test_disabling_the_user_or_a_new_password_ends_open_sessions(
    browser: Browser, server: AdminServer, seeded: Seeded, db: Database
) -> None:
    page = await browser.new_page(locale="vi-VN")
    page.set_default_timeout(10_000)
    await browser_login(page, server.url)
    cookie = await session_cookie(page)
    async with db.transaction() as s:  # what `edocgw user disable quantri` does
        await users.set_active(s, ADMIN, False)
    await page.reload()
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    assert await replay(server.url, cookie) == (303, 401)
    async with db.transaction() as s:
        await users.set_active(s, ADMIN, True)
    assert await replay(server.url, cookie) == (303, 401)  # enabling again revives nothing

    await browser_login(page, server.url)
    cookie = await session_cookie(page)
    async with db.transaction() as s:  # what `edocgw user password quantri` does
        await users.set_password(s, ADMIN, "mat-khau-moi-2026")
    await page.goto(server.url + "/queue")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    assert await replay(server.url, cookie) == (303, 401)
    await browser_login(page, server.url, "mat-khau-moi-2026")
    await shot(page, "sessions-02-new-password")


async def test_failures_from_one_address_do_not_lock_out_another(
    browser: Browser, server: AdminServer, seeded: Seeded
) -> None:
    # A stranger on 127.0.0.2 guesses at the admin's name until he has to wait.
    stranger = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=server.url, timeout=10, transport=stranger) as c:
        codes = [(await login(c, ADMIN, f"doan-{i}")).status_code for i in range(6)]
        assert codes == [401] * 6
        limited = await login(c, ADMIN, ADMIN_PW)  # even the right password must wait
        assert limited.status_code == 429
        wait = int(limited.headers["retry-after"])
        assert 1 <= wait <= 6  # the first step of the back-off, not a lock-out
        assert "Too many failed logins" in limited.text
    # The admin, at 127.0.0.1, logs in as usual in the browser.
    page = await browser.new_page(locale="vi-VN")
    page.set_default_timeout(10_000)
    await browser_login(page, server.url)
    await shot(page, "sessions-03-not-locked-out")


async def test_back_off_doubles_and_is_capped(server: AdminServer, seeded: Seeded, db) -> None:
    """The waits the database hands out for one (user, address): 5 free failures, then 5 s,
    10 s, 20 s … capped at [admin] login_backoff_max (15 min)."""
    from sqlalchemy import text

    from store import sessions

    policy = sessions.Backoff(free=5, max_wait=900, free_per_address=20)
    waits = []
    for _ in range(14):
        async with db.transaction() as s:
            await sessions.login_failed(s, "Someone", "192.0.2.7", policy)
            waits.append(
                await s.scalar(
                    text(
                        "SELECT round(extract(epoch FROM locked_until - last_at)) "
                        "FROM admin_login_failures WHERE user_name = 'someone' "
                        "AND client = '192.0.2.7'"
                    )
                )
            )
    assert waits == [None] * 5 + [5, 10, 20, 40, 80, 160, 320, 640, 900]
    async with db.transaction() as s:
        assert await sessions.login_wait(s, "someone", "192.0.2.7") > 800
        assert await sessions.login_wait(s, "someone", "192.0.2.8") == 0  # another address
        assert await sessions.login_wait(s, "other", "192.0.2.7") == 0  # another name
        await sessions.login_succeeded(s, "SOMEONE", "192.0.2.7")
        assert await sessions.login_wait(s, "someone", "192.0.2.7") == 0
