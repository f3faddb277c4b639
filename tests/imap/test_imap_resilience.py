"""Failures the fetcher must ride out: server restarts, bad accounts, TLS, quiet IDLE."""

from __future__ import annotations

import asyncio
import time

from config import Settings
from gateway.imap.utf7 import encode_mailbox
from store.db import Database
from tests.imap.conftest import USERS, VANTHU, account, eventually, mail, running, stored
from tests.support.dovecot import Dovecot, free_port


async def _count(db: Database, n: int) -> bool:
    return len(await stored(db)) >= n


async def test_imap_recovers_after_dovecot_stops_and_starts(
    dovecot: Dovecot, settings: Settings, db: Database
) -> None:
    await asyncio.to_thread(dovecot.append, VANTHU, mail(1))
    async with running(settings, db, account(dovecot)) as f:
        acc = f.accounts["vanthu"]
        await eventually(lambda: acc.status.state == "idle", what="idle after the first sync")
        assert len(await stored(db)) == 1

        await asyncio.to_thread(dovecot.stop)
        await eventually(lambda: acc.status.errors >= 2, what="reconnects failing while down")
        assert not acc.status.connected
        await asyncio.to_thread(dovecot.start)  # same ports, same mail directory
        await asyncio.to_thread(dovecot.append, VANTHU, mail(2))

        await eventually(lambda: _count(db, 2), what="new mail after the restart")
        await eventually(lambda: acc.status.state == "idle", what="idle again")
        assert acc.status.sessions == 2
    assert [r.raw for r in await stored(db)] == [mail(1), mail(2)]


async def test_imap_broken_accounts_do_not_stop_a_working_one(
    dovecot: Dovecot, settings: Settings, db: Database
) -> None:
    good = account(dovecot)
    bad_password = account(dovecot, "phongb@test.gov.vn", password="wrong")
    unreachable = account(dovecot, "phongc@test.gov.vn", port=free_port())
    async with running(settings, db, good, bad_password, unreachable) as f:
        st = {name: a.status for name, a in f.accounts.items()}
        await eventually(
            lambda: st["phongb"].errors >= 3 and st["phongc"].errors >= 3,
            what="both broken accounts retried",
        )
        assert "login refused" in (st["phongb"].last_error or "")
        assert st["phongc"].last_error == "connection refused"
        await asyncio.to_thread(dovecot.append, VANTHU, mail(1))
        await eventually(lambda: _count(db, 1), what="the good account still fetches")
        assert st["vanthu"].failures == 0 and st["vanthu"].connected
    assert [r.peer for r in await stored(db)] == ["vanthu/INBOX/1"]


async def test_imap_idle_wakes_the_fetcher(
    dovecot: Dovecot, settings: Settings, db: Database
) -> None:
    """poll_seconds is 300: only IDLE can explain a message stored within seconds."""
    async with running(settings, db, account(dovecot, poll_seconds=300)) as f:
        acc = f.accounts["vanthu"]
        await eventually(lambda: acc.status.state == "idle", what="idle")
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        await asyncio.to_thread(dovecot.append, VANTHU, mail(1))
        await eventually(lambda: _count(db, 1), within=5, what="woken by IDLE")
        print(f"IDLE wake-up to commit: {time.monotonic() - t0:.3f}s")
        assert acc.status.sessions == 1


async def test_imap_idle_is_reissued_by_the_watchdog(
    dovecot: Dovecot, settings: Settings, db: Database
) -> None:
    async with running(settings, db, account(dovecot), idle_renew=0.3) as f:
        acc = f.accounts["vanthu"]
        await eventually(lambda: acc.status.state == "idle", what="idle")
        first = acc.status.last_sync
        await acc.wait_synced(3)
        await acc.wait_synced(3)  # two renewals, each followed by a sync
        assert acc.status.last_sync != first
        assert acc.status.sessions == 1 and acc.status.errors == 0  # same connection
        await asyncio.to_thread(dovecot.append, VANTHU, mail(1))
        await eventually(lambda: _count(db, 1), what="still fetching")


