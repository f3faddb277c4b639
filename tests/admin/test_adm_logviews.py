"""Log views as an operator reads them: `edocgw log` pages past 1000 (--before, --all),
leaves the gateway's own notices out on request (CLI and a web toggle in Chromium), shows
urgency and why a message waits, and prints event details as text, not Python reprs."""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.async_api import Browser, expect
from sqlalchemy import text

from gateway.admin.server import AdminServer
from store.db import Database
from store.events import append_event
from tests.admin.seed import Seeded
from tests.admin.test_adm_browser import shot
from tests.admin.test_adm_cli import config_file, run  # noqa: F401  (fixture)
from tests.admin.test_adm_sessions import browser_login

SEEDED = 5  # messages in tests/admin/seed.py


async def add_messages(db: Database, n: int, source: str = "smtp", subject: str = "Thư") -> None:
    """n plain processed messages (one statement: a big log without n round trips)."""
    async with db.transaction() as s:
        await s.execute(
            text(
                "INSERT INTO messages (source, peer, mail_from, rcpt_to, subject, size, sha256,"
                " raw, state) SELECT :src, 'test', 'a@b.vn', ARRAY['c@d.vn'], :subj || ' ' || i,"
                " 1, md5(i::text), 'x', 'processed' FROM generate_series(1, :n) AS i"
            ),
            {"src": source, "subj": subject, "n": n},
        )


async def log_ids(config: Path, *args: str) -> list[int]:
    code, out, err = await run(config, "log", "--json", *args)
    assert code == 0, err
    return [m["id"] for m in json.loads(out)["messages"]]


async def test_log_pages_past_a_thousand(
    config_file: Path,  # noqa: F811
    db: Database,
    seeded: Seeded,
) -> None:
    await add_messages(db, 1100)
    everything = await log_ids(config_file, "--all")
    assert len(everything) == 1100 + SEEDED == len(set(everything))
    first = await log_ids(config_file, "--limit", "1000")
    assert first == everything[:1000]
    rest = await log_ids(config_file, "--limit", "1000", "--before", str(first[-1]))
    assert first + rest == everything  # the next page, from where the first stopped
    assert await log_ids(config_file, "--before", str(everything[-1])) == []
    code, out, err = await run(config_file, "log", "--limit", "5000")
    assert code == 1 and out == ""
    assert err.strip().count("\n") == 0 and "--all" in err and "--before" in err
    code, out, _ = await run(config_file, "log", "--all", "--search", "Thư 10")
    assert code == 0 and len(out.splitlines()) == 1 + 111  # header; Thư 10, 100-109, 1000-1099


async def test_notices_hidden_reason_and_urgency(
    config_file: Path,  # noqa: F811
    db: Database,
    seeded: Seeded,
) -> None:
    await add_messages(db, 3, source="internal", subject="Thông báo đã nhận")
    shown = await log_ids(config_file)
    hidden = await log_ids(config_file, "--no-notices")
    assert len(shown) == SEEDED + 3 and sorted(hidden) == sorted(seeded.ids.values())

    code, out, _ = await run(config_file, "log", "--json", "--no-notices")
    by_id = {m["id"]: m for m in json.loads(out)["messages"]}
    assert by_id[seeded.ids["giaymoi"]]["reason"] == "no destination"
    assert by_id[seeded.ids["mat"]]["reason"] == "secrecy: Mật"
    assert by_id[seeded.ids["chithi"]]["urgency"] == "Khẩn"
    assert by_id[seeded.ids["chithi"]]["reason"] is None
    code, out, _ = await run(config_file, "log", "--no-notices")
    lines = {int(line.split()[0]): line for line in out.splitlines()[1:]}
    assert "no destination" in lines[seeded.ids["giaymoi"]]
    assert "Khẩn" in lines[seeded.ids["chithi"]]


async def test_show_prints_event_details_as_text(
    config_file: Path,  # noqa: F811
    db: Database,
    seeded: Seeded,
) -> None:
    mid = seeded.ids["giaymoi"]
    async with db.transaction() as s:
        await append_event(
            s,
            "released",
            message_id=mid,
            detail={"by": "cli:an", "to": ["000.00.00.G22", "000.00.00.H53"], "force": False,
                    "routing": {"unresolved": ["Sở Nội vụ"], "note": None}},
        )  # fmt: skip
    code, out, _ = await run(config_file, "show", str(mid))
    assert code == 0
    line = next(x for x in out.splitlines() if "released" in x)
    assert "to: 000.00.00.G22, 000.00.00.H53" in line and "force: no" in line
    assert "routing: (unresolved: Sở Nội vụ)" in line
    assert "[" not in line.split("released", 1)[1] and "{" not in line and "None" not in line


async def test_web_log_hides_notices_and_shows_reason_and_urgency(
    browser: Browser,
    server: AdminServer,
    db: Database,
    seeded: Seeded,
) -> None:
    await add_messages(db, 2, source="internal", subject="Thông báo không chuyển được")
    page = await browser.new_page(viewport={"width": 1400, "height": 900}, locale="vi-VN")
    page.set_default_timeout(10_000)
    await browser_login(page, server.url)
    rows = page.locator("table.log tbody tr")
    await expect(rows).to_have_count(SEEDED + 2)
    headers = page.locator("table.log thead th")
    for h in ("Độ khẩn · Urgency", "Lý do · Reason", "Trạng thái · State"):
        await expect(headers.filter(has_text=h)).to_have_count(1)
    await expect(rows.filter(has_text="Giấy mời họp trực tuyến")).to_contain_text("no destination")
    await expect(rows.filter(has_text="Chỉ thị 15/CT-TTg")).to_contain_text("Khẩn")

    await page.get_by_label("Ẩn thông báo · Hide notices").check()
    await page.get_by_role("button", name="Lọc · Filter").click()
    await expect(page).to_have_url(re.compile(r"notices=hide"))
    await expect(rows).to_have_count(SEEDED)
    await expect(rows.filter(has_text="Thông báo không chuyển được")).to_have_count(0)
    await expect(page.get_by_label("Ẩn thông báo · Hide notices")).to_be_checked()
    await shot(page, "logviews-01-no-notices")

    # The message page's timeline reads as text.
    await page.get_by_role("link", name="Giấy mời họp trực tuyến", exact=True).click()
    timeline = page.locator("ol.timeline").last
    await expect(timeline).to_contain_text("no destination")
    assert "{'" not in await timeline.inner_text()

    await page.get_by_role("link", name="Hàng đợi · Queue").click()
    await expect(page.locator("table.qshape thead")).to_contain_text("Tổng · Total")
    await expect(page.locator("table.qshape thead")).to_contain_text("≤5")
    await expect(page.get_by_text("Total: deliveries waiting per agency")).to_have_count(1)
    await shot(page, "logviews-02-queue")
