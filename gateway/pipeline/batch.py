"""Analyse, verify and decide a batch of claimed messages (nothing is written here).

Small messages are analysed together in one executor call; big ones (or a lone message)
alone. When a parse process dies on a batch, each message is analysed again alone, so only
the one that kills it fails. Only what carries a signature goes to the verifier. A failure is
kept on its job: it never takes the batch-mates down.
"""

from __future__ import annotations

import asyncio
import shutil
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from config import Settings
from gateway.pipeline.agencies import AgencyCache
from gateway.pipeline.analyse import (
    Analyser,
    AnalysisFailed,
    ContentAnalysis,
    analyse_many,
    spooled,
)
from gateway.pipeline.outcome import Envelope, Outcome, build_outcome
from gateway.pipeline.pools import Pools
from signing import SignatureReport
from store.db import Database
from store.results import ClaimedMessage, read_raw

TINY_MAX = 64 * 1024  # messages up to this size are analysed together in one executor call


@dataclass(eq=False)
class Job:
    """One claimed message on its way through a batch."""

    msg: ClaimedMessage
    spool: Path
    analysis: ContentAnalysis | None = None
    reports: dict[int, list[SignatureReport]] = field(default_factory=dict)
    smime: list[SignatureReport] = field(default_factory=list)
    outcome: Outcome | None = None
    error: BaseException | None = None

    @property
    def id(self) -> int:
        return self.msg.id


def _remove_all(directories: list[Path]) -> None:
    for d in directories:
        shutil.rmtree(d, ignore_errors=True)


class BatchPreparer:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        pools: Pools,
        analyser: Analyser,
        agencies: AgencyCache,
    ) -> None:
        self.settings = settings
        self.db = db
        self.pools = pools
        self.analyser = analyser
        self.agencies = agencies

    async def prepare(self, jobs: list[Job], deadline: float) -> None:
        """Analyse, verify and decide: fills each job's outcome, or its error."""
        try:
            await self._analyse_jobs(jobs, deadline)
            await asyncio.gather(
                *(self._verify_job(j, deadline) for j in jobs if j.analysis is not None)
            )
        finally:
            # Most mail spools nothing; clean up what was, in one hand-off to a thread.
            dirs = [j.spool for j in jobs if j.analysis is None or spooled(j.analysis)]
            if dirs:
                await asyncio.to_thread(_remove_all, dirs)
        if not any(j.analysis is not None and j.error is None for j in jobs):
            return
        try:
            agencies = await self.agencies.index()
        except Exception as e:
            for j in jobs:
                j.error = j.error or e
            return
        for j in jobs:
            if j.analysis is None or j.error is not None:
                continue
            env = Envelope(
                j.id,
                j.msg.source,
                j.msg.mail_from,
                j.msg.rcpt_to,
                j.msg.auth_results,
                j.msg.header_from,
            )
            try:
                j.outcome = build_outcome(
                    env,
                    j.analysis,
                    j.reports,
                    j.smime,
                    agencies,
                    self.settings,
                    self.agencies.sender_rules,
                )
            except Exception as e:
                j.error = e

    async def _analyse_jobs(self, jobs: list[Job], deadline: float) -> None:
        for j in jobs:
            if j.msg.raw is None:  # too big to come with the claim
                try:
                    async with self.db.sessions() as s:
                        j.msg.raw = await read_raw(s, j.id)
                except Exception as e:
                    j.error = e
        ready = [j for j in jobs if j.error is None]
        tiny: list[Job] = []
        singles: list[Job] = []
        for j in ready:
            small = len(ready) > 1 and len(j.msg.raw or b"") <= TINY_MAX
            (tiny if small else singles).append(j)
        await asyncio.gather(
            *([self._analyse_chunk(tiny, deadline)] if tiny else []),
            *(self._analyse_one(j, deadline) for j in singles),
        )
        for j in jobs:
            j.msg.raw = None  # analysed: the bytes are not needed any more

    async def _analyse_one(self, j: Job, deadline: float) -> None:
        assert j.msg.raw is not None
        try:
            async with asyncio.timeout_at(deadline):
                j.analysis = await self.pools.run(self.analyser, j.msg.raw, j.spool)
        except Exception as e:
            j.error = e

    async def _analyse_chunk(self, jobs: list[Job], deadline: float) -> None:
        work = [(j.msg.raw or b"", j.spool) for j in jobs]
        try:
            async with asyncio.timeout_at(deadline):
                results = await self.pools.run(analyse_many, self.analyser, work)
        except BrokenProcessPool:
            # A parse process died on one of them: one at a time finds which (the pool is
            # rebuilt after each death), so the others still get through on this attempt.
            for j in jobs:
                await self._analyse_one(j, deadline)
            return
        except Exception as e:
            for j in jobs:
                j.error = e
            return
        for j, r in zip(jobs, results, strict=True):
            if isinstance(r, AnalysisFailed):
                j.error = r
            else:
                j.analysis = r

    async def _verify_job(self, j: Job, deadline: float) -> None:
        assert j.analysis is not None
        if j.analysis.smime is None and not any(d.verify_path for d in j.analysis.docs):
            return  # nothing to verify: no round trip to the signing processes
        try:
            async with asyncio.timeout_at(deadline):
                j.reports, j.smime = await self.pools.verify(j.analysis)
        except Exception as e:
            j.error = e
