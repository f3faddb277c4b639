"""Group commit: messages from concurrent SMTP sessions share one transaction.

Each session hands its message over and waits; a writer takes everything queued (up to a
count and a byte budget) and stores it in ONE statement, and only then are the waiting sessions
told their ids, so a client still gets its 250 only after its own row is committed. Under load
one round trip and one WAL flush cover many messages; when idle a batch is a single message
and nothing waits for company.

The statement (`store.messages.insert_messages`) does exactly what `insert_message` does for
each message, in one implicit transaction; tests/smtp checks that both give the same rows. It
runs on a small asyncpg pool of its own: going through SQLAlchemy
costs several round trips and about 1 ms of CPU per message, which capped acceptance.

If a shared transaction fails, each of its messages is retried alone, so one message the
database refuses does not take the others down with it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from store.db import Database, asyncpg_dsn, close_pool
from store.direct import no_reset
from store.messages import NewMessage, insert_messages

log = logging.getLogger("edocgw.smtp")


class CommitError(Exception):
    """The message was not (or not knowably) committed: the client must get a 4xx."""


@dataclass
class _Item:
    message: NewMessage
    future: asyncio.Future[int]


class Committer:
    def __init__(
        self,
        db: Database,
        *,
        writers: int = 2,
        max_batch: int = 64,
        max_batch_bytes: int = 16 * 1024 * 1024,
        timeout: float = 60.0,
        duplicate_window: dt.timedelta | None = None,
        handoff: Callable[[str, bytes], object] | None = None,
    ) -> None:
        self.db = db
        self.handoff = handoff  # a copy of the bytes for the pipeline (gateway/handoff.py)
        self.duplicate_window = duplicate_window
        self.writers = writers
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.timeout = timeout
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(
            asyncpg_dsn(self.db.url),
            min_size=1,
            max_size=self.writers,
            timeout=10,
            command_timeout=self.timeout,
            reset=no_reset,  # these connections only ever run the INSERT
        )
        self._tasks = [
            asyncio.create_task(self._writer(), name=f"smtp-commit-{n}")
            for n in range(self.writers)
        ]

    async def commit(self, message: NewMessage) -> int:
        """The new message id, once its transaction has committed; else CommitError."""
        if self._closed:
            raise CommitError("service is stopping")
        if self.handoff is not None:  # before the commit: there before the pipeline's claim
            self.handoff(message.sha256, message.raw)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieve)  # nobody may be left to read it
        self._queue.put_nowait(_Item(message, fut))
        try:
            # shield: a client that hangs up must not cancel a commit others share
            return await asyncio.wait_for(asyncio.shield(fut), self.timeout)
        except TimeoutError:
            raise CommitError(f"no commit within {self.timeout:g} s") from None

    async def close(self, grace: float = 15.0) -> None:
        """Stop taking messages and finish what is queued (bounded by `grace` seconds)."""
        self._closed = True
        try:
            await asyncio.wait_for(self._queue.join(), grace)
        except TimeoutError:
            log.warning(
                "SMTP commit queue not drained at shutdown", extra={"left": self._queue.qsize()}
            )
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(CommitError("service stopped"))
        if self._pool is not None:
            await close_pool(self._pool, 10)

    async def _writer(self) -> None:
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0].message.raw)
            while (
                len(batch) < self.max_batch
                and size < self.max_batch_bytes
                and not self._queue.empty()
            ):
                batch.append(self._queue.get_nowait())
                size += len(batch[-1].message.raw)
            try:
                await self._write(batch)
            finally:
                for _ in range(len(batch)):
                    self._queue.task_done()
                # Not to hold the last messages' bytes (up to max_message_size each) while
                # waiting for the next one.
                batch.clear()

    async def _write(self, batch: list[_Item]) -> None:
        try:
            ids = await self._insert([i.message for i in batch])
        except asyncio.CancelledError:
            for i in batch:
                _fail(i, CommitError("service stopped"))
            raise
        except Exception as e:
            if len(batch) == 1:
                log.warning("storing a message failed", extra={"error": repr(e)[:500]})
                _fail(batch[0], CommitError(str(e)[:200]))
                return
            for i in batch:  # find the one(s) the database refuses
                await self._write([i])
            return
        for i, msg_id in zip(batch, ids, strict=True):
            if not i.future.done():
                i.future.set_result(msg_id)

    async def _insert(self, messages: list[NewMessage]) -> list[int]:
        assert self._pool is not None
        stored = await insert_messages(self._pool, messages, duplicate_window=self.duplicate_window)
        return [m.id for m in stored]


def _fail(item: _Item, error: CommitError) -> None:
    if not item.future.done():
        item.future.set_exception(error)


def _retrieve(fut: asyncio.Future[int]) -> None:
    if not fut.cancelled():
        fut.exception()
