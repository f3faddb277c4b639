"""pyHanko's coroutines run on a private loop per thread (signing/_sync.py)."""

from __future__ import annotations

import asyncio

import pytest

from signing import _sync


class _Interrupted(BaseException):
    """What a deadline's signal raises in the middle of a verification."""


def test_an_interrupted_call_leaves_nothing_behind_for_the_next() -> None:
    late: list[str] = []

    async def half_done() -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        late.append("ran in the next call")

    async def interrupted() -> None:
        asyncio.get_running_loop().create_task(half_done())
        raise _Interrupted

    async def next_call() -> int:
        await asyncio.sleep(0)
        return 1

    with pytest.raises(_Interrupted):
        _sync.run_sync(interrupted())
    assert _sync.run_sync(next_call()) == 1
    assert late == []


def test_an_ordinary_error_keeps_the_loop() -> None:
    async def fails() -> None:
        raise ValueError("a path that does not validate")

    async def ok() -> int:
        return 2

    assert _sync.run_sync(ok()) == 2
    loop = _sync._local.loop
    with pytest.raises(ValueError):
        _sync.run_sync(fails())
    assert _sync.run_sync(ok()) == 2 and _sync._local.loop is loop
