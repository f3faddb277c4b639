"""The JSON API, login, CSRF, /metrics and /healthz against the app served by uvicorn on a
real database."""

from __future__ import annotations

import asyncio
import re

import httpx
from sqlalchemy import select

from config import Settings
from gateway.admin.server import AdminServer
from gateway.eventlog.sealer import EventSealer
from store.db import Database
from store.models import Delivery, Event, Message
from tests.admin.conftest import bearer
from tests.admin.seed import ADMIN, ADMIN_PW, CLERK, CLERK_PW, G22, H53, Seeded

ENDPOINTS = [
    ("GET", "/api/openapi.json"),
    ("GET", "/api/messages"),
    ("GET", "/api/held"),
    ("GET", "/api/messages/{mid}"),
    ("GET", "/api/messages/{mid}/raw"),
    ("POST", "/api/messages/{mid}/release"),
    ("POST", "/api/messages/{mid}/cancel"),
    ("GET", "/api/queue"),
    ("POST", "/api/deliveries/{did}/retry"),
    ("POST", "/api/deliveries/retry-deferred"),
]
LOG_KEYS = {
    "id", "received_at", "source", "message_id", "mail_from", "rcpt_to", "subject", "state",
    "verdict", "documents", "deliveries", "sender_auth", "flags",
}  # fmt: skip
DOC_KEYS = {"filename", "kind", "number", "notation", "verdict"}
DELIVERY_KEYS = {"id", "recipient", "agency", "state", "attempts", "last_reply", "delivered_at"}


