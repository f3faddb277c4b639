"""The web admin in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright):
log in, filter the log by agency, open a message and read its facts, verdict and timeline,
release a held message and watch the running service deliver it to the agency's mail server.
A screenshot of every page is saved under test-output/screenshots/."""

from __future__ import annotations

import re

from playwright.async_api import Browser, Page, expect

from tests.admin.conftest import (
    SCREENSHOTS,
    Running,
)
from tests.admin.seed import ADMIN, ADMIN_PW, G22, H53, Seeded


async def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def test_admin_in_a_real_browser(browser: Browser, running: Running, seeded: Seeded) -> None:
    base = running.admin.url
    page = await browser.new_page(viewport={"width": 1280, "height": 900}, locale="vi-VN")
    page.set_default_timeout(10_000)
    await page.goto(base + "/")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await shot(page, "01-login")
    await page.get_by_label("Tên đăng nhập").fill(ADMIN)
    await page.get_by_label("Mật khẩu").fill("sai")
    await page.get_by_role("button", name="Đăng nhập · Log in").click()
    await expect(page.get_by_role("alert")).to_contain_text("Sai tên hoặc mật khẩu")
    await page.get_by_label("Mật khẩu").fill(ADMIN_PW)
    await page.get_by_role("button", name="Đăng nhập · Log in").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Delivery log")
    await shot(page, "02-log")
    log_rows = page.locator("table.log tbody tr")
    for subject in ("Giấy mời họp trực tuyến", "Chỉ thị 15/CT-TTg", "Báo cáo tình hình an ninh"):
        await expect(log_rows.filter(has_text=subject)).to_have_count(1)

    # Filter by agency: the two messages for Tây Ninh.
    await page.get_by_label("Cơ quan · Agency").fill(H53)
    await page.get_by_role("button", name="Lọc · Filter").click()
    rows = page.locator("table.log tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0)).to_contain_text("V/v triển khai phần mềm quản lý văn bản")
    await expect(rows.nth(1)).to_contain_text("Thông báo kết luận cuộc họp")
    await shot(page, "03-log-filtered")

    # Open the Công văn: facts, the invalid signature, the deferred delivery's attempts.
    await page.get_by_role(
        "link", name="V/v triển khai phần mềm quản lý văn bản", exact=True
    ).click()
    await expect(page.locator("table.facts")).to_contain_text("Công văn")
    await expect(page.locator("table.facts")).to_contain_text("123/UBND-VP")
    await expect(page.locator("table.facts")).to_contain_text("UBND tỉnh Tây Ninh")
    await expect(page.locator("table.sigs")).to_contain_text("invalid")
    await expect(page.locator("table.sigs")).to_contain_text("digest_mismatch")
    e_document = page.locator("table.facts tr.e-document")
    await expect(e_document).to_contain_text("not conformant")
    await expect(e_document).to_contain_text("no_organisation_signature")
    await expect(e_document).to_contain_text("Nguyễn Văn An")
    delivery = page.locator("article.delivery")
    await expect(delivery).to_contain_text("deferred")
    await expect(delivery.locator("ol.timeline li")).to_have_count(
        4
    )  # routed, 2 attempts, deferred
    await expect(delivery).to_contain_text("4.7.0 Try again later")
    await shot(page, "04-message")

    # The raw message downloads byte for byte.
    async with page.expect_download() as dl_info:
        await page.get_by_role("link", name=re.compile("Download raw message")).click()
    download = await dl_info.value
    assert (await download.path()).read_bytes() == seeded.raw["congvan"]  # a small file

    # The queue page with its per-agency age shape.
    await page.get_by_role("link", name="Hàng đợi · Queue").click()
    # (the live service may already have bounced the 2-day-old queued one: H53 has no MX here)
    await expect(page.locator("table.qshape")).to_contain_text(H53)  # the deferred Công văn
    await shot(page, "05-queue")

    # Release the held Giấy mời to the Government Office and see its delivery queued.
    await page.get_by_role("link", name=re.compile("Chờ xử lý")).click()
    held_rows = page.locator("table.log tbody tr")
    await expect(held_rows).to_have_count(2)  # the held Giấy mời and the quarantined report
    await shot(page, "06-held")
    row = held_rows.filter(has_text="Giấy mời họp trực tuyến")
    await row.get_by_label("agency code").fill(G22)
    await row.get_by_role("button", name="Phát hành · Release").click()
    await expect(held_rows).to_have_count(1)
    await expect(held_rows.first).to_contain_text("Báo cáo tình hình an ninh")
    await page.get_by_role("link", name="Nhật ký · Log").click()
    await page.get_by_role("link", name="Giấy mời họp trực tuyến", exact=True).click()
    await expect(page.locator("h1")).to_contain_text("processed")
    await expect(page.locator("article.delivery")).to_contain_text(G22)
    await expect(page.locator("ol.timeline").last).to_contain_text(f"web:{ADMIN}")
    await shot(page, "07-released")
    badge = page.locator("article.delivery .badge").first
    for _ in range(60):  # the delivery workers send it within moments; reload to see it
        if await badge.inner_text() == "delivered":
            break
        await page.wait_for_timeout(250)
        await page.reload()
    await expect(badge).to_have_text("delivered")
    await expect(page.locator("article.delivery")).to_contain_text("250 2.0.0 Ok: queued as SINK")
    await shot(page, "08-delivered")
    assert any(b"Gi" in g and b"X-Edocgw-Id" in g for g in running.sink.got)
    await page.close()
