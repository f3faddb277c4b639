"""The fetcher's pure parts and its wiring: envelope from headers, mailbox names, serve."""

from __future__ import annotations

import asyncio
from pathlib import Path

from config import Settings
from gateway.app import build_components
from gateway.imap import ImapFetcher
from gateway.imap.envelope import envelope_of
from gateway.imap.utf7 import encode_mailbox, mailbox_arg
from store.db import Database
from tests.imap.conftest import VANTHU, account, eventually, mail, running, stored
from tests.support.dovecot import Dovecot


def test_imap_envelope_from_headers() -> None:
    env = envelope_of(mail(7), "vanthu@test.gov.vn")
    assert env.mail_from == "vanthu@ubnd.test.gov.vn"
    assert env.rcpt_to == ["vanthu@test.gov.vn"]
    assert env.subject == "Công văn số 7/UBND-VP"
    assert env.header_from == "Văn thư UBND <vanthu@ubnd.test.gov.vn>"
    assert env.message_id == "<msg-7@ubnd.test.gov.vn>"

    lmtp = b"Return-Path: <a@x.gov.vn>\r\nDelivered-To: vb@y.gov.vn\r\nTo: other@z\r\n\r\nbody"
    assert (envelope_of(lmtp, "login-name").mail_from, envelope_of(lmtp, "u").rcpt_to) == (
        "a@x.gov.vn",
        ["vb@y.gov.vn"],
    )
    bounce = b"Return-Path: <>\r\nFrom: MAILER-DAEMON@x\r\nTo: a@b.vn, c@d.vn\r\n\r\n"
    env = envelope_of(bounce, "login-name")
    assert env.mail_from == "" and env.rcpt_to == ["a@b.vn", "c@d.vn"]


def test_imap_envelope_survives_hostile_headers() -> None:
    raw = (
        b"From: \xc4\x90o\xc3\xa0n <x@y.vn>\r\nSubject: =?utf-8?q?broken?= \x00nul \xff\r\n"
        b"Message-ID: <a\x00b@c>\r\n\r\nbody \x00"
    )
    env = envelope_of(raw, "u@v.vn")
    assert env.header_from == "Đoàn <x@y.vn>" and env.mail_from == "x@y.vn"
    assert env.subject is not None and "\x00" not in env.subject
    assert env.message_id == "<ab@c>"
    assert envelope_of(b"", "u@v.vn").mail_from == ""  # no header at all
    assert envelope_of(b"no header block at all", "u").rcpt_to == []


def test_imap_mailbox_names_in_modified_utf7() -> None:
    assert encode_mailbox("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert encode_mailbox("A&B") == "A&-B"
    # Same base64 runs as the stdlib UTF-7 codec (b"+ARAA4w x+Hu0 l+AP0-"), always closed by "-".
    assert encode_mailbox("Đã xử lý") == "&ARAA4w- x&Hu0- l&AP0-"
    assert mailbox_arg('Hộp "thư"') == '"H&Htk-p \\"th&AbA-\\""'


def test_imap_serve_runs_the_fetcher_only_with_accounts(
    settings: Settings, db: Database, dovecot: Dovecot
) -> None:
    assert not [c for c in build_components(settings, db) if isinstance(c, ImapFetcher)]
    with_imap = settings.model_copy(update={"imap": [account(dovecot)]})
    fetchers = [c for c in build_components(with_imap, db) if isinstance(c, ImapFetcher)]
    assert len(fetchers) == 1 and list(fetchers[0].accounts) == ["vanthu"]


async def test_imap_password_from_file(
    dovecot: Dovecot, settings: Settings, db: Database, tmp_path: Path
) -> None:
    secret = tmp_path / "imap-vanthu"
    secret.write_text(dovecot.users[VANTHU] + "\n", encoding="utf-8")
    await asyncio.to_thread(dovecot.append, VANTHU, mail(1))
    acc = account(dovecot, password="", password_file=str(secret))
    async with running(settings, db, acc) as f:
        await eventually(lambda: f.accounts["vanthu"].status.actions == 1, what="fetched")
        assert f.alive()
    assert len(await stored(db)) == 1
    assert not f.alive() or not f._tasks  # stopped cleanly
