"""Fetching from a real Dovecot: stored byte-exact, acted on only after the commit."""

from __future__ import annotations

import asyncio
import time

import asyncpg
from sqlalchemy import select

from config import Settings
from store.db import Database, asyncpg_dsn
from store.models import Event
from tests.imap.conftest import VANTHU, account, eventually, imap_state, mail, running, stored
from tests.support.dovecot import Dovecot


async def test_imap_appended_and_delivered_messages_stored_byte_exact(
    dovecot: Dovecot, settings: Settings, db: Database
) -> None:
    first = mail(1, extra=b"X-Odd: \xc4\x90\xe1\xbb\x93ng \xff raw 8-bit\r\n")
    await asyncio.to_thread(dovecot.append, VANTHU, first)
    await asyncio.to_thread(dovecot.deliver, VANTHU, mail(2), "sender@bonv.test.gov.vn")
    async with running(settings, db, account(dovecot)) as f:
        rows = await eventually(lambda: _n(db, 2), what="two messages stored")
        acc = f.accounts["vanthu"]
        await eventually(lambda: acc.status.actions == 2, what="both flagged")
    on_server = await asyncio.to_thread(dovecot.messages, VANTHU)
    assert [m.uid for m in on_server] == [1, 2]
    # Byte for byte what the server holds (the LMTP copy carries Dovecot's trace headers).
    assert rows[0].raw == first == on_server[0].raw
    assert rows[1].raw == on_server[1].raw and rows[1].raw.endswith(mail(2))
    assert [r.peer for r in rows] == ["vanthu/INBOX/1", "vanthu/INBOX/2"]
    assert {r.source for r in rows} == {"imap"} and {r.state for r in rows} == {"received"}
    assert rows[0].mail_from == "vanthu@ubnd.test.gov.vn"  # Return-Path
    assert rows[0].rcpt_to == [VANTHU]  # the account's own address
    assert rows[1].mail_from == "sender@bonv.test.gov.vn"  # Return-Path written by LMTP
    assert rows[1].rcpt_to == [VANTHU]  # Delivered-To
    assert rows[0].subject == "Công văn số 1/UBND-VP"
    assert rows[0].header_message_id == "<msg-1@ubnd.test.gov.vn>"
    for m in on_server:
        assert {"\\Seen", "$Edocgw"} <= m.flags
    assert await imap_state(db) == [("vanthu", "INBOX", await _uidvalidity(dovecot), 2)]
    async with db.transaction() as s:
        kinds = (await s.execute(select(Event.kind, Event.message_id))).all()
    assert sorted(kinds) == sorted(("received", r.id) for r in rows)


async def _n(db: Database, n: int) -> list | None:
    rows = await stored(db)
    return rows if len(rows) >= n else None


async def _uidvalidity(dc: Dovecot, mailbox: str = "INBOX") -> int:
    return await asyncio.to_thread(dc.uidvalidity, VANTHU, mailbox)


async def test_imap_failed_commit_leaves_message_untouched_until_db_works(
    dovecot: Dovecot, settings: Settings, db: Database, db_url: str
) -> None:
    """The commit fails for real (the table is renamed away): no flag, no move, no watermark."""
    conn = await asyncpg.connect(asyncpg_dsn(db_url), timeout=10)
    try:
        await conn.execute("ALTER TABLE messages RENAME TO messages_away")
        await asyncio.to_thread(dovecot.append, VANTHU, mail(1))
        async with running(settings, db, account(dovecot, after="move:Processed")) as f:
            acc = f.accounts["vanthu"]
            await eventually(lambda: acc.status.errors >= 2, what="commits failing")
            assert "messages" in (acc.status.last_error or "")
            inbox = await asyncio.to_thread(dovecot.messages, VANTHU)
            assert len(inbox) == 1 and not {"\\Seen", "$Edocgw"} & inbox[0].flags
            assert await asyncio.to_thread(dovecot.messages, VANTHU, "Processed") == []
            assert [s[3] for s in await imap_state(db)] == [0]

            await conn.execute("ALTER TABLE messages_away RENAME TO messages")
            rows = await eventually(lambda: _n(db, 1), what="stored once the DB works")
            await eventually(lambda: acc.status.actions == 1, what="moved after the commit")
        assert rows[0].raw == mail(1)
        assert await asyncio.to_thread(dovecot.messages, VANTHU) == []
        moved = await asyncio.to_thread(dovecot.messages, VANTHU, "Processed")
        assert [m.raw for m in moved] == [mail(1)]
        assert len(await stored(db)) == 1
    finally:
        await conn.close()


async def test_imap_not_fetched_twice_across_restarts(
    dovecot: Dovecot, settings: Settings, db: Database
) -> None:
    for n in (1, 2):
        await asyncio.to_thread(dovecot.append, VANTHU, mail(n))
    async with running(settings, db, account(dovecot)) as f:
        await eventually(lambda: _n(db, 2), what="first two stored")
        await eventually(lambda: f.accounts["vanthu"].status.actions == 2, what="flagged")
    await asyncio.to_thread(dovecot.append, VANTHU, mail(3))
    async with running(settings, db, account(dovecot)) as f:
        acc = f.accounts["vanthu"]
        await eventually(lambda: _n(db, 3), what="the third stored")
        await eventually(lambda: acc.status.state == "idle", what="idle after the sync")
        # The restarted fetcher fetched only the new message, not the two flagged ones.
        assert (acc.status.fetched, acc.status.duplicates) == (1, 0)
    rows = await stored(db)
    assert [r.raw for r in rows] == [mail(1), mail(2), mail(3)]
    assert [s[3] for s in await imap_state(db)] == [3]


