"""One `[[imap]]` account: connect, sync, wait (IDLE or poll), and start again on any failure.

A sync fetches every UID above the committed watermark, commits each message, and only then
applies `after` (flag, move, delete). After each (re)connect it also looks for messages at or
below the watermark that are still waiting for their `after` (the connection dropped between
the commit and the action): they go through the same path, are recognised as already stored
by their sha256, and get their action. Every failure (login refused, server gone, database
down) ends the session: the connection is dropped and retried with capped, jittered backoff,
without touching any other account.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from config.settings import ImapAccount
from gateway import metrics
from gateway.imap import state
from gateway.imap.client import KEYWORD, ImapConnection, ImapError, Mailbox, describe
from gateway.imap.envelope import envelope_of
from store.db import Database

log = logging.getLogger("edocgw.imap")

IDLE_RENEW = 29 * 60.0  # servers may drop an IDLE after 30 minutes (RFC 2177)


@dataclass
class AccountStatus:
    """What an account is doing, for logs, tests and the admin page."""

    state: str = "starting"  # connecting | syncing | idle | polling | backoff | stopped
    connected: bool = False
    last_error: str | None = None
    failures: int = 0  # consecutive failed sessions
    errors: int = 0  # all failed sessions
    sessions: int = 0  # successful logins
    fetched: int = 0  # message bodies fetched
    stored: int = 0  # new messages committed
    duplicates: int = 0  # fetched but already stored (same sha256)
    actions: int = 0  # after-actions applied
    skipped: int = 0  # too large, left in the mailbox
    last_sync: float | None = None


class AccountFetcher:
    def __init__(
        self,
        account: ImapAccount,
        db: Database,
        *,
        max_message_size: int,
        idle_renew: float = IDLE_RENEW,
        backoff_initial: float = 1.0,
        backoff_max: float = 300.0,
    ) -> None:
        self.account = account
        self.db = db
        self.max_message_size = max_message_size
        self.idle_renew = idle_renew
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.status = AccountStatus()
        self.stop_event = asyncio.Event()
        self.timeout = account.command_timeout.total_seconds()
        self._synced = asyncio.Condition()

    # -- the loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        delay = self.backoff_initial
        while not self.stop_event.is_set():
            try:
                await self._session()
            except Exception as e:
                if self.stop_event.is_set():
                    break
                expected = isinstance(e, ImapError | OSError | state.StateChanged | TimeoutError)
                reason = describe(e)
                if isinstance(e, SQLAlchemyError):
                    reason, expected = f"database: {reason}", True
                self.status.last_error = reason
                self.status.failures += 1
                self.status.errors += 1
                self.status.connected = False
                self.status.state = "backoff"
                if self.status.failures == 1:
                    delay = self.backoff_initial  # a working account that just broke
                wait = delay * random.uniform(0.8, 1.2)
                log.warning(
                    f"imap {self.account.name}: {reason}; retrying in {wait:.1f}s",
                    extra={"imap_account": self.account.name, "error": reason},
                    exc_info=not expected,  # a bug: keep the traceback for the log only
                )
                await self._sleep(wait)
                delay = min(delay * 2, self.backoff_max)
        self.status.state = "stopped"
        self.status.connected = False

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop_event.wait(), seconds)
        except TimeoutError:
            pass

    async def _password(self) -> str:
        a = self.account
        if a.password_file:
            try:
                text = await asyncio.to_thread(Path(a.password_file).read_text, encoding="utf-8")
            except OSError as e:
                raise ImapError(f"cannot read password_file {a.password_file}: {e.strerror}") from e
            return text.rstrip("\r\n")
        return a.password

    async def _session(self) -> None:
        a = self.account
        self.status.state = "connecting"
        conn = ImapConnection(a, await self._password(), self.timeout)
        try:
            await conn.open()
            box = await conn.select(a.mailbox)
            if a.after.startswith("move:"):
                await conn.create(a.after[5:])
            self.status.sessions += 1
            self.status.connected = True
            log.info(f"imap {a.name}: connected, {a.mailbox} UIDVALIDITY {box.uidvalidity}")
            use_idle = a.idle and conn.has("IDLE")
            first = True
            while not self.stop_event.is_set():
                self.status.state = "syncing"
                await self._sync(conn, box, recover=first)
                if first:  # only a session that got work done resets the backoff
                    self.status.failures = 0
                    self.status.last_error = None
                first = False
                if self.stop_event.is_set():
                    break
                if use_idle:
                    self.status.state = "idle"
                    await conn.idle(self.idle_renew, self.stop_event)
                else:
                    self.status.state = "polling"
                    await conn.wait(a.poll_seconds, self.stop_event)
        finally:
            self.status.connected = False
            await conn.close()

    # -- one sync ------------------------------------------------------------------------------
    async def _sync(self, conn: ImapConnection, box: Mailbox, *, recover: bool) -> None:
        """Fetch until a UID SEARCH finds nothing new.

        Searching again after a batch matters with IDLE: an EXISTS the server sends while
        we fetch or flag is dropped by aioimaplib, and the server will not repeat it when
        IDLE starts; only a search with nothing after it but IDLE leaves no gap.
        """
        a = self.account
        tried: set[int] = set()  # a UID the server lists but will not serve is tried once
        while not self.stop_event.is_set():
            last = await state.watermark(self.db, a.name, a.mailbox, box.uidvalidity)
            uids = [u for u in await conn.uid_search("UID", f"{last + 1}:*") if u > last]
            if recover and last > 0:
                uids = await self._waiting_for_action(conn, last) + uids
                recover = False
            uids = [u for u in uids if u not in tried]
            if not uids:
                break
            tried.update(uids)
            sizes = await conn.sizes(uids)
            for uid in uids:
                if self.stop_event.is_set():
                    return
                if uid in sizes:
                    await self._one(conn, box.uidvalidity, uid, sizes[uid])
        self.status.last_sync = time.time()
        async with self._synced:
            self._synced.notify_all()

    async def _waiting_for_action(self, conn: ImapConnection, last: int) -> list[int]:
        """Committed messages (UID <= watermark) whose `after` did not happen."""
        if self.account.after == "flag":
            return await conn.uid_search("UID", f"1:{last}", "UNKEYWORD", KEYWORD)
        return [u for u in await conn.uid_search("UID", f"1:{last}") if u <= last]

    async def _one(self, conn: ImapConnection, uidvalidity: int, uid: int, size: int) -> None:
        a = self.account
        if size > self.max_message_size:
            log.warning(
                f"imap {a.name}: UID {uid} is {size} bytes, above the limit of "
                f"{self.max_message_size}; left in {a.mailbox} untouched",
                extra={"imap_account": a.name, "uid": uid, "size": size},
            )
            await state.skip(self.db, a.name, a.mailbox, uidvalidity, uid)
            self.status.skipped += 1
            return
        raw = await conn.fetch(uid, size)
        if raw is None:  # expunged by someone else since the search
            return
        self.status.fetched += 1
        sha256 = await asyncio.to_thread(lambda: hashlib.sha256(raw).hexdigest())
        env = envelope_of(raw, a.user)
        msg = state.HashedMessage(
            sha256=sha256,
            source="imap",
            peer=f"{a.name}/{a.mailbox}/{uid}",
            raw=raw,
            mail_from=env.mail_from,
            rcpt_to=env.rcpt_to,
            header_message_id=env.message_id,
            header_from=env.header_from,
            subject=env.subject,
            detail={
                "imap_account": a.name,
                "mailbox": a.mailbox,
                "uid": uid,
                "uidvalidity": uidvalidity,
            },
        )
        done = await state.commit(self.db, a.name, a.mailbox, uidvalidity, uid, msg)
        if done.duplicate:
            self.status.duplicates += 1
            log.info(f"imap {a.name}: UID {uid} is already stored as message {done.message_id}")
        else:
            self.status.stored += 1
            metrics.message_received("imap")
            log.info(f"imap {a.name}: UID {uid} stored as message {done.message_id}")
        # Only now, with the message committed, may the mailbox change.
        await self._after(conn, uid)
        self.status.actions += 1

    async def _after(self, conn: ImapConnection, uid: int) -> None:
        after = self.account.after
        if after == "flag":
            await conn.flag(uid)
        elif after == "delete":
            await conn.delete(uid)
        else:
            await conn.move(uid, after[5:])

    async def wait_synced(self, within: float) -> None:
        """For tests and tools: wait for the end of the next sync."""
        async with self._synced:
            await asyncio.wait_for(self._synced.wait(), within)
