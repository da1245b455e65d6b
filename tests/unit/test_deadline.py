from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from newsflow.pipeline.deadline import DeadlineExceeded, deadline


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_a_block_over_its_deadline_is_interrupted():
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="0.05 s"), deadline(0.05) as armed:
        assert armed
        _spin(5)
    assert time.monotonic() - started < 1


def test_a_library_catching_every_exception_does_not_swallow_the_deadline():
    def tolerant_parser() -> str:
        try:
            _spin(5)
        except Exception:  # what trafilatura does around its extractors
            return "fallback"
        return "done"

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded), deadline(0.05):
        tolerant_parser()
    assert time.monotonic() - started < 1


def test_a_quick_block_is_untouched_and_the_timer_is_disarmed():
    with deadline(1.0):
        pass
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0 or signal.getitimer(signal.ITIMER_REAL)[0] > 1.0


def test_no_bound_off_the_main_thread():
    seen: list[bool] = []

    def work() -> None:
        with deadline(0.01) as armed:
            seen.append(armed)
            _spin(0.05)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == [False]


@contextmanager
def _outer_timer(seconds: float) -> Iterator[tuple[Callable[..., None], list[int]]]:
    """Arm a SIGALRM timer the way pytest-timeout does; yield its handler and its firings."""
    fired: list[int] = []

    def outer(*_: object) -> None:
        fired.append(1)

    previous = signal.signal(signal.SIGALRM, outer)
    old_left = signal.setitimer(signal.ITIMER_REAL, seconds)[0]
    try:
        yield outer, fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if old_left:
            signal.setitimer(signal.ITIMER_REAL, old_left)


def test_an_outer_timer_keeps_its_remaining_time():
    with _outer_timer(30.0) as (outer, fired):
        with deadline(0.5):
            _spin(0.05)
        left = signal.getitimer(signal.ITIMER_REAL)[0]
        assert 29.0 < left < 30.0
        assert signal.getsignal(signal.SIGALRM) is outer
        assert fired == []


def test_an_outer_timer_due_first_fires_its_own_handler_once():
    with _outer_timer(0.05) as (_, fired):
        with deadline(5.0):
            _spin(0.3)
        _spin(0.1)
        assert fired == [1]
        assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
