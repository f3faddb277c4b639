"""Issue 15 §4: the Directive 15 usage report, on a small hand-made set whose answers are
known: `edocgw report` (table, --json, --csv, --since/--until in Vietnam's days) as a real
subprocess, and the web page with its monthly chart in real headless Chromium."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import insert

from config import Settings
from gateway.admin.server import AdminServer
from store import users
from store.agencies import AgencyIn, upsert_agency
from store.db import Database
from store.models import Delivery, Message
from tests.admin.conftest import SCREENSHOTS
from tests.support.cli import edocgw, write_config

VN = dt.timezone(dt.timedelta(hours=7))
G22, H01, H36, H53 = "000.00.00.G22", "000.00.00.H01", "000.00.00.H36", "000.00.00.H53"
ADMIN, ADMIN_PW = "baocao", "mat-khau-bao-cao"


def at(y: int, mo: int, d: int, h: int = 9, mi: int = 0) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, tzinfo=VN)


# (received, sender, verdict, source, duplicate, [(agency, recipient, state, seconds)])
MESSAGES = [
    ("m1", at(2026, 1, 10), "vanthu@tayninh.gov.vn", "valid", "smtp", False,
     [(G22, "vanthu@chinhphu.vn", "delivered", 60), (H36, "vanban@lamdong.gov.vn", "delivered", 180)]),
    ("m2", at(2026, 1, 20), "so.noivu@tayninh.gov.vn", "invalid", "smtp", False,
     [(G22, "vanthu@chinhphu.vn", "delivered", 120), (H36, "vanban@lamdong.gov.vn", "deferred", None)]),
    ("m8", at(2026, 1, 31, 23, 30), "vanthu@chinhphu.vn", "unsigned", "imap", False, []),
    ("m3", at(2026, 2, 5), "VanThu@ChinhPhu.vn", "valid", "smtp", False,
     [(H53, "vanthu@tayninh.gov.vn", "delivered", 30), (H53, "snv@tayninh.gov.vn", "delivered", 50)]),
    ("m6", at(2026, 2, 7), "vanthu@tayninh.gov.vn", "valid", "smtp", True, []),
    ("m4", at(2026, 2, 28, 23, 50), "someone@example.org", "unsigned", "smtp", False,
     [(H53, "vanthu@tayninh.gov.vn", "held", None), (H36, "vanban@lamdong.gov.vn", "bounced", None)]),
    ("m5", at(2026, 3, 1), "postmaster@gw.test.gov.vn", None, "internal", False,
     [(H53, "vanthu@tayninh.gov.vn", "delivered", 5)]),
    ("m7", at(2026, 3, 3), "vanthu@tayninh.gov.vn", "valid", "smtp", False,
     [(G22, "vanthu@chinhphu.vn", "delivered", 300)]),
]  # fmt: skip

ALL_TIME = {
    G22: (2, 3, 3, 1, 120.0),  # in (m3, m8), out (m1, m2, m7), delivered, signed valid, median
    H01: (0, 0, 0, 0, None),
    H36: (0, 3, 1, 0, 180.0),  # out: m1 delivered, m2 deferred, m4 bounced
    H53: (3, 2, 2, 2, 40.0),  # in: m1, m2, m7; out: m3 to two inboxes; m4 held is not out
}
FEBRUARY = {
    G22: (1, 0, 0, 1, None),
    H01: (0, 0, 0, 0, None),
    H36: (0, 1, 0, 0, None),
    H53: (0, 2, 2, 0, 40.0),
}
MONTHS = [("2026-01", 3, 4, 3), ("2026-02", 1, 3, 2), ("2026-03", 1, 1, 1)]


async def seed_usage(db: Database) -> None:
    async with db.transaction() as s:
        for code, name, address, domains in (
            (G22, "Văn phòng Chính phủ", "vanthu@chinhphu.vn", ["chinhphu.vn"]),
            (H01, "UBND thành phố Hà Nội", "vanthu@hanoi.gov.vn", ["hanoi.gov.vn"]),
            (H36, "UBND tỉnh Lâm Đồng", "vanban@lamdong.gov.vn", ["lamdong.gov.vn"]),
            (H53, "UBND tỉnh Tây Ninh", "vanthu@tayninh.gov.vn", ["tayninh.gov.vn"]),
        ):
            await upsert_agency(s, AgencyIn(code, name, address, domains=domains))
        ids: dict[str, int] = {}
        for key, received, sender, verdict, source, duplicate, deliveries in MESSAGES:
            raw = f"Subject: {key}\r\n\r\n{key}\r\n".encode()
            mid = (
                await s.execute(
                    insert(Message)
                    .values(
                        received_at=received,
                        source=source,
                        peer="127.0.0.1",
                        mail_from=sender,
                        rcpt_to=[r for _, r, _, _ in deliveries],
                        subject=key,
                        size=len(raw),
                        sha256=hashlib.sha256(raw).hexdigest(),
                        raw=raw,
                        state="processed",
                        verdict=verdict,
                        duplicate_of=ids["m1"] if duplicate else None,
                    )
                    .returning(Message.id)
                )
            ).scalar_one()
            ids[key] = mid
            for code, rcpt, state, seconds in deliveries:
                await s.execute(
                    insert(Delivery).values(
                        message_id=mid,
                        recipient=rcpt,
                        agency_code=code,
                        state=state,
                        created_at=received,
                        delivered_at=(
                            received + dt.timedelta(seconds=seconds)
                            if seconds is not None
                            else None
                        ),
                    )
                )


def _rows(doc: dict) -> dict[str, tuple]:
    return {
        a["code"]: (
            a["documents_in"],
            a["documents_out"],
            a["delivered"],
            a["signed_valid"],
            a["median_seconds_to_deliver"],
        )
        for a in doc["agencies"]
    }


@pytest.fixture
def cfg(tmp_path: Path, db_url: str) -> str:
    return str(write_config(tmp_path / "edocgw.toml", db_url, tmp_path / "var"))


async def test_report_json_csv_and_table(db: Database, cfg: str) -> None:
    await seed_usage(db)
    r = edocgw("report", "--json", "--config", cfg)
    assert r.code == 0, r.err
    doc = json.loads(r.out)  # exactly one JSON document on stdout
    assert list(doc) == ["since", "until", "agencies"]
    assert doc["since"] is None and doc["until"] is None
    assert [list(a) for a in doc["agencies"]] == [
        [
            "code",
            "name",
            "documents_in",
            "documents_out",
            "delivered",
            "signed_valid",
            "median_seconds_to_deliver",
        ]
    ] * 4
    assert [a["code"] for a in doc["agencies"]] == [G22, H01, H36, H53]
    assert doc["agencies"][0]["name"] == "Văn phòng Chính phủ"
    assert _rows(doc) == ALL_TIME

    # February, in Vietnam's days: m8 (31 Jan 23:30 +07) is out, m4 (28 Feb 23:50 +07) is in.
    r = edocgw(
        "report", "--since", "2026-02-01", "--until", "2026-02-28", "--json", "--config", cfg
    )
    assert r.code == 0, r.err
    feb = json.loads(r.out)
    assert (feb["since"], feb["until"]) == ("2026-02-01", "2026-02-28")
    assert _rows(feb) == FEBRUARY

    r = edocgw("report", "--csv", "--since", "2026-02-01", "--until", "2026-02-28", "--config", cfg)
    assert r.code == 0, r.err
    table = list(csv.reader(io.StringIO(r.out)))
    assert table[0] == [
        "code", "name", "documents_in", "documents_out", "delivered", "signed_valid",
        "median_seconds_to_deliver",
    ]  # fmt: skip
    assert table[4] == [H53, "UBND tỉnh Tây Ninh", "0", "2", "2", "0", "40.0"]
    assert table[2] == [H01, "UBND thành phố Hà Nội", "0", "0", "0", "0", ""]

    r = edocgw("report", "--config", cfg)
    assert r.code == 0 and "MEDIAN_S" in r.out and "UBND tỉnh Lâm Đồng" in r.out

    r = edocgw("report", "--since", "01/02/2026", "--config", cfg)
    assert r.code == 1 and "--since" in r.err and "Traceback" not in r.err
    r = edocgw("report", "--since", "2026-03-01", "--until", "2026-02-01", "--config", cfg)
    assert r.code == 1 and "after" in r.err


async def test_report_page_in_a_real_browser(
    browser: Browser, settings: Settings, db: Database
) -> None:
    await seed_usage(db)
    async with db.transaction() as s:
        await users.add_user(s, ADMIN, ADMIN_PW, ["admin"])
    srv = AdminServer(settings, db)
    await srv.start()
    try:
        page = await browser.new_page(viewport={"width": 1280, "height": 900}, locale="vi-VN")
        page.set_default_timeout(10_000)
        await page.goto(srv.url + "/report")
        await page.get_by_label("Tên đăng nhập").fill(ADMIN)
        await page.get_by_label("Mật khẩu").fill(ADMIN_PW)
        await page.get_by_role("button", name="Đăng nhập · Log in").click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("Usage report")
        # The chart: one group per month, three bars each, the values in their titles.
        groups = page.locator("svg.chart g.month")
        await expect(groups).to_have_count(3)
        for i, (month, n_in, n_out, n_done) in enumerate(MONTHS):
            g = groups.nth(i)
            assert await g.get_attribute("data-month") == month
            values = [
                int(await g.locator(f"rect.{k}").get_attribute("data-value") or -1)
                for k in ("documents_in", "documents_out", "delivered")
            ]
            assert values == [n_in, n_out, n_done]
            box = await g.locator("rect.documents_out").bounding_box()
            assert box is not None and box["height"] > 0  # drawn, not just listed
        await expect(groups.nth(0).locator("text")).to_have_text("2026-01")
        row = page.locator("table.agencies tr[data-code='000.00.00.H53'] td")
        await expect(row).to_have_text(
            ["000.00.00.H53", "UBND tỉnh Tây Ninh", "3", "2", "2", "2", "40"]
        )
        row = page.locator("table.agencies tr[data-code='000.00.00.H01'] td")
        await expect(row.nth(6)).to_have_text("-")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "report-all.png"), full_page=True)

        # February only, through the form.
        await page.get_by_label("Từ ngày · Since").fill("2026-02-01")
        await page.get_by_label("Đến ngày · Until").fill("2026-02-28")
        await page.get_by_role("button", name="Xem · Show").click()
        await expect(page).to_have_url(srv.url + "/report?since=2026-02-01&until=2026-02-28")
        await expect(groups).to_have_count(1)
        await expect(page.locator("table.months tbody tr")).to_have_text(
            ["2026-02 1 3 2"], use_inner_text=True
        )
        row = page.locator("table.agencies tr[data-code='000.00.00.H36'] td")
        await expect(row).to_have_text(
            ["000.00.00.H36", "UBND tỉnh Lâm Đồng", "0", "1", "0", "0", "-"]
        )
        await page.screenshot(path=str(SCREENSHOTS / "report-february.png"), full_page=True)

        await page.goto(srv.url + "/report?since=hôm-qua")
        await expect(page.get_by_role("alert")).to_contain_text("since")
    finally:
        await srv.stop()
