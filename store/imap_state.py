"""The IMAP fetcher's database side (gateway/imap/account.py): the per-mailbox watermark
and the commit of each message.

`imap_state` holds (account, mailbox) → UIDVALIDITY and the highest committed UID. A message
row and the watermark move in one transaction, so after a crash the fetcher resumes exactly
after the last message it committed. The row is locked by that UPDATE, which also serialises
two gateway processes configured with the same account.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import Update, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import SQLAlchemyError

from store.db import Database
from store.messages import NewMessage, find_by_sha256, insert_message
from store.models import ImapState

log = logging.getLogger("edocgw.imap")


def is_store_error(e: BaseException) -> bool:
    """Did the database (not the IMAP server) fail? The fetcher says so in its status."""
    return isinstance(e, SQLAlchemyError)


class StateChanged(Exception):
    """The mailbox's UIDVALIDITY in the database changed under us (another process saw it)."""


@dataclass
class Committed:
    message_id: int
    duplicate: bool


class HashedMessage(NewMessage):
    """A NewMessage whose sha256 was computed once, off the event loop, by the caller."""

    def __init__(self, *, sha256: str, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self._sha256 = sha256

    @property  # type: ignore[override]
    def sha256(self) -> str:
        return self._sha256


async def watermark(db: Database, account: str, mailbox: str, uidvalidity: int) -> int:
    """The last committed UID for this UIDVALIDITY; a new UIDVALIDITY restarts from 0."""
    async with db.transaction() as s:
        await s.execute(
            pg_insert(ImapState)
            .values(account=account, mailbox=mailbox, uidvalidity=uidvalidity, last_uid=0)
            .on_conflict_do_nothing()
        )
        row = (
            await s.execute(
                select(ImapState)
                .where(ImapState.account == account, ImapState.mailbox == mailbox)
                .with_for_update()
            )
        ).scalar_one()
        if row.uidvalidity == uidvalidity:
            return row.last_uid
        log.warning(
            f"imap {account}/{mailbox}: UIDVALIDITY changed from {row.uidvalidity} to "
            f"{uidvalidity}; re-scanning the mailbox (duplicates are recognised by sha256)"
        )
        row.uidvalidity = uidvalidity
        row.last_uid = 0
        row.updated_at = func.now()
        return 0


def _advance(account: str, mailbox: str, uidvalidity: int, uid: int) -> Update:
    """The watermark moved up to `uid`, only while the mailbox keeps its UIDVALIDITY."""
    return (
        update(ImapState)
        .where(
            ImapState.account == account,
            ImapState.mailbox == mailbox,
            ImapState.uidvalidity == uidvalidity,
        )
        .values(last_uid=func.greatest(ImapState.last_uid, uid), updated_at=func.now())
    )


async def commit(
    db: Database,
    account: str,
    mailbox: str,
    uidvalidity: int,
    uid: int,
    msg: HashedMessage,
    duplicate_window: dt.timedelta | None = None,
) -> Committed:
    """Store the message (unless the same bytes are stored already) and advance the watermark.

    Both happen in one transaction: when it fails, neither did, and the message is fetched
    again on the next attempt.
    """
    async with db.transaction() as s:
        advance = _advance(account, mailbox, uidvalidity, uid).returning(ImapState.last_uid)
        locked = (await s.execute(advance)).scalar_one_or_none()
        if locked is None:
            raise StateChanged(f"UIDVALIDITY of {account}/{mailbox} changed in the database")
        existing = await find_by_sha256(s, msg.sha256)
        if existing is not None:
            return Committed(message_id=existing, duplicate=True)
        stored = await insert_message(s, msg, duplicate_window=duplicate_window)
        return Committed(message_id=stored, duplicate=False)


async def skip(db: Database, account: str, mailbox: str, uidvalidity: int, uid: int) -> None:
    """Move the watermark past a message that will not be stored (too large)."""
    async with db.transaction() as s:
        await s.execute(_advance(account, mailbox, uidvalidity, uid))
