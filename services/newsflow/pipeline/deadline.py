"""A wall-clock bound for CPU-bound work that cannot be cancelled from outside (HTML parsing).

`deadline(seconds)` arms a SIGALRM timer (ITIMER_REAL) around a block and raises `DeadlineExceeded`
inside it when the time is up. Python runs signal handlers between bytecodes, so a parse stuck in
trafilatura's Python code is interrupted; one long lxml C call is interrupted when it returns.

Signals reach the main thread only, which is where the worker's event loop runs its agents. On any
other thread the block runs unbounded (size limits still bound it) and `deadline` says so by
yielding False. A timer armed outside (pytest-timeout, an outer deadline) is kept: the sooner of
the two fires, and the outer one is re-armed with its remaining time afterwards.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class DeadlineExceeded(BaseException):  # noqa: N818 - reads as what happened
    """The block ran longer than its deadline.

    A BaseException, like KeyboardInterrupt: it arrives between any two bytecodes, and the
    libraries it interrupts catch `Exception` broadly (trafilatura falls back to other
    extractors), which would swallow it and leave the rest of the parse unbounded.
    """


def _can_arm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def deadline(seconds: float | None) -> Iterator[bool]:
    """Raise DeadlineExceeded in the block after `seconds` (no bound for None or <= 0).

    Yields whether the bound is armed (False off the main thread or without a bound).
    """
    if not seconds or seconds <= 0 or not _can_arm():
        yield False
        return
    started = time.monotonic()
    ours_at = started + seconds
    outer_handler: Any = signal.getsignal(signal.SIGALRM)
    outer_left, _ = signal.getitimer(signal.ITIMER_REAL)
    outer_at = started + outer_left if outer_left > 0 else None

    outer_fired = False

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        nonlocal outer_fired
        if outer_at is not None and outer_at <= ours_at:
            # The outer timer was due first: hand its alarm to its own handler.
            outer_fired = True
            if callable(outer_handler):
                outer_handler(signum, frame)
            return
        # (Raised when Python code runs again: after a long C call, later than the limit.)
        raise DeadlineExceeded(f"over the {seconds:g} s limit ({time.monotonic() - started:.1f} s)")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer_left) if outer_left > 0 else seconds)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, outer_handler)
        if outer_at is not None and not outer_fired:
            # Re-arm the outer timer with what is left of it (at least a moment, so it still fires).
            signal.setitimer(signal.ITIMER_REAL, max(outer_at - time.monotonic(), 1e-3))
