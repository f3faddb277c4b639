"""The admin inside the whole service: `edocgw serve`'s components, /healthz over them, and a
released message really delivered by the delivery workers to the agency's mail server."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.admin.conftest import Running, bearer
from tests.admin.seed import G22, Seeded


async def test_release_through_the_api_is_delivered(
    running: Running, seeded: Seeded, tokens: dict[str, str]
) -> None:
    h = bearer(tokens["admin"])
    async with httpx.AsyncClient(base_url=running.admin.url, timeout=10) as c:
        health = await c.get("/healthz")
        assert health.status_code == 200, health.text
        comps = health.json()["components"]
        assert {"event-sealer", "delivery"} <= set(comps) and all(comps.values()), comps

        mid = seeded.ids["giaymoi"]
        r = await c.post(f"/api/messages/{mid}/release", json={"to": [G22]}, headers=h)
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 15
        while True:
            (d,) = (await c.get(f"/api/messages/{mid}", headers=h)).json()["deliveries"]
            if d["state"] == "delivered" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert d["state"] == "delivered", d
        assert d["last_reply"].startswith("250") and d["attempts"] == 1
    # The original bytes with trace headers prepended (the sink may also hold notices the
    # service sent to senders at chinhphu.vn, whose mail goes the same way).
    # SMTP carries CRLF line ends; the seeded message was written with LF.
    original = seeded.raw["giaymoi"].replace(b"\n", b"\r\n")
    (got,) = [g for g in running.sink.got if original in g]
    assert b"X-Edocgw-Id:" in got.split(original)[0]
