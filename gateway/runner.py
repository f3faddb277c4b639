"""The one loop every stage runs on: claim → handle → wait → back off → stop.

In the spirit of GNU Mailman's `core/runner.py`: the base class owns the loop, the wake-ups
and the shutdown; a stage only says how to claim work, how to process what it claimed and how
to give back what it could not finish. Each of `workers` loops

    claim a batch ─ none? wait for a NOTIFY on `channel`, the slow poll, or stop()
        └ some ─ handle it (what is claimed is *held* until `finished()` says otherwise)
    an error (claiming or processing) ─ log it, sleep a backoff that doubles up to a cap

stop() ends the claiming, lets current work finish for `stop_grace` seconds, cancels what
is left, and hands whatever is still held to `release()` so another worker (in this process
or another) takes it at once instead of waiting for the claim to expire. A stage with
`renew_every` set also has its held claims renewed while it works on them.

A periodic job (sealing, retention) is a runner whose `claim` does the job and returns
nothing: it then waits for its poll interval like any idle runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Hashable, Sequence
from typing import Generic, TypeVar

from gateway.waker import Waker

W = TypeVar("W")

log = logging.getLogger("edocgw.runner")


class Runner(Generic[W]):
    """Subclasses set `name` and implement `claim` and `handle`; the rest is optional."""

    name = "runner"
    channel: str | None = None  # the NOTIFY channel that announces new work
    dsn: str | None = None  # where to LISTEN (needed with a channel)
    poll_interval = 30.0  # the slow poll: idle runners look again this often anyway
    workers = 1
    stop_grace = 10.0
    backoff_initial = 0.5
    backoff_max = 30.0
    jitter = 0.0  # ± this fraction on every backoff, so failing peers do not march in step
    renew_every: float | None = None  # renew held claims this often (seconds), if set
    # After handle() returns, is the batch done with (True), or does the stage keep working
    # on it in tasks of its own and say so item by item with finished() (False)?
    done_after_handle = True

    def __init__(self) -> None:
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._renewer: asyncio.Task[None] | None = None
        self._held: dict[str, dict[Hashable, W]] = {}  # worker → key → item
        self.waker: Waker | None = None

    # -- what a stage provides ----------------------------------------------------------------

    async def claim(self, worker: str) -> Sequence[W]:
        """Take work (committed before processing starts); empty when there is none."""
        raise NotImplementedError

    async def handle(self, worker: str, batch: Sequence[W]) -> None:
        """Do the work and write its results; call `finished()` for each item written."""
        raise NotImplementedError

    async def release(self, worker: str, unfinished: Sequence[W]) -> None:
        """Give back claimed work a stop cut short (default: let the claims expire)."""

    async def renew(self, worker: str, held: Sequence[W]) -> None:
        """Extend the claims on `held` (only called when `renew_every` is set)."""

    async def setup(self) -> None:
        """Before the loops start (pools, TLS contexts)."""

    async def settle(self) -> None:
        """After the loops ended, before `release()`: let work the stage runs on its own
        finish (the delivery's in-flight sends)."""

    async def teardown(self) -> None:
        """After everything was released (close pools, a last seal)."""

    async def ready(self, worker: str) -> None:
        """Return when the worker may claim (default: at once); see `until_stopped()`."""

    async def idle_timeout(self) -> float:
        """How long an idle worker waits for a NOTIFY before it looks again."""
        return self.poll_interval

    async def idle(self, worker: str) -> None:
        """Wait for new work: a NOTIFY, the poll interval, or stop(), whichever comes first.
        A NOTIFY that came while the batch was handled ends the wait at once, so the wait's
        length (`idle_timeout`, a query for the delivery) is not asked for then: under load
        the next batch has usually announced itself by the time this one is done."""
        if self.waker is not None and self.channel is not None:
            if self.waker.take(self.channel):
                return
            timeout = await self.idle_timeout()
            await self.until_stopped(self.waker.wait(self.channel, timeout))
        else:
            await self.sleep(await self.idle_timeout())

    def more_waiting(self, batch: Sequence[W]) -> bool:
        """After a batch: claim again at once (True) or wait first (False)."""
        return True

    async def failed(self, worker: str, error: BaseException, wait: float) -> None:
        """Called after each error, before the backoff (logging, status, dropping a broken
        connection)."""
        log.warning(
            f"{self.name}: {type(error).__name__}: {error}; retrying in {wait:.1f}s",
            exc_info=error,
            extra={"worker": worker, "error": repr(error)},
        )

    def healthy(self) -> bool:
        """After a successful claim: may the backoff start again from `backoff_initial`?"""
        return True

    def key(self, item: W) -> Hashable:
        return getattr(item, "id", item)

    # -- what a stage may call ----------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def finished(self, worker: str, item: W) -> None:
        """*item* is written (or given up): stop() need not release it."""
        held = self._held.get(worker)
        if held is not None:
            held.pop(self.key(item), None)

    def holding(self) -> list[W]:
        return [item for held in self._held.values() for item in held.values()]

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake at once on stop()."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def until_stopped(self, aw: Awaitable[object]) -> bool:
        """Await *aw* unless stop() comes first (then *aw* is cancelled); True if it ended."""
        job = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({job, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in (job, stop):
                f.cancel()
            await asyncio.gather(job, stop, return_exceptions=True)
        return job.done() and not job.cancelled()

    # -- the lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.setup()
        if self.channel is not None and self.dsn is not None:
            self.waker = Waker(self.dsn, [self.channel])
            await self.waker.start()
        self._stopping.clear()
        base = getattr(self, "worker_id", self.name)
        self._tasks = [
            asyncio.create_task(
                self._loop(f"{base}/{i}" if self.workers > 1 else base), name=f"{self.name}-{i}"
            )
            for i in range(self.workers)
        ]
        if self.renew_every:
            self._renewer = asyncio.create_task(self._renew_loop(), name=f"{self.name}-renew")

    def alive(self) -> bool:
        """For /healthz: every loop is still running."""
        return bool(self._tasks) and all(not t.done() for t in self._tasks)

    def poke(self) -> None:
        """Look for work now (as a NOTIFY would)."""
        if self.waker is not None and self.channel is not None:
            self.waker.poke(self.channel)

    async def stop(self) -> None:
        self._stopping.set()
        self.poke()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self.stop_grace)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._tasks = []
        await self.settle()
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
            self._renewer = None
        held, self._held = self._held, {}
        for worker, items in held.items():
            if items:
                try:
                    await self.release(worker, list(items.values()))
                except Exception as e:
                    log.warning(
                        f"{self.name}: could not release claims; they expire",
                        extra={"error": repr(e)},
                    )
        if self.waker is not None:
            await self.waker.stop()
            self.waker = None
        await self.teardown()

    # -- the loop -----------------------------------------------------------------------------

    async def _loop(self, worker: str) -> None:
        delay = self.backoff_initial
        while not self.stopping:
            try:
                await self.ready(worker)
                if self.stopping:
                    break
                batch = await self.claim(worker)
                if self.healthy():
                    delay = self.backoff_initial
                if not batch:
                    await self.idle(worker)
                    continue
            except Exception as e:  # the database or a server away: wait, never die
                if self.stopping:
                    break
                delay = await self._back_off(worker, e, delay)
                continue
            self._held.setdefault(worker, {}).update((self.key(i), i) for i in batch)
            try:
                await self.handle(worker, batch)
            except Exception as e:  # a bug must not end the worker: the claims expire
                if not self.stopping:
                    delay = await self._back_off(worker, e, delay)
                continue
            finally:
                if self.done_after_handle and not self.stopping:  # else release() does
                    self._held.pop(worker, None)
            if not self.stopping and not self.more_waiting(batch):
                try:
                    await self.idle(worker)
                except Exception as e:
                    delay = await self._back_off(worker, e, delay)

    async def _back_off(self, worker: str, error: BaseException, delay: float) -> float:
        """Report *error*, sleep the current backoff; returns the next one."""
        wait = delay * random.uniform(1 - self.jitter, 1 + self.jitter)
        try:
            await self.failed(worker, error, wait)
        except Exception:
            log.exception(f"{self.name}: reporting an error failed")
        await self.sleep(wait)
        return min(delay * 2, self.backoff_max)

    async def _renew_loop(self) -> None:
        assert self.renew_every is not None
        while True:
            await asyncio.sleep(self.renew_every)
            for worker, items in list(self._held.items()):
                if not items:
                    continue
                try:
                    await self.renew(worker, list(items.values()))
                except Exception as e:
                    log.warning(f"{self.name}: renewing claims failed", extra={"error": str(e)})
