"""Issue 14 in the pipeline: a DMARC hold, and Directive 15's official senders.

Pure rules first (suffix matching, which From domain counts as authenticated), then real
messages through the real pipeline on PostgreSQL, stored with the results the SMTP handler
stores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from config import Settings
from config.settings import PolicySettings
from gateway.pipeline.senderpolicy import authenticated_from_domain, is_official
from gateway.senderauth.results import AuthResults, DkimResult
from store.db import Database
from store.messages import NewMessage, insert_message
from store.senders import Rule, SenderRuleError, match, normalise, set_rule
from tests.pipeline.pipe_support import PROCESSING, deliveries_of, events_of, make_mail, wait_for
from tests.support.corpus import pdf_bytes

CODE = "000.00.00.G12"  # Bộ Nội vụ, in pipe_support.AGENCIES


@pytest.mark.parametrize(
    ("domain", "official"),
    [
        ("gov.vn", True),
        ("chinhphu.gov.vn", True),
        ("VP.ChinhPhu.Gov.VN.", True),
        ("xgov.vn", False),
        ("gov.vn.evil.com", False),
        ("gmail.com", False),
        ("", False),
        (None, False),
    ],
)
def test_official_domains_match_as_label_suffixes(domain: str | None, official: bool) -> None:
    assert is_official(domain, PolicySettings().official_domains) is official


def _auth(dmarc: str, from_domain: str, *, aligned: bool = False, action: str = "forward",
          policy: str = "") -> dict[str, Any]:  # fmt: skip
    return AuthResults(
        spf="pass", spf_domain=from_domain, helo="none", helo_domain="",
        dkim=[DkimResult("pass", from_domain, "s")], dmarc=dmarc, from_domain=from_domain,
        dmarc_policy=policy, from_aligned=aligned, action=action,
    ).to_dict()  # fmt: skip


def test_which_from_domain_counts_as_authenticated() -> None:
    assert authenticated_from_domain(_auth("pass", "a.gov.vn", aligned=True), None) == "a.gov.vn"
    # no DMARC record, but an aligned pass proves the domain all the same
    assert authenticated_from_domain(_auth("none", "b.gov.vn", aligned=True), None) == "b.gov.vn"
    assert authenticated_from_domain(_auth("none", "c.gov.vn"), "x@c.gov.vn") is None
    assert authenticated_from_domain(_auth("fail", "d.gov.vn"), "x@d.gov.vn") is None
    # unchecked (trusted) mail: the From header as written; several domains prove nothing
    assert authenticated_from_domain(None, "Văn thư <vt@E.gov.vn>") == "e.gov.vn"
    assert authenticated_from_domain(None, "a@f.gov.vn, b@g.com") is None
    assert authenticated_from_domain(None, None) is None


async def _store(db: Database, raw: bytes, header_from: str, auth: dict | None) -> int:
    async with db.transaction() as s:
        return await insert_message(
            s,
            NewMessage(
                source="smtp", peer="203.0.113.5", raw=raw, mail_from=header_from,
                rcpt_to=[PROCESSING], header_from=header_from, auth_results=auth,
            ),
        )  # fmt: skip


def _doc_mail(sender: str) -> bytes:
    return make_mail(
        f"[{CODE}] Công văn số 12/UBND-VP",
        [("cv.pdf", pdf_bytes("bc-stc"), "application/pdf")],
        sender=sender,
    )


async def test_sender_findings_through_the_pipeline(
    pipe_settings: Settings, db: Database, agencies: None, pipeline_factory: Callable[..., Any]
) -> None:
    cases = {
        # official and proven: forwarded, no flag
        "official": ("vanthu@tayninh.gov.vn", _auth("pass", "tayninh.gov.vn", aligned=True)),
        # proven, but not an official domain: forwarded and flagged
        "gmail": ("vanthu.tayninh@gmail.com", _auth("pass", "gmail.com", aligned=True)),
        # claims an official domain but nothing proved it: flagged too
        "unproven": ("vanthu@hanoi.gov.vn", _auth("none", "hanoi.gov.vn")),
        # DMARC p=quarantine failed: the SMTP handler stored action hold
        "quarantine": (
            "a@quar.gov.vn",
            _auth("fail", "quar.gov.vn", action="hold", policy="quarantine"),
        ),
        # trusted client, From as written
        "trusted": ("vanthu@moha.gov.vn", None),
    }
    ids = {k: await _store(db, _doc_mail(f), f, a) for k, (f, a) in cases.items()}
    async with pipeline_factory():
        msgs = await wait_for(db, list(ids.values()), {"processed", "held"}, within=60)
    state = {k: msgs[i].state for k, i in ids.items()}
    assert state == {
        "official": "processed",
        "gmail": "processed",
        "unproven": "processed",
        "quarantine": "held",
        "trusted": "processed",
    }
    flags = {}
    for k, i in ids.items():
        verified = [e for e in await events_of(db, i) if e.kind == "verified"]
        flags[k] = verified[0].detail.get("flags", [])
    assert flags == {
        "official": [],
        "gmail": ["sender_not_official"],
        "unproven": ["sender_not_official"],
        "quarantine": ["sender_not_official"],  # DMARC failed: the domain is not proven
        "trusted": [],
    }
    held = [e for e in await events_of(db, ids["quarantine"]) if e.kind == "held"]
    assert held[0].detail["reasons"] == ["dmarc:quarantine:quar.gov.vn"]
    assert "DMARC" in held[0].detail["reason"]
    assert [d.state for d in await deliveries_of(db, ids["gmail"])] == ["queued"]


async def test_unofficial_sender_hold(
    pipe_settings: Settings, db: Database, agencies: None, pipeline_factory: Callable[..., Any]
) -> None:
    pipe_settings.policy.unofficial_sender = "hold"
    gmail = await _store(
        db, _doc_mail("vt@gmail.com"), "vt@gmail.com", _auth("pass", "gmail.com", aligned=True)
    )
    # no documents: nothing to judge as official exchange
    plain = make_mail(f"[{CODE}] Hỏi thăm", sender="vt@gmail.com")
    chat = await _store(db, plain, "vt@gmail.com", _auth("pass", "gmail.com", aligned=True))
    async with pipeline_factory():
        msgs = await wait_for(db, [gmail, chat], {"processed", "held"}, within=60)
    assert (msgs[gmail].state, msgs[chat].state) == ("held", "processed")
    held = [e for e in await events_of(db, gmail) if e.kind == "held"]
    assert held[0].detail["reasons"] == ["sender_not_official:gmail.com"]


@pytest.mark.parametrize(
    ("pattern", "normal"),
    [
        ("VanThu@MOF.vn", "vanthu@mof.vn"),
        ("<a@b.gov.vn>", "a@b.gov.vn"),
        ("@mof.vn", "mof.vn"),
        ("Mof.VN.", "mof.vn"),
        ("BộTàiChính.vn", "bộtàichính.vn".encode("idna").decode()),
    ],
)
def test_sender_patterns_are_normalised(pattern: str, normal: str) -> None:
    assert normalise(pattern) == normal


@pytest.mark.parametrize("bad", ["", "mof", "a@", "@", "a b@c.vn", "a@-x.vn", "x@y@"])
def test_bad_sender_patterns_are_refused(bad: str) -> None:
    with pytest.raises(SenderRuleError):
        normalise(bad)


def test_the_most_specific_rule_decides() -> None:
    rules = [Rule("gmail.com", "deny"), Rule("ok@gmail.com", "allow"), Rule("mof.vn", "allow"),
             Rule("x.mof.vn", "deny")]  # fmt: skip
    got = {a: (match(rules, a) or Rule("-", "none")).action for a in (
        "ok@gmail.com", "OK@Gmail.com", "other@gmail.com", "a@mof.vn", "a@vp.mof.vn",
        "a@x.mof.vn", "a@y.x.mof.vn", "a@notmof.vn", None)}  # fmt: skip
    assert got == {
        "ok@gmail.com": "allow", "OK@Gmail.com": "allow", "other@gmail.com": "deny",
        "a@mof.vn": "allow", "a@vp.mof.vn": "allow", "a@x.mof.vn": "deny", "a@y.x.mof.vn": "deny",
        "a@notmof.vn": "none", None: "none",
    }  # fmt: skip


async def test_allow_and_deny_lists_through_the_pipeline(
    pipe_settings: Settings, db: Database, agencies: None, pipeline_factory: Callable[..., Any]
) -> None:
    async with db.transaction() as s:
        await set_rule(s, "mof.vn", "allow", "Bộ Tài chính dùng mof.vn")
        await set_rule(s, "spam.example", "deny")
    allowed = await _store(
        db, _doc_mail("vt@mof.vn"), "vt@mof.vn", _auth("pass", "mof.vn", aligned=True)
    )
    # an allowed domain the sender could not prove is still flagged
    unproven = await _store(db, _doc_mail("vt@mof.vn"), "vt@mof.vn", _auth("fail", "mof.vn"))
    denied = await _store(
        db, make_mail(f"[{CODE}] Quảng cáo", sender="a@spam.example"), "a@spam.example", None
    )
    async with pipeline_factory():
        msgs = await wait_for(db, [allowed, unproven, denied], {"processed", "held"}, within=60)
    assert [msgs[i].state for i in (allowed, unproven, denied)] == [
        "processed",
        "processed",
        "held",
    ]
    flags = []
    for i in (allowed, unproven, denied):
        verified = [e for e in await events_of(db, i) if e.kind == "verified"]
        flags.append(verified[0].detail.get("flags", []))
    assert flags == [[], ["sender_not_official"], ["sender_denied"]]
    held = [e for e in await events_of(db, denied) if e.kind == "held"]
    assert held[0].detail["reasons"] == ["sender_denied:spam.example"]
