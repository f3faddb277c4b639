"""One `[[imap]]` account on the runner base class: connect, sync, wait (IDLE or poll), and
start again on any failure.

A claim is a sync step: (re)connect if needed, then the UIDs above the committed watermark;
handling them fetches and commits each message, and only then applies `after` (flag, move,
delete). A claim that finds nothing ends the sync, and the runner waits in IDLE (or the
poll). After each (re)connect the first claim also looks for messages at or below the
watermark that are still waiting for their `after` (the connection dropped between the
commit and the action): they go through the same path, are recognised as already stored by
their sha256, and get their action. Every failure (login refused, server gone, database
down) drops the connection and is retried with capped, jittered backoff, without touching
any other account.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from config.settings import ImapAccount
from gateway import metrics
from gateway.imap.client import KEYWORD, ImapConnection, ImapError, Mailbox, describe
from gateway.imap.envelope import envelope_of
from gateway.runner import Runner
from store import imap_state as state
from store.db import Database

log = logging.getLogger("edocgw.imap")

IDLE_RENEW = 29 * 60.0  # servers may drop an IDLE after 30 minutes (RFC 2177)
STOP_GRACE = 5.0  # time for LOGOUT before the task is cancelled


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


@dataclass(frozen=True)
class Uid:
    """One message to fetch: its UID and its size as the server gave it."""

    id: int
    size: int


class AccountFetcher(Runner[Uid]):
    stop_grace = STOP_GRACE
    jitter = 0.2

    def __init__(
        self,
        account: ImapAccount,
        db: Database,
        *,
        max_message_size: int,
        duplicate_window: dt.timedelta | None = None,
        idle_renew: float = IDLE_RENEW,
        backoff_initial: float = 1.0,
        backoff_max: float = 300.0,
    ) -> None:
        super().__init__()
        self.name = self.worker_id = f"imap:{account.name}"
        self.account = account
        self.db = db
        self.max_message_size = max_message_size
        self.duplicate_window = duplicate_window  # [gateway] duplicate_window, as SMTP intake
        self.idle_renew = idle_renew
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.status = AccountStatus()
        self.timeout = account.command_timeout.total_seconds()
        self._synced = asyncio.Condition()
        self._conn: ImapConnection | None = None
        self._box: Mailbox | None = None
        self._use_idle = False
        self._recover = False  # look below the watermark in the next claim
        self._first = False  # the session's first sync is not over yet
        self._tried: set[int] = set()  # a UID the server lists but will not serve: once a sync

    @property
    def stop_event(self) -> asyncio.Event:
        return self._stopping

    # -- the runner's hooks -------------------------------------------------------------------

    async def claim(self, worker: str) -> Sequence[Uid]:
        """The next UIDs of this sync; none when the sync is over.

        Searching again after a batch matters with IDLE: an EXISTS the server sends while
        we fetch or flag is dropped by aioimaplib, and the server will not repeat it when
        IDLE starts; only a search with nothing after it but IDLE leaves no gap.
        """
        if self._conn is None:
            await self._connect()
        conn, box = self._conn, self._box
        assert conn is not None and box is not None
        self.status.state = "syncing"
        a = self.account
        while not self.stopping:
            last = await state.watermark(self.db, a.name, a.mailbox, box.uidvalidity)
            uids = [u for u in await conn.uid_search("UID", f"{last + 1}:*") if u > last]
            if self._recover and last > 0:
                uids = await self._waiting_for_action(conn, last) + uids
            self._recover = False
            uids = [u for u in uids if u not in self._tried]
            if not uids:
                break
            self._tried.update(uids)
            sizes = await conn.sizes(uids)
            found = [Uid(u, sizes[u]) for u in uids if u in sizes]
            if found:
                return found
        await self._sync_done()
        return ()

    async def handle(self, worker: str, batch: Sequence[Uid]) -> None:
        assert self._conn is not None and self._box is not None
        for uid in batch:
            if self.stopping:
                return
            await self._one(self._conn, self._box.uidvalidity, uid.id, uid.size)

    async def idle(self, worker: str) -> None:
        conn = self._conn
        if conn is None or self.stopping:
            return
        if self._use_idle:
            self.status.state = "idle"
            await conn.idle(self.idle_renew, self._stopping)
        else:
            self.status.state = "polling"
            await conn.wait(self.account.poll_seconds, self._stopping)

    def healthy(self) -> bool:
        return self.status.failures == 0  # only a session that got work done resets the backoff

    async def failed(self, worker: str, error: BaseException, wait: float) -> None:
        await self._disconnect()
        expected = isinstance(error, ImapError | OSError | state.StateChanged | TimeoutError)
        reason = describe(error)
        if state.is_store_error(error):
            reason, expected = f"database: {reason}", True
        self.status.last_error = reason
        self.status.failures += 1
        self.status.errors += 1
        self.status.state = "backoff"
        log.warning(
            f"imap {self.account.name}: {reason}; retrying in {wait:.1f}s",
            extra={"imap_account": self.account.name, "error": reason},
            exc_info=error if not expected else None,  # a bug: keep the traceback in the log
        )

    async def teardown(self) -> None:
        await self._disconnect()
        self.status.state = "stopped"

    # -- the connection -----------------------------------------------------------------------

    async def _connect(self) -> None:
        a = self.account
        self.status.state = "connecting"
        conn = ImapConnection(a, await self._password(), self.timeout)
        self._conn = conn  # from here on a failure closes it
        await conn.open()
        box = await conn.select(a.mailbox)
        if a.after.startswith("move:"):
            await conn.create(a.after[5:])
        self._box = box
        self.status.sessions += 1
        self.status.connected = True
        log.info(f"imap {a.name}: connected, {a.mailbox} UIDVALIDITY {box.uidvalidity}")
        self._use_idle = a.idle and conn.has("IDLE")
        self._recover = self._first = True
        self._tried.clear()

    async def _disconnect(self) -> None:
        conn, self._conn, self._box = self._conn, None, None
        self.status.connected = False
        if conn is not None:
            await conn.close()

    async def _sync_done(self) -> None:
        if self._first:
            self.status.failures = 0
            self.status.last_error = None
            self._first = False
        self._tried.clear()
        self.status.last_sync = time.time()
        async with self._synced:
            self._synced.notify_all()

    async def _password(self) -> str:
        a = self.account
        if a.password_file:
            try:
                text = await asyncio.to_thread(Path(a.password_file).read_text, encoding="utf-8")
            except OSError as e:
                raise ImapError(f"cannot read password_file {a.password_file}: {e.strerror}") from e
            return text.rstrip("\r\n")
        return a.password

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
        done = await state.commit(
            self.db, a.name, a.mailbox, uidvalidity, uid, msg, self.duplicate_window
        )
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
