"""Snapshots of the dedup desk are an optimisation of restarts: a failure to take one never stops
or stalls the writer, and a stuck writer of one does not stop the next from being taken."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from newsflow.pipeline.desk import DedupDesk
from newsflow.worker import snapshot as snapshot_module
from newsflow.worker.snapshot import CHILD_SECONDS, Snapshots


def _due(path: Path) -> Snapshots:
    snapshots = Snapshots(path, 1.0, "state")
    snapshots._last -= 10  # due
    snapshots.events = []  # type: ignore[attr-defined]
    snapshots.on_event = snapshots.events.append  # type: ignore[attr-defined]
    return snapshots


def test_without_a_fork_no_snapshot_is_written_on_the_writers_thread(tmp_path, monkeypatch):
    def no_fork() -> int:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(snapshot_module.os, "fork", no_fork)
    snapshots = _due(tmp_path / "desk.snapshot")
    assert snapshots.markers()
    snapshots.take(DedupDesk(), 5, 6)
    assert not (tmp_path / "desk.snapshot").exists()
    assert snapshots.markers() == []  # the next is due an interval later
    assert snapshots.events == ["write_failed"]  # type: ignore[attr-defined]


def test_a_snapshot_is_written_by_a_child_and_loaded(tmp_path):
    snapshots = _due(tmp_path / "desk.snapshot")
    assert snapshots.markers()
    snapshots.take(DedupDesk(), 5, 6)
    deadline = time.monotonic() + 30
    while snapshots._child is not None and time.monotonic() < deadline:
        time.sleep(0.05)
        snapshots._reap()
    loaded = snapshots.load()
    assert loaded is not None and (loaded.marker_offset, loaded.position) == (5, 6)
    assert snapshots.events == ["written"]  # type: ignore[attr-defined]  # (loaded: the writer's to say)
    # One there but unusable (another topic's, unreadable) is counted as such; none at all (a
    # first start) is not.
    other = Snapshots(tmp_path / "desk.snapshot", 1.0, "another-state-topic")
    other.on_event = snapshots.events.append  # type: ignore[attr-defined]
    assert other.load() is None
    (tmp_path / "desk.snapshot").write_bytes(b"not a pickle")
    assert snapshots.load() is None
    none = Snapshots(tmp_path / "none.snapshot", 1.0, "state")
    none.on_event = snapshots.events.append  # type: ignore[attr-defined]
    assert none.load() is None
    assert snapshots.events == ["written", "not_used", "not_used"]  # type: ignore[attr-defined]


def test_a_snapshot_is_counted_and_timed_when_its_child_ends_not_at_the_next_transaction(tmp_path):
    # An idle stream brings no transaction for hours: the end is seen from the event loop, and the
    # idle time is not taken for the time the write took (which sets the next interval).
    snapshots = _due(tmp_path / "desk.snapshot")

    async def run() -> None:
        assert snapshots.markers()
        snapshots.take(DedupDesk(), 5, 6)
        deadline = time.monotonic() + 30
        while not snapshots.events and time.monotonic() < deadline:  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
        await asyncio.sleep(3)  # idle

    asyncio.run(run())
    assert snapshots.events == ["written"] and snapshots._child is None  # type: ignore[attr-defined]
    # The child took well under a second here: 20 times that, not 20 times the 3 s idle after it.
    assert snapshots._interval < snapshot_module.SLOWDOWN * 3


@pytest.mark.parametrize("overdue", [False, True])
def test_a_stuck_snapshot_writer_is_killed_once_overdue_and_reaped_without_waiting(tmp_path, overdue):
    snapshots = _due(tmp_path / "desk.snapshot")
    child = subprocess.Popen(["sleep", "60"])
    partial = tmp_path / f"desk.snapshot.{child.pid}.partial"
    partial.write_bytes(b"half a desk")
    try:
        started = time.monotonic() - (CHILD_SECONDS + 1 if overdue else 1)
        snapshots._child = (child.pid, started)
        assert snapshots.markers() == [] and snapshots._child is not None  # killed, not waited for
        deadline = time.monotonic() + 10
        while overdue and snapshots._child is not None and time.monotonic() < deadline:
            time.sleep(0.05)
            markers = snapshots.markers()
        if overdue:
            # Reaped at a later look; its half-written file gone; the next one after a longer pause.
            assert snapshots._child is None and markers == [] and not partial.exists()
            assert snapshots._interval >= CHILD_SECONDS
            assert snapshots.events == ["write_failed"]  # type: ignore[attr-defined]
        else:
            assert child.poll() is None and partial.exists()
    finally:
        child.kill()
        child.wait()


def test_a_writer_that_will_not_die_is_killed_and_warned_of_once(tmp_path, monkeypatch, caplog):
    kills: list[int] = []
    monkeypatch.setattr(snapshot_module.os, "kill", lambda pid, _sig: kills.append(pid))
    snapshots = _due(tmp_path / "desk.snapshot")
    child = subprocess.Popen(["sleep", "60"])  # stuck in I/O: a kill does not end it yet
    try:
        snapshots._child = (child.pid, time.monotonic() - CHILD_SECONDS - 1)
        for _ in range(3):  # a look at every transaction
            assert snapshots.markers() == []
        assert kills == [child.pid]
        assert caplog.text.count("killing it") == 1
    finally:
        monkeypatch.undo()  # os.kill back, to end the child
        child.kill()
        child.wait()
