"""A soft deadline for one step of a worker process's job: SIGALRM raises `Overrun`.

The pool's hard deadline (gateway/processes/pool.py) kills the whole process, which costs
the whole job and a respawn. A step inside a bigger job (verifying one small signed part
during a message's analysis) gets this instead: pure-Python work such as pyHanko and
certvalidator is interrupted between bytecodes, and the job goes on with a verdict for that
step. Work stuck inside C code does not see the signal until it returns; the pool's hard
deadline still covers that. Only for a process's main thread (where signals are handled),
which is where the pool runs its handler.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Overrun(BaseException):  # noqa: N818
    """The step ran past its deadline. Not an `Exception`: the verifier turns every
    `Exception` into a report, and this must reach the code that set the deadline."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Overrun


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise `Overrun` in the body once *seconds* have passed (wall clock)."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("a soft deadline needs the process's main thread")
    if seconds <= 0:
        raise Overrun
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