async def login(client: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    page = await client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text
    return await client.post(
        "/login", data={"csrf": csrf.group(1), "username": name, "password": password, "next": "/"}
    )


async def test_every_endpoint_needs_an_admin(
    client: httpx.AsyncClient, seeded: Seeded, tokens: dict[str, str]
) -> None:
    mid, did = seeded.ids["giaymoi"], seeded.deliveries["congvan-h53"]
    for method, path in ENDPOINTS:
        url = path.format(mid=mid, did=did)
        anon = await client.request(method, url)
        assert anon.status_code == 401, (method, url, anon.text)
        assert anon.json()["error"]
        assert anon.headers["www-authenticate"].startswith("Bearer")
        wrong = await client.request(method, url, headers=bearer("edocgw_not-a-token"))
        assert wrong.status_code == 401, (method, url)
        clerk = await client.request(method, url, headers=bearer(tokens["clerk"]))
        assert clerk.status_code == 403, (method, url, clerk.text)
    # Nothing changed on the way: the held message is still held.
    ok = await client.get(f"/api/messages/{mid}", headers=bearer(tokens["admin"]))
    assert ok.status_code == 200 and ok.json()["state"] == "held"


async def test_log_matches_the_contract_and_filters(
    client: httpx.AsyncClient, seeded: Seeded, tokens: dict[str, str]
) -> None:
    h = bearer(tokens["admin"])
    doc = (await client.get("/api/messages", headers=h)).json()
    assert set(doc) == {"messages"}
    msgs = doc["messages"]
    assert [m["id"] for m in msgs] == [
        seeded.ids[n] for n in ("mat", "giaymoi", "congvan", "chithi", "thongbao")
    ]  # newest first
    for m in msgs:
        assert set(m) == LOG_KEYS | {"urgency", "reason"}  # DESIGN §7, plus two added fields
        for d in m["documents"]:
            assert set(d) == DOC_KEYS
        for d in m["deliveries"]:
            assert set(d) == DELIVERY_KEYS
    chithi = next(m for m in msgs if m["id"] == seeded.ids["chithi"])
    assert chithi["message_id"] == "<chithi@test>"
    assert chithi["documents"] == [
        {"filename": "15-CT-TTg.pdf", "kind": "Chỉ thị", "number": "15", "notation": "CT-TTg",
         "verdict": "valid"}
    ]  # fmt: skip
    (dl,) = chithi["deliveries"]
    assert dl["agency"] == G22 and dl["state"] == "delivered"
    assert dl["last_reply"] == "250 2.0.0 Ok: queued as A1" and dl["delivered_at"]

    async def ids(**params: str) -> list[int]:
        r = await client.get("/api/messages", params=params, headers=h)
        assert r.status_code == 200, r.text
        return [m["id"] for m in r.json()["messages"]]

    assert await ids(agency=H53) == [seeded.ids["congvan"], seeded.ids["thongbao"]]
    assert await ids(state="deferred") == [seeded.ids["congvan"]]
    assert await ids(state="held") == [seeded.ids["giaymoi"]]
    assert await ids(q="123/UBND-VP") == [seeded.ids["congvan"]]
    assert await ids(q="chuyển đổi số") == [seeded.ids["chithi"]]
    assert await ids(sender="HOABINH") == [seeded.ids["mat"], seeded.ids["congvan"]]
    assert await ids(since="1h") == [seeded.ids[n] for n in ("mat", "giaymoi", "congvan")]
    assert await ids(limit="2") == [seeded.ids["mat"], seeded.ids["giaymoi"]]
    assert await ids(before=str(seeded.ids["giaymoi"]), limit="1") == [seeded.ids["congvan"]]
    for bad in ({"state": "lost"}, {"since": "yesterday"}, {"limit": "0"}, {"q": "a\x00b"}):
        r = await client.get("/api/messages", params=bad, headers=h)
        assert r.status_code == 422 and r.json()["error"], bad


async def test_message_detail_raw_and_queue(
    client: httpx.AsyncClient, seeded: Seeded, tokens: dict[str, str]
) -> None:
    h = bearer(tokens["admin"])
    m = (await client.get(f"/api/messages/{seeded.ids['congvan']}", headers=h)).json()
    (doc,) = m["documents"]
    assert doc["facts"]["kind"] == "Công văn" and doc["facts"]["agency_codes"] == [H53]
    assert doc["signatures"][0]["verdict"] == "invalid"
    assert doc["signatures"][0]["reason"] == "digest_mismatch"
    assert doc["e_document"] == {
        "conformant": False,
        "personal_signer": "Nguyễn Văn An",
        "organisation_signer": None,
        "problems": ["signature_not_valid", "no_organisation_signature"],
    }
    (dl,) = m["deliveries"]
    assert [e["kind"] for e in dl["events"]] == ["routed", "attempt", "attempt", "deferred"]
    assert dl["events"][1]["detail"]["reply_code"] == 421
    chithi = (await client.get(f"/api/messages/{seeded.ids['chithi']}", headers=h)).json()
    assert [r["kind"] for r in chithi["receipts"]] == ["receipt_sent"]

    raw = await client.get(f"/api/messages/{seeded.ids['chithi']}/raw", headers=h)
    assert raw.status_code == 200 and raw.content == seeded.raw["chithi"]
    assert raw.headers["content-type"].startswith("message/rfc822")
    for missing in ("999999", "0", "abc", "99999999999999999999999"):
        r = await client.get(f"/api/messages/{missing}", headers=h)
        assert r.status_code == 404, missing

    q = (await client.get("/api/queue", headers=h)).json()
    assert q["shape"]["total"] == 2  # the deferred and the queued delivery
    by_agency = {a["agency"]: a for a in q["shape"]["agencies"]}
    assert set(by_agency) == {H53}
    # ages 50 min (bucket 40–80) and 2 days (1280+)
    assert by_agency[H53]["counts"][4] == 1 and by_agency[H53]["counts"][-1] == 1
    assert q["shape"]["by_state"] == {"deferred": 1, "queued": 1}
    deferred = await client.get("/api/queue", params={"state": "deferred"}, headers=h)
    assert deferred.json()["shape"]["total"] == 1


async def test_actions_change_state_and_log_the_admin(
    client: httpx.AsyncClient, db: Database, seeded: Seeded, tokens: dict[str, str]
) -> None:
    h = bearer(tokens["admin"])
    did = seeded.deliveries["congvan-h53"]
    r = await client.post(f"/api/deliveries/{did}/retry", headers=h)
    assert r.status_code == 200 and r.json()["deliveries"] == [did]
    again = await client.post(f"/api/deliveries/{seeded.deliveries['chithi-g22']}/retry", headers=h)
    assert again.status_code == 409  # delivered: nothing to retry

    held = seeded.ids["giaymoi"]
    nowhere = await client.post(f"/api/messages/{held}/release", headers=h)
    assert nowhere.status_code == 422 and "--to" in nowhere.json()["error"]
    unknown = await client.post(
        f"/api/messages/{held}/release", json={"to": ["001.01.01.A01"]}, headers=h
    )
    assert unknown.status_code == 422
    bad_body = await client.post(f"/api/messages/{held}/release", content=b"{", headers=h)
    assert bad_body.status_code == 422
    ok = await client.post(f"/api/messages/{held}/release", json={"to": [H53]}, headers=h)
    assert ok.status_code == 200, ok.text

    quarantined = seeded.ids["mat"]
    refused = await client.post(
        f"/api/messages/{quarantined}/release", json={"to": [G22]}, headers=h
    )
    assert refused.status_code == 409 and "force" in refused.json()["error"]
    cancelled = await client.post(
        f"/api/messages/{quarantined}/cancel", json={"reason": "văn bản mật"}, headers=h
    )
    assert cancelled.status_code == 200

    async with db.transaction() as s:
        d = await s.get(Delivery, did)
        assert d is not None and d.state == "queued"
        new = (await s.scalars(select(Delivery).where(Delivery.message_id == held))).one()
        assert (new.agency_code, new.state, new.recipient) == (
            H53,
            "queued",
            "vanthu@tayninh.gov.vn",
        )
        m_held, m_q = await s.get(Message, held), await s.get(Message, quarantined)
        assert m_held is not None and m_held.state == "processed"
        assert m_q is not None and m_q.state == "processed" and "văn bản mật" in (m_q.error or "")
        events = {
            (e.kind, e.message_id): e.detail
            for e in (
                await s.scalars(
                    select(Event).where(Event.kind.in_(["retried", "released", "cancelled"]))
                )
            ).all()
        }
    assert events[("retried", seeded.ids["congvan"])]["by"] == f"api:{ADMIN}"
    assert events[("released", held)]["by"] == f"api:{ADMIN}"
    assert events[("released", held)]["to"] == [H53]
    assert events[("cancelled", quarantined)]["reason"] == "văn bản mật"


async def test_login_session_csrf_and_rate_limit(server: AdminServer, seeded: Seeded) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
        assert (await c.get("/messages")).status_code == 303  # to the login page
        r = await login(c, ADMIN, ADMIN_PW)
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        page = await c.get(f"/messages/{seeded.ids['giaymoi']}")
        assert page.status_code == 200 and "Giấy mời họp trực tuyến" in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        # A form post without (or with a wrong) CSRF token is refused and changes nothing.
        for data in ({"to": H53}, {"to": H53, "csrf": "forged"}):
            r = await c.post(f"/messages/{seeded.ids['giaymoi']}/release", data=data)
            assert r.status_code == 403, r.text
        api_post = await c.post(
            f"/api/messages/{seeded.ids['giaymoi']}/release", json={"to": [H53]}
        )
        assert api_post.status_code == 403  # session without X-CSRF-Token
        api_get = await c.get("/api/messages")
        assert api_get.status_code == 200  # the session works for the API
        held = (await c.get(f"/api/messages/{seeded.ids['giaymoi']}")).json()
        assert held["state"] == "held"
        r = await c.post(
            f"/messages/{seeded.ids['giaymoi']}/release", data={"to": H53, "csrf": csrf.group(1)}
        )
        assert r.status_code == 303
        assert (await c.get(f"/api/messages/{seeded.ids['giaymoi']}")).json()[
            "state"
        ] == "processed"

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
        # A submit-only user cannot log in to the admin; login without the CSRF token fails.
        assert (await login(c, CLERK, CLERK_PW)).status_code == 401
        r = await c.post("/login", data={"username": ADMIN, "password": ADMIN_PW})
        assert r.status_code == 403
        for _ in range(5):  # 5 failures of (quantri, 127.0.0.1) are free
            assert (await login(c, ADMIN, "sai-mat-khau")).status_code == 401
        assert (await login(c, ADMIN, "sai-mat-khau")).status_code == 401  # the 6th: back-off
        limited = await login(c, ADMIN, ADMIN_PW)  # even the right password waits now
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0


async def test_metrics_and_healthz(
    client: httpx.AsyncClient, seeded: Seeded, server: AdminServer
) -> None:
    from gateway import metrics

    metrics.observe_verification(0.013, "pades")
    metrics.connection_opened("relay")
    text = (await client.get("/metrics")).text
    assert 'edocgw_store_messages{state="held"} 1.0' in text
    assert 'edocgw_store_messages{state="processed"} 3.0' in text
    assert 'edocgw_store_deliveries{state="deferred"} 1.0' in text
    assert 'edocgw_store_deliveries{state="bounced"} 1.0' in text
    assert 'edocgw_queue_age_seconds_bucket{le="+Inf"} 2.0' in text
    assert 'edocgw_queue_age_seconds_bucket{le="4800"} 1.0' in text  # the 50-minute one
    assert re.search(r"edocgw_queue_oldest_age_seconds 1\d{5}\.", text)  # ~2 days
    assert 'edocgw_verify_seconds_count{format="pades"}' in text
    assert 'edocgw_connections{listener="relay"}' in text
    metrics.connection_closed("relay")
    health = await client.get("/healthz")
    assert health.status_code == 200 and health.json()["database"] is True


async def test_metrics_behind_login_when_configured(
    client: httpx.AsyncClient, server: AdminServer, tokens: dict[str, str]
) -> None:
    server.settings.admin.metrics_require_auth = True
    assert (await client.get("/metrics")).status_code == 401
    assert (await client.get("/metrics", headers=bearer(tokens["clerk"]))).status_code == 403
    ok = await client.get("/metrics", headers=bearer(tokens["admin"]))
    assert ok.status_code == 200 and "edocgw_store_messages" in ok.text


async def test_healthz_reports_a_dead_worker(settings: Settings, db: Database) -> None:
    sealer = EventSealer(db)
    await sealer.start()
    srv = AdminServer(settings, db, [sealer])
    await srv.start()
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=10) as c:
            up = await c.get("/healthz")
            assert up.status_code == 200 and up.json()["components"] == {"event-sealer": True}
            sealer._tasks[0].cancel()  # the worker dies
            await asyncio.sleep(0.05)
            down = await c.get("/healthz")
            assert down.status_code == 503
            assert down.json() == {
                "status": "fail",
                "database": True,
                "components": {"event-sealer": False},
            }
    finally:
        await srv.stop()
        await sealer.stop()
