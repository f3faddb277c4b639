"""Run pyHanko's async API from synchronous code.

pyHanko's coroutines never really wait (nothing is fetched), so they are run to completion
on a private loop; from inside a running event loop (an async test, an async CLI) the
coroutine goes to a helper thread, because a loop cannot be nested.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
_helper = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="signing")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    return _helper.submit(asyncio.run, coro).result()
