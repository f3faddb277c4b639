"""Writing a batch's results, and the failures, each fenced by the worker's claim.

All results of a batch go in one statement (store.results.write_batch): in one transaction
with the senders' notices and the status packages' log lines when there are any, else alone
on the process's own pool. If that fails, each message is written alone, its notice in a
savepoint, so a message the database refuses (or whose notice fails) holds up no other and a
receipts bug never loses the results.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from config import Settings
from gateway.notices.receipts import NoticeRequest
from gateway.pipeline.analyse import AnalysisFailed
from gateway.pipeline.batch import Job
from gateway.pipeline.status import NO_NOTICE, record_statuses
from store.db import Database
from store.results import error_line, record_failure, write_batch

log = logging.getLogger("edocgw.pipeline")

# Queues the senders' notices inside the caller's transaction (session, settings, requests);
# gateway.notices.receipts.queue_notices in production.
NoticesFn = Callable[[Any, Settings, Sequence[NoticeRequest]], Awaitable[object]]


def error_text(e: BaseException) -> str:
    """What is stored as the message's error: one line, never the SQL of a failed write."""
    if isinstance(e, AnalysisFailed):
        return str(e)
    return error_line(e)


def _status(j: Job) -> bool:
    """Whether *j* is an edXML status package (logged against its original in the write)."""
    return getattr(j.outcome, "status", None) is not None


def _requests(jobs: Sequence[Job]) -> list[NoticeRequest]:
    """The senders' notices of *jobs* (a status package answering a document gets none)."""
    return [
        NoticeRequest(j.id, j.outcome.notice, j.outcome.notice_detail)  # type: ignore[union-attr]
        for j in jobs
        if j.outcome.notice != NO_NOTICE  # type: ignore[union-attr]
    ]


class ResultWriter:
    def __init__(
        self, db: Database, settings: Settings, notices: NoticesFn | None, retry_delay: float
    ) -> None:
        self.db = db
        self.settings = settings
        self.notices = notices
        self.retry_delay = retry_delay

    async def write(self, worker: str, jobs: Sequence[Job], deadline: float) -> set[int]:
        """The ids written; a job left out lost its claim, or got its `error` set."""
        if not jobs:
            return set()
        try:
            results = [j.outcome.result for j in jobs]  # type: ignore[union-attr]
            async with asyncio.timeout_at(deadline):
                if self.notices is None and not any(_status(j) for j in jobs):
                    # The statement alone, on the process's own asyncpg pool: a SQLAlchemy
                    # transaction around it cost two more round trips and about 0.6 ms more
                    # of the worker's CPU per batch (store/direct.py).
                    return set(await write_batch(await self.db.direct(), worker, results))
                async with self.db.transaction() as s:
                    written = await write_batch(s, worker, results)
                    await record_statuses(s, [(j.id, j.outcome) for j in jobs if j.id in written])  # type: ignore[misc]
                    if self.notices is not None:
                        await self.notices(
                            s, self.settings, _requests([j for j in jobs if j.id in written])
                        )
            return set(written)
        except Exception as e:
            log.warning(
                "writing a batch failed; writing its messages one by one",
                extra={"messages": len(jobs), "error": repr(e)},
            )
        done: set[int] = set()
        for j in jobs:
            try:
                if await self._write_one(worker, j, deadline):
                    done.add(j.id)
            except Exception as e1:
                j.error = e1
        return done

    async def _write_one(self, worker: str, j: Job, deadline: float) -> bool:
        """One message's results and notice in its own transaction; the notice in a
        savepoint, so a receipts bug does not lose the results. False: the claim was lost."""
        assert j.outcome is not None
        async with asyncio.timeout_at(deadline), self.db.transaction() as s:
            written = await write_batch(s, worker, [j.outcome.result])
            if j.id in written:
                await record_statuses(s, [(j.id, j.outcome)])
            if j.id in written and self.notices is not None and _requests([j]):
                try:
                    async with s.begin_nested():
                        await self.notices(s, self.settings, _requests([j]))
                except Exception as e:
                    log.warning(
                        "could not queue the sender's notice",
                        exc_info=True,
                        extra={"message_id": j.id, "kind": j.outcome.notice, "error": repr(e)},
                    )
        return j.id in written

    async def fail(
        self, worker: str, message_id: int, error: str, *, final: bool, keep_error: bool = False
    ) -> bool:
        """Record a failed attempt (the message is retried later, or `failed` when *final*);
        False when that could not be written (the claim expires; the attempt is counted)."""
        try:
            async with self.db.transaction() as s:
                await record_failure(
                    s,
                    message_id,
                    worker,
                    error,
                    final=final,
                    retry_after=dt.timedelta(seconds=self.retry_delay),
                    keep_error=keep_error,
                )
            return True
        except Exception as e:
            log.warning("could not record a failure", extra={"error": repr(e)})
            return False
