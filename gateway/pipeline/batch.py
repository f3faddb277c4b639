"""Analyse, verify and decide a batch of claimed messages (nothing is written here).

Small messages are analysed together, a few per hand-off to an analysis process; bigger ones
alone. A message too big to come with the claim is copied from the store to a spool file a
slice at a time, and the analysis process reads that file: megabytes never cross a pipe.
Each hand-off is stopped at `[gateway] analyse_timeout` (or the claim's end, if sooner): its
process is killed and the attempt fails with that reason. When an analysis process dies or
is stopped on a batch, each message is analysed again alone, so only the culprit fails. On a
message's first attempt the analysis process checks its small signed parts itself; what is
left (big parts, or everything on a retry) goes to the verifier processes. A failure is kept
on its job: it never takes the batch-mates down.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from config import Settings
from gateway.pipeline.agencies import AgencyCache
from gateway.pipeline.analyse import (
    Analyser,
    AnalysisFailed,
    ContentAnalysis,
    RawFile,
    spooled,
)
from gateway.pipeline.outcome import Envelope, Outcome, build_outcome
from gateway.pipeline.pools import Pools
from gateway.processes.pool import JobTimeout, WorkerDied
from signing import SignatureReport
from store.db import Database
from store.rawbytes import raw_slices
from store.results import ClaimedMessage

TINY_MAX = 64 * 1024  # messages up to this size are analysed together in one hand-off,
CHUNK = 8  # up to this many at a time, so a batch keeps every analysis process busy
OUT_OF_CLAIM = "analysis did not finish before the claim ran out (gateway.claim_timeout)"
RAW_NAME = "message.eml"  # a message too big for the claim, spooled for the analysis process


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
    source: bytes | RawFile | None = None  # what the analysis process reads the message from
    small: bool = False  # analysed in one hand-off with other small ones

    @property
    def id(self) -> int:
        return self.msg.id

    @property
    def verify_in_analysis(self) -> bool:
        """On its first attempt, a message's small signed parts are verified by the analysis
        process itself. A retry (whatever failed before: perhaps a part that kills or hangs
        its process) sends them to the verifier processes, whose own deadline and death
        give a verdict for that part instead of failing the message again."""
        return self.msg.attempts <= 1


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
            dirs = [
                j.spool
                for j in jobs
                if j.analysis is None or spooled(j.analysis) or isinstance(j.source, RawFile)
            ]
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
            if j.msg.raw is None:  # too big to come with the claim: to the spool file
                try:
                    j.source = await self._spool_from_store(j)
                except Exception as e:
                    j.error = e
        ready = [j for j in jobs if j.error is None]
        chunks: list[list[Job]] = []
        for j in ready:
            if j.source is None:  # it came with the claim (up to INLINE_MAX): through the pipe
                j.source = j.msg.raw
            j.msg.raw = None  # the bytes are not needed here any more
            small = not isinstance(j.source, RawFile) and len(j.source or b"") <= TINY_MAX
            last = chunks[-1][0] if chunks else None
            if (
                small
                and last is not None
                and last.small
                and len(chunks[-1]) < CHUNK
                and last.verify_in_analysis == j.verify_in_analysis
            ):
                chunks[-1].append(j)
            else:
                chunks.append([j])
            j.small = small
        await asyncio.gather(
            *(
                self._analyse_chunk(c, deadline)
                if len(c) > 1
                else self._analyse_one(c[0], deadline)
                for c in chunks
            )
        )
        for j in jobs:
            if not isinstance(j.source, RawFile):  # a spooled one is removed with the spool
                j.source = None

    async def _spool_from_store(self, j: Job) -> RawFile:
        """Copy a big message from the store to its spool file a slice at a time, so this
        process never holds it whole (the analysis process reads the file)."""
        await asyncio.to_thread(j.spool.mkdir, parents=True, exist_ok=True)
        path = j.spool / RAW_NAME
        with path.open("wb") as f:  # opening a new local file does not wait on anything
            async with self.db.transaction() as s:
                async for piece in raw_slices(s, j.id):
                    await asyncio.to_thread(f.write, piece)
        return RawFile(str(path))

    def _timeout(self, deadline: float) -> float:
        """`analyse_timeout`, or what is left of the claim if that ends sooner."""
        left = deadline - asyncio.get_running_loop().time()
        return max(0.0, min(self.settings.gateway.analyse_timeout.total_seconds(), left))

    async def _analyse_one(self, j: Job, deadline: float) -> None:
        assert j.source is not None
        timeout = self._timeout(deadline)
        if timeout <= 0:
            j.error = AnalysisFailed(OUT_OF_CLAIM)
            return
        try:
            async with asyncio.timeout_at(deadline):  # waiting for a free process counts too
                [r] = await self.pools.analyse(
                    self.analyser, [(j.source, j.spool)], timeout, j.verify_in_analysis
                )
        except TimeoutError:
            j.error = AnalysisFailed(OUT_OF_CLAIM)
            return
        except JobTimeout as e:
            j.error = AnalysisFailed(f"analysis took longer than {e.timeout:g} s and was stopped")
            return
        except WorkerDied as e:
            j.error = AnalysisFailed(
                f"the analysis process died (exit code {e.exitcode}) on this message"
            )
            return
        except Exception as e:
            j.error = e
            return
        if isinstance(r, AnalysisFailed):
            j.error = r
        else:
            j.analysis = r

    async def _analyse_chunk(self, jobs: list[Job], deadline: float) -> None:
        work: list[tuple[bytes | RawFile, Path]] = [(j.source or b"", j.spool) for j in jobs]
        timeout = self._timeout(deadline)
        try:
            if timeout <= 0:
                raise TimeoutError
            async with asyncio.timeout_at(deadline):  # waiting for a free process counts too
                results = await self.pools.analyse(
                    self.analyser, work, timeout, jobs[0].verify_in_analysis
                )
        except TimeoutError:
            for j in jobs:
                j.error = AnalysisFailed(OUT_OF_CLAIM)
            return
        except (JobTimeout, WorkerDied):
            # The process died or was stopped on one of them: each alone (in parallel, as
            # a death fails only its own process) finds which; the others get through now.
            await asyncio.gather(*(self._analyse_one(j, deadline) for j in jobs))
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
        a = j.analysis
        assert a is not None
        if a.smime is None and not any(
            d.verify_path is not None or d.reports is not None for d in a.docs
        ):
            return  # nothing signed: nothing to collect
        try:
            async with asyncio.timeout_at(deadline):
                j.reports, j.smime = await self.pools.verify(a)
        except Exception as e:
            j.error = e
