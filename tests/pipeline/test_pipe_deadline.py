"""Analysis runs in worker processes that are stopped at the deadline (issue 16): a message
whose analysis never ends has its process killed, its attempt fails with a clear error, the
queue keeps flowing, and after the last attempt the message is set aside as `failed`."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import psutil

from config import Settings
from gateway.pipeline.analyse import ContentAnalysis
from gateway.pipeline.pools import Pools
from gateway.processes.pool import WorkerDied
from store.db import Database
from tests.pipeline.pipe_support import make_mail, running, stuck_analyser, submit, wait_for

RELAY = ["ai.do@example.org"]


def plain(n: int, marker: str = "") -> bytes:
    return make_mail(f"Thư số {n} {marker}", body=f"Nội dung {n} {marker}", to=RELAY[0])


async def _files(root: Path, prefix: str, count: int, within: float = 60.0) -> list[Path]:
    """Hang detector: wait until *count* files named *prefix*-PID exist under *root*."""
    for _ in range(int(within / 0.05)):
        found = await asyncio.to_thread(lambda: sorted(root.glob(f"{prefix}-*")))
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {count} {prefix} files in {root}")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_analysis_that_never_ends_is_stopped_and_the_message_set_aside(
    pipe_settings: Settings, db: Database
) -> None:
    pipe_settings.gateway.analyse_timeout = "3s"  # type: ignore[assignment]
    pipe_settings.gateway.parse_processes = 2
    spool = Path(pipe_settings.gateway.data_dir) / "spool"
    bad = await submit(db, plain(0, "SPIN-FOREVER"), RELAY)
    good = [await submit(db, plain(i), RELAY) for i in range(1, 5)]
    async with running(pipe_settings, db, analyser=stuck_analyser, workers=1) as p:
        msgs = await wait_for(db, good, {"processed", "failed"}, within=60)
        # its batch-mates went through on their first attempt, while it was still retried
        assert {(msgs[i].state, msgs[i].attempts) for i in good} == {("processed", 1)}
        msgs = await wait_for(db, [bad], {"processed", "failed"}, within=120)
        later = await submit(db, plain(9), RELAY)
        after = await wait_for(db, [later], {"processed", "failed"}, within=60)
        assert len(p.pools.analysis_pids()) == 2  # the killed processes were replaced
    assert (msgs[bad].state, msgs[bad].attempts) == ("failed", 3)
    assert msgs[bad].error == "analysis took longer than 3 s and was stopped"
    assert after[later].state == "processed"
    spinners = [int(f.name.split("-")[1]) for f in spool.glob("spinning-*")]
    # the chunk it came in, then three attempts alone: each time a process that was spinning
    assert len(spinners) >= 3
    assert all(_gone(pid) for pid in spinners)  # killed: none of them keeps the CPU


async def test_an_analysis_process_killed_from_outside_fails_only_its_message(
    pipe_settings: Settings, db: Database
) -> None:
    pipe_settings.gateway.parse_processes = 2
    spool = Path(pipe_settings.gateway.data_dir) / "spool"
    victim = await submit(db, plain(0, "WAIT-ONCE"), RELAY)
    async with running(pipe_settings, db, analyser=stuck_analyser, workers=2) as p:
        [mark] = await _files(spool, "waiting", 1)
        pid = int(mark.name.split("-")[1])
        assert pid in p.pools.analysis_pids()
        others = [await submit(db, plain(i), RELAY) for i in range(1, 4)]
        msgs = await wait_for(db, others, {"processed", "failed"}, within=60)
        assert {(msgs[i].state, msgs[i].attempts) for i in others} == {("processed", 1)}
        os.kill(pid, signal.SIGKILL)
        msgs = await wait_for(db, [victim], {"processed", "failed"}, within=60)
        assert pid not in p.pools.analysis_pids()
    # its first attempt failed (the process died), its second went through
    assert (msgs[victim].state, msgs[victim].attempts) == ("processed", 2)


async def test_pool_kill_fails_only_the_job_of_that_process(
    pipe_settings: Settings, tmp_path: Path
) -> None:
    pipe_settings.gateway.parse_processes = 2
    pools = Pools(pipe_settings, threads=1, warm_verifier=False)
    await pools.open()
    try:
        waiting = asyncio.create_task(
            pools.analyse(stuck_analyser, [(plain(0, "WAIT-ONCE"), tmp_path / "a")], 60)
        )
        [mark] = await _files(tmp_path, "waiting", 1)
        pid = int(mark.name.split("-")[1])
        [ok] = await pools.analyse(stuck_analyser, [(plain(1), tmp_path / "b")], 60)
        assert isinstance(ok, ContentAnalysis) and ok.subject.startswith("Thư số 1")
        os.kill(pid, signal.SIGKILL)
        try:
            await waiting
            raise AssertionError("the killed job did not fail")
        except WorkerDied as e:
            assert (e.pid, e.exitcode) == (pid, -signal.SIGKILL)
        [again] = await pools.analyse(stuck_analyser, [(plain(2), tmp_path / "c")], 60)
        assert isinstance(again, ContentAnalysis)
        assert pid not in pools.analysis_pids() and _gone(pid)
    finally:
        await pools.close()


async def test_analysis_processes_start_with_the_pipeline(
    pipe_settings: Settings, db: Database
) -> None:
    pipe_settings.gateway.parse_processes = 2
    async with running(pipe_settings, db) as p:
        for _ in range(1200):  # hang detector; no message was sent
            if len(p.pools.analysis_pids()) == 2:
                break
            await asyncio.sleep(0.05)
        pids = p.pools.analysis_pids()
        assert len(pids) == 2 and os.getpid() not in pids
    assert all(_gone(pid) for pid in pids)  # and stop with it
