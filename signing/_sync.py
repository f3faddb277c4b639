"""Run pyHanko's async API from synchronous code.

pyHanko's coroutines never really wait (nothing is fetched), so they are run to completion
on a private loop kept per thread (making a loop per call with `asyncio.run` cost 75 µs,
twice per signature); from inside a running event loop (an async test, an async CLI) the
coroutine goes to a helper thread, because a loop cannot be nested.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
_helper = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="signing")
_local = threading.local()


def _run_here(coro: Coroutine[Any, Any, T]) -> T:
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    except Exception:
        raise
    except BaseException:
        # interrupted from outside (a deadline's signal): a half-run task must not run on
        # in this thread's next call, so the next call gets a fresh loop
        _local.loop = None
        raise


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(coro)
    return _helper.submit(_run_here, coro).result()