async def test_imap_uidvalidity_change_makes_no_duplicates(
    dovecot: Dovecot, settings: Settings, db: Database
) -> None:
    for n in (1, 2):
        await asyncio.to_thread(dovecot.append, VANTHU, mail(n), "Docs")
    acc_cfg = account(dovecot, mailbox="Docs")
    async with running(settings, db, acc_cfg) as f:
        await eventually(lambda: f.accounts["vanthu"].status.actions == 2, what="first pass")
    before = await _uidvalidity(dovecot, "Docs")

    await asyncio.to_thread(dovecot.recreate, VANTHU, "Docs")  # new UIDVALIDITY, UIDs from 1
    for n in (1, 2, 3):
        await asyncio.to_thread(dovecot.append, VANTHU, mail(n), "Docs")
    after = await _uidvalidity(dovecot, "Docs")
    assert after != before

    async with running(settings, db, acc_cfg) as f:
        acc = f.accounts["vanthu"]
        await eventually(lambda: acc.status.actions == 3, what="re-scan done")
        assert (acc.status.stored, acc.status.duplicates) == (1, 2)
    rows = await stored(db)
    assert [r.raw for r in rows] == [mail(1), mail(2), mail(3)]
    assert await imap_state(db) == [("vanthu", "Docs", after, 3)]
    # The duplicates still got their after-action.
    for m in await asyncio.to_thread(dovecot.messages, VANTHU, "Docs"):
        assert "$Edocgw" in m.flags


async def test_imap_move_and_delete(dovecot: Dovecot, settings: Settings, db: Database) -> None:
    from tests.imap.conftest import USERS

    mover, deleter = list(USERS)[1:3]
    await asyncio.to_thread(dovecot.append, mover, mail(1))
    await asyncio.to_thread(dovecot.append, deleter, mail(2))
    accounts = [
        account(dovecot, mover, after="move:Processed"),
        account(dovecot, deleter, after="delete"),
    ]
    async with running(settings, db, *accounts) as f:
        st = [a.status for a in f.accounts.values()]
        await eventually(lambda: all(x.actions == 1 for x in st), what="both acted")
    assert sorted(r.raw for r in await stored(db)) == sorted([mail(1), mail(2)])
    assert await asyncio.to_thread(dovecot.messages, mover) == []
    assert [m.raw for m in await asyncio.to_thread(dovecot.messages, mover, "Processed")] == [
        mail(1)
    ]
    assert await asyncio.to_thread(dovecot.messages, deleter) == []


def _unflag(dc: Dovecot, uid: int) -> None:
    client = dc.imap(VANTHU)
    try:
        client.select("INBOX")
        client.uid("STORE", str(uid), "-FLAGS.SILENT", "(\\Seen $Edocgw)")
    finally:
        client.logout()


async def test_imap_action_missed_after_commit_is_applied_on_reconnect(
    dovecot: Dovecot, settings: Settings, db: Database
) -> None:
    """The state a crash between commit and flag leaves: stored, watermark past it, unflagged.
    The next session flags it, without storing it again."""
    await asyncio.to_thread(dovecot.append, VANTHU, mail(1))
    async with running(settings, db, account(dovecot)) as f:
        await eventually(lambda: f.accounts["vanthu"].status.actions == 1, what="flagged")
    await asyncio.to_thread(_unflag, dovecot, 1)
    assert not (await asyncio.to_thread(dovecot.messages, VANTHU))[0].flags & {"$Edocgw"}
    async with running(settings, db, account(dovecot)) as f:
        acc = f.accounts["vanthu"]
        await eventually(lambda: acc.status.actions == 1, what="flagged on reconnect")
        assert (acc.status.stored, acc.status.duplicates) == (0, 1)
    assert {"\\Seen", "$Edocgw"} <= (await asyncio.to_thread(dovecot.messages, VANTHU))[0].flags
    assert len(await stored(db)) == 1


async def test_imap_burst_of_mail_during_idle_is_all_fetched(
    dovecot: Dovecot, settings: Settings, db: Database
) -> None:
    """New mail announced while the fetcher is busy fetching is not left for the next IDLE."""

    def burst() -> None:
        for n in range(12):
            dovecot.append(VANTHU, mail(n))
            time.sleep(0.1)  # spread out, so that some arrive while the fetcher is busy

    async with running(settings, db, account(dovecot, poll_seconds=300)) as f:
        acc = f.accounts["vanthu"]
        await eventually(lambda: acc.status.state == "idle", what="idle")
        await asyncio.to_thread(burst)
        await eventually(lambda: _n(db, 12), within=8, what="all twelve stored")
        await eventually(lambda: acc.status.actions == 12, what="all flagged")
    assert sorted(r.raw for r in await stored(db)) == sorted(mail(n) for n in range(12))
