"""Snapshots of the dedup desk on local disk: a restarted writer loads the latest one and replays
only the state records written after it, instead of the whole state topic.

Replaying costs about 160 us per indexed article (JSON, then the index's inserts): minutes for a
million. Loading a snapshot costs a tenth of that. It is taken right after a committed
transaction that carried a marker record on the state topic (key `s/<snapshot id>`), and names
that record's offset and the topic's position after the transaction. A writer loading it checks
that the record at that offset is its marker, so a snapshot is never applied to another topic (a
recreated one, another cluster); a missing, unreadable, foreign or stale snapshot, or one taken
under other dedup options, means a full replay, as without snapshots.

The desk is pickled in a forked child, so the writer goes on deciding while it is written; the
child's copy-on-write pages can cost up to the desk's own memory meanwhile. The file is replaced
atomically and read only by the worker that wrote it (or a replica sharing its volume): pickle is
safe here because nothing else writes that directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import pickle
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsflow.pipeline import jsonio
from newsflow.pipeline.desk import STATE, DedupDesk, Output

log = logging.getLogger("newsflow.snapshot")

# Writing takes roughly twice as long as loading; the interval stretches so that snapshots take
# at most 1/SLOWDOWN of the wall clock even for a very large index.
SLOWDOWN = 20
# A snapshot older than this is not used: the topic's tombstones (delete.retention.ms, a day by
# default) may have been compacted away since, and replaying after it would miss deletions.
MAX_AGE_SECONDS = 12 * 3600
# A child writing a snapshot for longer than this is stuck (a million articles take under a
# minute; a fork of a threaded process can inherit a lock that no thread of the child releases):
# it is killed, so that snapshots go on being taken.
CHILD_SECONDS = 1800.0
# How often the event loop looks whether the child has ended: its end is counted (and its time
# taken, which sets the next interval) when it comes, not at the next transaction, which an idle
# stream may bring hours later.
LOOK_SECONDS = 0.5


def marker_key(snapshot_id: str) -> bytes:
    return f"s/{snapshot_id}".encode()


@dataclass(frozen=True)
class Loaded:
    desk_state: dict[str, Any]
    snapshot_id: str
    marker_offset: int
    position: int


class Snapshots:
    """When to take a snapshot, taking it (in a child process), and finding the latest."""

    def __init__(self, path: Path | None, every_seconds: float, topic: str) -> None:
        self.path = path if every_seconds > 0 else None
        self.every_seconds = every_seconds
        self.topic = topic
        self._last = time.monotonic()
        self._interval = every_seconds
        self._child: tuple[int, float] | None = None
        self._killed = False  # the child was killed as stuck, and is not reaped yet
        self._pending: str | None = None  # the marker in the transaction being written
        self._previous: str | None = None  # the last marker written, deleted with the next one
        # Told each snapshot's fate (metrics.SNAPSHOT_EVENTS): the worker counts them.
        self.on_event: Callable[[str], None] = lambda _event: None

    def markers(self) -> list[Output]:
        """Return the marker records to add to this transaction (none unless a snapshot is due)."""
        self._reap()
        if self.path is None or self._child is not None or self._pending is not None:
            return []
        if time.monotonic() - self._last < self._interval:
            return []
        self._pending = uuid.uuid4().hex
        outputs = [Output(STATE, marker_key(self._pending), jsonio.dumps({"snapshot": self._pending}))]
        if self._previous is not None:
            outputs.append(Output(STATE, marker_key(self._previous), None))
        return outputs

    def abandon(self) -> None:
        """The transaction with the marker was not committed: no snapshot this time."""
        self._pending = None

    def take(self, desk: DedupDesk, marker_offset: int, position: int) -> None:
        """After the commit of the marker's transaction: write the desk in a child process."""
        snapshot_id, self._pending = self._pending, None
        if snapshot_id is None or self.path is None:
            return
        self._previous = snapshot_id
        self._last = time.monotonic()
        record = {
            "id": snapshot_id,
            "topic": self.topic,
            "marker_offset": marker_offset,
            "position": position,
            "created": time.time(),
            "desk": desk.snapshot(),
        }
        try:
            pid = os.fork()
        except OSError:
            # Not in place: pickling a large desk on the event loop would outlast the consumer's
            # session. The next is due an interval later.
            log.warning("cannot fork to write a dedup snapshot; none this time", exc_info=True)
            self.on_event("write_failed")
            return
        if pid == 0:  # the child: write, and leave without running the parent's exit handlers
            # (A worker that stops meanwhile leaves the child to finish: the file is renamed into
            # place only once complete.) No collection: it would touch every page of the desk.
            gc.disable()
            code = 1
            try:
                _write(self.path, record)
                code = 0
            finally:
                os._exit(code)
        self._child = (pid, time.monotonic())
        self._look_after(pid)

    def _look_after(self, pid: int) -> None:
        """Reap the child from the running event loop every LOOK_SECONDS (without one, as in tools,
        at each `markers`)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return

        def look() -> None:
            if self._child is None or self._child[0] != pid:
                return  # reaped meanwhile by `markers`
            self._reap()
            if self._child is not None:
                loop.call_later(LOOK_SECONDS, look)

        loop.call_later(LOOK_SECONDS, look)

    def _reap(self) -> None:
        if self._child is None:
            return
        pid, started = self._child
        seconds = time.monotonic() - started
        code = 0
        with contextlib.suppress(ChildProcessError):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == 0:
                if seconds >= CHILD_SECONDS and not self._killed:
                    # Once; reaped at a later look, never waited for here: a child stuck in I/O
                    # dies only once the I/O returns.
                    log.warning("the dedup snapshot's writer has run %.0fs; killing it", seconds)
                    self._killed = True
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                return
            code = os.waitstatus_to_exitcode(status)
        # (At most half a snapshot's useful age: one taken after that pause can still be used.)
        self._interval = max(self.every_seconds, min(SLOWDOWN * seconds, MAX_AGE_SECONDS / 2))
        self._child, self._killed = None, False
        if code != 0:
            log.warning("writing the dedup snapshot to %s failed (exit %d)", self.path, code)
            self.on_event("write_failed")
            if self.path is not None:
                with contextlib.suppress(OSError):
                    _partial(self.path, pid).unlink()
            return
        log.info("dedup snapshot written to %s in %.1fs", self.path, seconds)
        self.on_event("written")

    def load(self) -> Loaded | None:
        """Return the latest snapshot of this topic, or None (with the reason logged) if there is none to use."""
        if self.path is None or not self.path.exists():
            return None
        # A million objects created at once: collections meanwhile would only walk them again.
        gc.disable()
        try:
            with self.path.open("rb") as fh:
                record = pickle.load(fh)  # our own file, in our own directory
        except Exception:  # noqa: BLE001 - any damage means a full replay
            log.warning("dedup snapshot %s unreadable; replaying the state topic", self.path, exc_info=True)
            self.on_event("not_used")
            return None
        finally:
            gc.enable()
        if record.get("topic") != self.topic:
            log.info("dedup snapshot %s is of topic %r; replaying", self.path, record.get("topic"))
            self.on_event("not_used")
            return None
        if time.time() - float(record.get("created", 0)) > MAX_AGE_SECONDS:
            log.info("dedup snapshot %s is older than %dh; replaying", self.path, MAX_AGE_SECONDS // 3600)
            self.on_event("not_used")
            return None
        self._previous = record["id"]
        return Loaded(record["desk"], record["id"], int(record["marker_offset"]), int(record["position"]))


def _partial(path: Path, pid: int) -> Path:
    """Where the child `pid` writes the snapshot before it renames it into place."""
    return path.with_name(path.name + f".{pid}.partial")


def _write(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial(path, os.getpid())
    with partial.open("wb") as fh:
        pickle.dump(record, fh, protocol=pickle.HIGHEST_PROTOCOL)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, path)
