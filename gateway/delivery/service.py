"""The delivery stage of `edocgw serve`: claims due deliveries and sends them.

It runs on gateway.runner.Runner with one dispatcher: it claims as many due rows as it has
free slots (`[delivery] workers`), most urgent first, and runs each as a task; it waits for
a NOTIFY on `edocgw_deliveries`, the next retry falling due, or the slow poll. A
per-destination semaphore caps parallel connections to one next hop within the process.
Claims are renewed while a send is in progress and, on stop, whatever was not finished is
released so another process picks it up at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import replace

from config import Settings
from gateway.delivery import invitations
from gateway.delivery.connections import Connections
from gateway.delivery.dkimsign import DkimSigner
from gateway.delivery.edxml_out import package_mail
from gateway.delivery.outcome import apply_delivered, apply_outcome, delivered_rows
from gateway.delivery.route import RouteInput, resolve, shared_resolver
from gateway.delivery.smtp import Result, Target, Timeouts, TlsContexts
from gateway.delivery.trace import line_ending, trace_headers
from gateway.delivery.wire import Outgoing
from gateway.recentraw import RecentRaw
from gateway.runner import Runner
from gateway.senderauth.results import strip_own_results
from store import deliveries as repo
from store.db import CHANNEL_DELIVERIES, Database, asyncpg_dsn, connection_lost
from store.deliveries import ClaimedDelivery, LostClaim
from store.rawbytes import read_raw_sliced

log = logging.getLogger("edocgw.delivery")

RECORD_BATCH = 200  # accepted deliveries written per transaction
STOP_GRACE = 10.0  # seconds in-flight sends may take to finish on stop (serve allows 20)


class DeliveryService(Runner[ClaimedDelivery]):
    name = "delivery"
    channel = CHANNEL_DELIVERIES
    stop_grace = STOP_GRACE
    backoff_initial = 1.0
    backoff_max = 10.0
    done_after_handle = False  # each claimed row is sent by a task of its own

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        worker_id: str | None = None,
        recent_raw: RecentRaw | None = None,
    ) -> None:
        super().__init__()
        self.recent_raw = recent_raw  # what this process's pipeline just read
        self.settings = settings
        self.db = db
        self.dsn = asyncpg_dsn(db.url)
        self.worker = self.worker_id = worker_id or (
            f"{socket.gethostname()}:{os.getpid()}:delivery:{secrets.token_hex(3)}"
        )
        s = settings.delivery
        self.slots = s.workers
        self.lease = settings.gateway.claim_timeout
        self.renew_every = max(self.lease.total_seconds() / 3, 0.2)
        self.poll_interval = s.poll_interval.total_seconds()
        self.timeouts = Timeouts(
            s.connect_timeout.total_seconds(), s.command_timeout.total_seconds()
        )
        self.contexts: TlsContexts | None = None
        self.signer: DkimSigner | None = None
        self.connections = Connections(max_idle=s.concurrency_per_destination)
        self.mx = shared_resolver(s.dns_servers)
        self._sending: set[asyncio.Task[None]] = set()
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._slot_freed = asyncio.Event()
        self._asked = 0  # how many rows the last claim asked for
        self._accepted: list[tuple[ClaimedDelivery, Result, asyncio.Future[bool]]] = []
        self._recorder: asyncio.Task[None] | None = None

    async def setup(self) -> None:
        self.contexts = await asyncio.to_thread(TlsContexts, self.settings.delivery.tls_ca_file)
        self.signer = await asyncio.to_thread(DkimSigner.from_settings, self.settings.dkim)

    # -- dispatching (the runner's hooks) -----------------------------------------------------

    async def ready(self, worker: str) -> None:
        """Until a slot is free (or stop)."""
        while self.slots - len(self._sending) <= 0 and not self.stopping:
            await self.until_stopped(self._slot_freed.wait())
            self._slot_freed.clear()

    async def claim(self, worker: str) -> Sequence[ClaimedDelivery]:
        self._asked = self.slots - len(self._sending)
        recent = self.recent_raw
        claimed = await repo.claim_due(  # one statement, committed on its own (store/direct.py)
            await self.db.direct(),
            worker=self.worker,
            lease=self.lease,
            limit=self._asked,
            cached=recent.keys() if recent is not None else (),
        )
        if recent is None:
            return claimed
        # a message the pipeline just read comes from memory (one not there any more is read
        # from the database when it is sent, as a big message is)
        return [
            replace(d, raw=raw) if d.raw is None and (raw := recent.get(d.message_id)) else d
            for d in claimed
        ]

    async def handle(self, worker: str, batch: Sequence[ClaimedDelivery]) -> None:
        for d in batch:
            task = asyncio.create_task(self._deliver(d), name=f"delivery-{d.id}")
            self._sending.add(task)
            task.add_done_callback(self._done)

    def more_waiting(self, batch: Sequence[ClaimedDelivery]) -> bool:
        return len(batch) == self._asked  # a full claim: there may be more due at once

    async def failed(self, worker: str, error: BaseException, wait: float) -> None:
        log.warning(f"claiming deliveries failed; will retry: {error}")

    async def renew(self, worker: str, held: Sequence[ClaimedDelivery]) -> None:
        async with self.db.transaction() as s:
            await repo.renew_claims(s, [d.id for d in held], self.worker, self.lease)

    def _done(self, task: asyncio.Task[None]) -> None:
        """A slot is free. No look for due rows here: a full claim already claims again at
        once, and new rows announce themselves by NOTIFY; waking the dispatcher after every
        delivered message cost two queries each (an empty claim and the next-due look-up)."""
        self._sending.discard(task)
        self._slot_freed.set()

    async def idle_timeout(self) -> float:
        poll = self.poll_interval
        try:
            due = await repo.next_due_at(await self.db.direct())
        except asyncio.CancelledError:
            raise
        except Exception:
            return min(poll, 1.0)
        if due is None:
            return poll
        wait = (due - dt.datetime.now(dt.UTC)).total_seconds()
        return min(max(wait, 0.05), poll)

    def _limit(self, destination: str) -> asyncio.Semaphore:
        sem = self._limits.get(destination)
        if sem is None:
            sem = self._limits[destination] = asyncio.Semaphore(
                self.settings.delivery.concurrency_per_destination
            )
        return sem

    # -- one delivery -------------------------------------------------------------------------

    async def _deliver(self, d: ClaimedDelivery) -> None:
        self.connections.want(d.destination)
        state: str | None = None
        try:
            async with self._limit(d.destination):
                if self.stopping:
                    return  # released by stop()
                try:
                    result = await self._attempt(d)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # a bug must not strand the row: defer it
                    log.exception("delivery attempt failed", extra={"delivery": d.id})
                    result = Result("temporary", None, f"internal error: {type(e).__name__}: {e}")
            if result.outcome == "delivered":
                state = await self._record_delivered(d, result)
            else:
                async with self.db.transaction() as s:
                    state = (await apply_outcome(s, self.settings, d, result, self.worker)).state
            self.finished(self.worker, d)
            log.info(
                f"delivery {d.id} to {d.recipient}: {state}",
                extra={"delivery": d.id, "message_id": d.message_id, "reply": result.reply},
            )
        except LostClaim as e:
            self.finished(self.worker, d)
            log.warning(str(e), extra={"delivery": d.id})
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the database failed: the lease expires and it is retried
            self.finished(self.worker, d)  # (so it is no longer renewed)
            log.warning(
                "recording a delivery outcome failed", extra={"delivery": d.id, "error": str(e)}
            )
        finally:
            self.connections.unwant(d.destination)
            if state != "delivered":
                self.poke()  # a deferral may fall due before the dispatcher's next look

    async def _attempt(self, d: ClaimedDelivery) -> Result:
        s = self.settings
        targets = await resolve(
            RouteInput(d.recipient, d.route, d.tls),
            smarthost=s.delivery.smarthost,
            require_tls=s.delivery.require_tls,
            dns_lifetime=self.timeouts.connect,
            mx=self.mx,
        )
        if isinstance(targets, Result):
            return targets
        raw = d.raw
        verdicts = list(d.doc_verdicts or ())
        if raw is None or d.doc_verdicts is None:  # a big message: read apart from the claim
            async with self.db.transaction() as session:
                raw = await read_raw_sliced(session, d.message_id)  # not whole: memory
                verdicts = await repo.document_verdicts(session, d.message_id)
        if d.format == "edxml" and d.source != "internal":  # issue 15: an edXML package
            raw = await package_mail(self.db, s, d)
        else:  # a client's Authentication-Results in the gateway's name is a forgery (RFC 8601 §5)
            raw = strip_own_results(raw, s.gateway.hostname)
        if verdicts:  # issue 15: a Giấy mời carries a meeting invitation (documents only)
            invitation = await invitations.prepare(self.db, s, d, raw)
            if invitation is not None:
                del raw
                return await invitations.deliver(
                    self.db,
                    d,
                    invitation,
                    lambda body: self._transmit(d, targets, self._traced(d, verdicts, body)),
                )
        data = self._traced(d, verdicts, raw)
        del raw
        return await self._transmit(d, targets, data)

    def _traced(self, d: ClaimedDelivery, verdicts: list[str | None], raw: bytes) -> Outgoing:
        s = self.settings
        eol = line_ending(raw)
        return Outgoing(  # pieces, not joined: no second copy of a big message
            trace_headers(
                hostname=s.gateway.hostname,
                message_id=d.message_id,
                peer=d.peer,
                source=d.source,
                recipient=d.recipient,
                received_at=d.received_at,
                message_verdict=d.verdict,
                document_verdicts=verdicts,
                eol=eol,
                auth_results=d.auth_results,
            ),
            raw,
        )

    async def _transmit(self, d: ClaimedDelivery, targets: list[Target], data: Outgoing) -> Result:
        """The gateway's DKIM signature on `data`, then the first server that answers: the
        one path every outgoing copy takes."""
        s = self.settings
        eol = line_ending(data.pieces[0]) if data.pieces else b"\r\n"
        if self.signer is not None:  # the one place outgoing bytes are signed (CPU: a thread)
            data = await asyncio.to_thread(self.signer.sign_pieces, data, eol)
        assert self.contexts is not None
        result = Result("temporary", None, "no server to try")
        for target in targets:
            result = await self.connections.send(
                target,
                mail_from=d.mail_from,
                recipient=d.recipient,
                data=data,
                helo=s.gateway.hostname,
                timeouts=self.timeouts,
                contexts=self.contexts,
                destination=d.destination,
            )
            if result.outcome != "temporary" or not result.unreachable:
                break  # a server answered about this message: do not try the next MX
        return result

    # -- recording accepted deliveries in batches ---------------------------------------------

    async def _record_delivered(self, d: ClaimedDelivery, result: Result) -> str:
        """Hand an accepted delivery to the recorder, which writes every one waiting in one
        transaction (a batch forms by itself while the previous one is being written)."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._accepted.append((d, result, fut))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._write_accepted(), name="delivery-record")
        if not await fut:
            raise LostClaim(f"delivery {d.id} is no longer claimed by {self.worker}")
        return "delivered"

    async def _write_accepted(self) -> None:
        while self._accepted:
            batch, self._accepted = self._accepted[:RECORD_BATCH], self._accepted[RECORD_BATCH:]
            try:
                await self._write_batch(batch)
            except Exception as e:
                if len(batch) == 1:  # the database failed: the lease expires and it is retried
                    _fail(batch[0][2], e)
                    continue
                log.warning(
                    "recording a batch failed; recording one by one", extra={"error": repr(e)}
                )
                for one in batch:  # so one row the database refuses does not hold the others
                    try:
                        await self._write_batch([one])
                    except Exception as e1:
                        _fail(one[2], e1)

    async def _write_batch(
        self, batch: list[tuple[ClaimedDelivery, Result, asyncio.Future[bool]]]
    ) -> None:
        """Record *batch*; once more on a fresh connection when the first one was dead (a
        restarted server): these messages were sent, and an outcome left unrecorded sends
        them again when the lease runs out. Recording is fenced on the claim, so a second
        write after a first that did commit changes nothing."""
        try:
            await self._write_batch_once(batch)
        except Exception as e:
            if not connection_lost(e):
                raise
            log.info("recording deliveries on a fresh connection", extra={"error": repr(e)})
            await self._write_batch_once(batch)

    async def _write_batch_once(
        self, batch: list[tuple[ClaimedDelivery, Result, asyncio.Future[bool]]]
    ) -> None:
        items = [(d, r) for d, r, _ in batch]
        if self.settings.receipts.enabled:
            async with self.db.transaction() as s:
                done = await apply_delivered(s, self.settings, items, self.worker)
        else:  # one statement: alone on the process's own pool (gateway/pipeline/writer.py)
            rows = delivered_rows(items, self.worker)
            done = await repo.record_delivered(await self.db.direct(), self.worker, rows)
        for d, _, fut in batch:
            if not fut.done():
                fut.set_result(d.id in done)

    # -- stopping (the runner's hooks) ------------------------------------------------------

    async def settle(self) -> None:
        """In-flight sends may finish (STOP_GRACE); their results are recorded."""
        if self._sending:
            _, pending = await asyncio.wait(set(self._sending), timeout=STOP_GRACE)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)
        if self._recorder is not None:
            await asyncio.wait({self._recorder}, timeout=5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.connections.close(self.timeouts), 10)

    async def teardown(self) -> None:
        try:  # every row this worker holds, also one whose claim the stop cut short
            async with self.db.transaction() as s:
                released = await repo.release_claims(s, None, self.worker)
            if released:
                log.info(f"released {released} unsent deliveries")
        except Exception as e:
            log.warning("releasing delivery claims failed", extra={"error": str(e)})


def _fail(fut: asyncio.Future[bool], error: BaseException) -> None:
    if not fut.done():
        fut.set_exception(error)
