"""Issue 14 on the admin side: sender-authentication results and the sender_not_official
flag in `edocgw log`, `edocgw show`, the web message page and the JSON API."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx

from config import Settings
from gateway.senderauth.results import AuthResults, DkimResult
from store.db import Database
from store.events import append_event
from store.messages import NewMessage, insert_message
from store.senders import list_rules
from tests.admin.conftest import bearer
from tests.admin.seed import ADMIN, ADMIN_PW, Seeded
from tests.admin.test_adm_api import login
from tests.support.cli import edocgw

RESULTS = AuthResults(
    spf="softfail", spf_domain="gmail.com", helo="none", helo_domain="mail.example.com",
    dkim=[DkimResult("pass", "gmail.com", "20230601"), DkimResult("fail", "x.vn", "s", "bad")],
    dmarc="pass", from_domain="gmail.com", dmarc_policy="none", from_aligned=True,
    reason="aligned DKIM signature",
).to_dict()  # fmt: skip


async def _message(db: Database) -> tuple[int, int]:
    """One checked message flagged by the pipeline, one trusted (unchecked) one."""
    async with db.transaction() as s:
        checked = await insert_message(
            s,
            NewMessage(
                source="smtp", peer="203.0.113.9", raw=b"From: vt@gmail.com\r\n\r\nx\r\n",
                mail_from="vt@gmail.com", rcpt_to=["vanban@localhost"],
                header_from="vt@gmail.com", subject="Cong van tu gmail", auth_results=RESULTS,
            ),
        )  # fmt: skip
        await append_event(
            s, "verified", message_id=checked, detail={"flags": ["sender_not_official"]}
        )
        trusted = await insert_message(
            s,
            NewMessage(
                source="smtp", peer="127.0.0.1", raw=b"From: a@b.gov.vn\r\n\r\nx\r\n",
                mail_from="a@b.gov.vn", rcpt_to=["vanban@localhost"], subject="Tin cay",
            ),
        )  # fmt: skip
    return checked, trusted


def _config(tmp_path: Path, settings: Settings) -> Path:
    p = tmp_path / "edocgw.toml"
    p.write_text(
        f'[gateway]\ndata_dir = "{tmp_path / "var"}"\n[database]\nurl = "{settings.database.url}"\n',
        encoding="utf-8",
    )
    return p


async def test_cli_log_and_show(
    tmp_path: Path, settings: Settings, db: Database, seeded: Seeded
) -> None:
    checked, trusted = await _message(db)
    cfg = str(_config(tmp_path, settings))
    r = await asyncio.to_thread(edocgw, "log", "--json", "--config", cfg)
    assert r.code == 0, r.err
    by_id = {m["id"]: m for m in json.loads(r.out)["messages"]}
    assert by_id[checked]["flags"] == ["sender_not_official"]
    assert by_id[checked]["sender_auth"]["dmarc"] == "pass"
    assert [d["result"] for d in by_id[checked]["sender_auth"]["dkim"]] == ["pass", "fail"]
    assert (by_id[trusted]["sender_auth"], by_id[trusted]["flags"]) == (None, [])

    r = await asyncio.to_thread(edocgw, "log", "--config", cfg)
    line = next(x for x in r.out.splitlines() if x.startswith(f"{checked} "))
    assert "dmarc=pass sender_not_official" in line
    line = next(x for x in r.out.splitlines() if x.startswith(f"{trusted} "))
    assert "trusted" in line

    r = await asyncio.to_thread(edocgw, "show", str(checked), "--json", "--config", cfg)
    shown = json.loads(r.out)
    assert shown["sender_auth"] == {**RESULTS, "action": "forward"}
    assert shown["flags"] == ["sender_not_official"]
    r = await asyncio.to_thread(edocgw, "show", str(checked), "--config", cfg)
    assert re.search(r"Sender auth:\s+spf=softfail smtp.mailfrom=gmail.com;", r.out), r.out
    assert "dkim=pass header.d=gmail.com header.s=20230601" in r.out
    assert re.search(r"Flags:\s+sender_not_official", r.out)
    r = await asyncio.to_thread(edocgw, "show", str(trusted), "--config", cfg)
    assert "not checked (trusted client)" in r.out


async def test_web_page_and_api(
    server,
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    db: Database,  # noqa: ANN001
) -> None:
    checked, trusted = await _message(db)
    api = (await client.get(f"/api/messages/{checked}", headers=bearer(tokens["admin"]))).json()
    assert api["sender_auth"]["from_domain"] == "gmail.com"
    assert api["flags"] == ["sender_not_official"]
    listing = (await client.get("/api/messages", headers=bearer(tokens["admin"]))).json()
    found = {m["id"]: m for m in listing["messages"]}
    assert found[checked]["flags"] == ["sender_not_official"]
    assert found[trusted]["sender_auth"] is None
    spec = (await client.get("/api/openapi.json", headers=bearer(tokens["admin"]))).json()
    assert "SenderAuthOut" in json.dumps(spec)

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
        assert (await login(c, ADMIN, ADMIN_PW)).status_code == 303
        page = (await c.get(f"/messages/{checked}")).text
        assert "sender_not_official" in page and "dmarc=pass" in page
        assert "dkim=pass header.d=gmail.com" in page
        assert "not checked" in (await c.get(f"/messages/{trusted}")).text
        log = (await c.get("/messages")).text
        assert "sender_not_official" in log


async def test_cli_sender_allow_deny_list_remove(
    tmp_path: Path, settings: Settings, db: Database
) -> None:
    cfg = str(_config(tmp_path, settings))

    def run(*args: str) -> tuple[int, str, str]:
        r = edocgw("sender", *args, "--config", cfg)
        return r.code, r.out, r.err

    assert (await asyncio.to_thread(run, "allow", "MOF.vn", "--note", "Bộ Tài chính"))[:2] == (
        0,
        "allow mof.vn\n",
    )
    assert (await asyncio.to_thread(run, "deny", "<Spam@Example.COM>"))[0] == 0
    assert (await asyncio.to_thread(run, "deny", "mof.vn"))[0] == 0  # changes the rule
    code, out, _ = await asyncio.to_thread(run, "list", "--json")
    assert json.loads(out) == {
        "rules": [
            {"pattern": "mof.vn", "action": "deny", "note": ""},
            {"pattern": "spam@example.com", "action": "deny", "note": ""},
        ]
    }
    code, _, err = await asyncio.to_thread(run, "allow", "not a domain")
    assert code == 1 and err.startswith("edocgw: expected an address or a domain")
    assert (await asyncio.to_thread(run, "remove", "MOF.VN"))[0] == 0
    code, _, err = await asyncio.to_thread(run, "remove", "mof.vn")
    assert code == 1 and "no rule for mof.vn" in err
    code, out, _ = await asyncio.to_thread(run, "list")
    assert out.split() == ["ACTION", "PATTERN", "NOTE", "deny", "spam@example.com"]


async def test_web_sender_lists(server, db: Database, seeded: Seeded) -> None:  # noqa: ANN001
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
        assert (await login(c, ADMIN, ADMIN_PW)).status_code == 303
        page = await c.get("/senders")
        assert page.status_code == 200 and "No rules" in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        token = csrf.group(1)
        r = await c.post("/senders", data={"pattern": "Mof.vn", "action": "allow", "csrf": token})
        assert r.status_code == 303
        r = await c.post("/senders", data={"pattern": "x@spam.test", "action": "deny"})
        assert r.status_code == 403  # no CSRF token: refused
        r = await c.post("/senders", data={"pattern": "no such", "action": "deny", "csrf": token})
        assert r.status_code == 400 and "expected an address or a domain" in r.text
        page = await c.get("/senders")
        assert "<code>mof.vn</code>" in page.text and "spam.test" not in page.text
        r = await c.post("/senders/remove", data={"pattern": "mof.vn", "csrf": token})
        assert r.status_code == 303
        assert "No rules" in (await c.get("/senders")).text
    async with db.transaction() as s:
        assert await list_rules(s) == []