async def test_imap_tls_modes(dovecot: Dovecot, settings: Settings, db: Database) -> None:
    users = list(USERS)
    ca = str(dovecot.cert_path)
    accounts = [
        account(dovecot, users[0], tls="implicit", port=dovecot.imaps_port, ca_file=ca),
        account(dovecot, users[1], tls="starttls", ca_file=ca),
        account(dovecot, users[2], tls="implicit", port=dovecot.imaps_port, verify_tls=False),
        # Verification on and the self-signed CA not given: refused, never logged in.
        account(dovecot, users[3], tls="implicit", port=dovecot.imaps_port),
    ]
    for n, user in enumerate(users):
        await asyncio.to_thread(dovecot.append, user, mail(n))
    async with running(settings, db, *accounts) as f:
        st = {name: a.status for name, a in f.accounts.items()}
        await eventually(lambda: _count(db, 3), what="three TLS accounts fetched")
        await eventually(lambda: st["phongd"].errors >= 1, what="unverified TLS refused")
        assert "certificate" in (st["phongd"].last_error or "")
        assert st["phongd"].sessions == 0
    peers = sorted(r.peer for r in await stored(db))
    assert peers == ["phongb/INBOX/1", "phongc/INBOX/1", "vanthu/INBOX/1"]
    # Dovecot's log: phongd never logged in over TLS (its only login is the test's APPEND).
    log = dovecot.log_path.read_text(errors="replace").splitlines()
    tls_logins = [x for x in log if "Login: user=<" in x and ", TLS," in x]
    assert tls_logins and not [x for x in tls_logins if "user=<phongd@" in x]


async def test_imap_without_idle_or_move_polls_and_copies(settings: Settings, db: Database) -> None:
    """A server offering neither IDLE nor MOVE: poll, then COPY + \\Deleted + EXPUNGE."""
    folder = "Đã xử lý"  # a Vietnamese folder name travels as modified UTF-7
    with Dovecot(users=dict(USERS), imap_capability="IMAP4rev1 UIDPLUS LITERAL+") as dc:
        async with running(settings, db, account(dc, poll_seconds=1, after=f"move:{folder}")) as f:
            acc = f.accounts["vanthu"]
            await eventually(lambda: acc.status.state == "polling", what="polling")
            await asyncio.to_thread(dc.append, VANTHU, mail(1))
            await eventually(lambda: acc.status.actions == 1, within=5, what="polled and moved")
        assert await asyncio.to_thread(dc.messages, VANTHU) == []
        moved = await asyncio.to_thread(dc.messages, VANTHU, encode_mailbox(folder))
        assert [m.raw for m in moved] == [mail(1)]
    assert [r.raw for r in await stored(db)] == [mail(1)]


async def test_imap_too_large_message_is_left_alone(
    dovecot: Dovecot, settings: Settings, db: Database
) -> None:
    settings = settings.model_copy(
        update={"smtp": settings.smtp.model_copy(update={"max_message_size": 4096})}
    )
    big = mail(1, extra=b"X-Padding: " + b"x" * 8000 + b"\r\n")
    await asyncio.to_thread(dovecot.append, VANTHU, big)
    await asyncio.to_thread(dovecot.append, VANTHU, mail(2))
    async with running(settings, db, account(dovecot, after="delete")) as f:
        acc = f.accounts["vanthu"]
        await eventually(lambda: acc.status.actions == 1, what="the small one stored")
        assert acc.status.skipped == 1
    assert [r.raw for r in await stored(db)] == [mail(2)]
    left = await asyncio.to_thread(dovecot.messages, VANTHU)
    assert [m.raw for m in left] == [big] and "\\Deleted" not in left[0].flags


async def test_imap_watchdog_leaves_a_server_that_went_silent(
    dovecot: Dovecot, settings: Settings, db: Database
) -> None:
    """Dovecot frozen (SIGSTOP): the socket stays open, IDLE would wait forever without the
    watchdog. The renewal's DONE goes unanswered, the fetcher gives up on the connection,
    and once the server answers again it reconnects and fetches."""
    acc_cfg = account(dovecot, command_timeout="1s")
    async with running(settings, db, acc_cfg, idle_renew=0.5) as f:
        acc = f.accounts["vanthu"]
        await eventually(lambda: acc.status.state == "idle", what="idle")
        await asyncio.to_thread(dovecot.freeze)
        try:
            await eventually(lambda: acc.status.errors >= 1, what="the watchdog firing")
            assert "timed out" in (acc.status.last_error or "")
        finally:
            await asyncio.to_thread(dovecot.thaw)
        await asyncio.to_thread(dovecot.append, VANTHU, mail(1))
        await eventually(lambda: _count(db, 1), what="fetching again after the thaw")
        assert acc.status.sessions >= 2
