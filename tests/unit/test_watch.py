"""Watch mode's bookkeeping without a broker: when a file is complete, and when to try it again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from newsflow.producer.watch import Sent, SentLedger, Settling, _files, revision_id


def test_a_file_is_ready_once_unchanged_for_the_quiet_period(tmp_path: Path):
    f = tmp_path / "a.txt"
    f.write_bytes(b"half")
    settling = Settling(quiet_seconds=4)
    assert not settling.ready(f, f.stat(), now=0)  # first seen
    assert settling.waiting
    f.write_bytes(b"half and the rest")
    assert not settling.ready(f, f.stat(), now=3)  # changed: the quiet period starts again
    assert not settling.ready(f, f.stat(), now=6)
    assert settling.ready(f, f.stat(), now=7.5)
    assert not settling.waiting


def _read_and_failed(f: Path, now: float) -> Settling:
    """A Settling that found `f` complete at `now` and could not read it."""
    f.write_bytes(b"text")
    settling = Settling(quiet_seconds=1)
    settling.ready(f, f.stat(), now=now - 1)
    assert settling.ready(f, f.stat(), now=now)
    settling.could_not_read(f, f.stat(), now)
    return settling


def test_a_file_that_could_not_be_read_waits_until_it_changes(tmp_path: Path):
    f = tmp_path / "locked.txt"
    settling = _read_and_failed(f, now=2)
    # Rescans of the same file find nothing new: it is not tried (nor counted) again for a while.
    for now in (3, 10, 30):
        assert not settling.ready(f, f.stat(), now=now)
    assert not settling.waiting
    # Its permissions fixed (chmod moves the ctime, not the mtime): tried again after a quiet period.
    before = f.stat()
    os.chmod(f, 0o600)
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = f.stat()
    assert after.st_mtime_ns == before.st_mtime_ns
    if after.st_ctime_ns == before.st_ctime_ns:  # a file system with coarse ctime: force a step
        f.write_bytes(b"text, again")
        after = f.stat()
    assert not settling.ready(f, after, now=31)
    assert settling.ready(f, after, now=32)


def test_an_unchanged_file_that_could_not_be_read_is_tried_again_after_growing_pauses(tmp_path: Path):
    # An I/O error on a network share passes without the file changing.
    f = tmp_path / "on-nfs.txt"
    settling = _read_and_failed(f, now=1)
    tries, now = [1.0], 1.0
    while now < 4 * 3600:
        now += 5  # a rescan every 5 s
        if settling.ready(f, f.stat(), now):
            tries.append(now)
            settling.could_not_read(f, f.stat(), now)
    pauses = [b - a for a, b in zip(tries, tries[1:], strict=False)]
    assert pauses[:3] == [30, 60, 120] and max(pauses) == Settling.RETRY_MAX_SECONDS
    assert len(tries) < 15  # not 2,880 (one a rescan)
    settling.sent(f)  # read at last: a later failure starts with the short pause again
    settling.could_not_read(f, f.stat(), now)
    assert settling.ready(f, f.stat(), now + 30)


def test_a_deleted_file_is_forgotten(tmp_path: Path):
    f = tmp_path / "gone.txt"
    f.write_bytes(b"text")
    settling = Settling(quiet_seconds=1)
    settling.ready(f, f.stat(), now=0)
    settling.keep_only(set())
    assert not settling.waiting
    settling.could_not_read(f, f.stat(), now=0)
    settling.keep_only(set())
    assert not settling.ready(f, f.stat(), now=5)  # seen anew: a quiet period first
    assert settling.ready(f, f.stat(), now=6)


def test_a_revision_id_depends_on_the_version_it_follows():
    assert revision_id("a" * 24, "b" * 24) == revision_id("a" * 24, "b" * 24)
    assert revision_id("a" * 24, "b" * 24) != revision_id("c" * 24, "b" * 24)
    assert len(revision_id("a" * 24, "b" * 24)) == 24


def test_the_ledger_keeps_the_latest_line_of_a_path_and_skips_bad_lines(tmp_path: Path):
    state = tmp_path / "state" / "sent.jsonl"
    ledger = SentLedger(state)
    ledger.record("in/a.txt", Sent(4, 1, ("id1",)))
    ledger.record("in/a.txt", Sent(5, 2, ("id2",), content_id="c2"))
    ledger.close()
    with state.open("ab") as fh:
        fh.write(b"{not json\n")
    again = SentLedger(state)
    assert again.entries == {"in/a.txt": Sent(5, 2, ("id2",), "c2")}
    again.close()


def test_a_sent_file_gone_from_the_folders_is_forgotten_after_the_grace_period(tmp_path: Path):
    state = tmp_path / "sent.jsonl"
    ledger = SentLedger(state)
    ledger.record("in/a.txt", Sent(4, 1, ("a",)))
    ledger.record("in/b.txt", Sent(4, 1, ("b",)))
    day = 24 * 3600.0
    assert ledger.forget_missing({"in/a.txt"}, now=0, after=day) == 0  # b missed: the clock starts
    assert ledger.forget_missing({"in/a.txt"}, now=day - 1, after=day) == 0
    assert ledger.forget_missing({"in/a.txt"}, now=day, after=day) == 1
    assert set(ledger.entries) == {"in/a.txt"}
    # A file missed once and found again starts from nothing the next time it is missed.
    ledger.forget_missing(set(), now=day, after=day)
    ledger.forget_missing({"in/a.txt"}, now=day + 1, after=day)
    assert ledger.forget_missing(set(), now=2 * day, after=day) == 0
    ledger.close()
    # Forgetting is kept across restarts: b is not known (put back, it is sent again).
    again = SentLedger(state)
    assert again.entries == {"in/a.txt": Sent(4, 1, ("a",))}
    again.close()


def test_the_state_file_is_rewritten_while_running_once_mostly_old_lines(tmp_path: Path):
    state = tmp_path / "sent.jsonl"
    ledger = SentLedger(state)
    for i in range(300):  # an inbox whose files are taken away once sent
        ledger.record(f"in/{i}.txt", Sent(4, 1, (f"id{i}",)))
        ledger.forget_missing(set(), now=i, after=0)
    ledger.record("in/kept.txt", Sent(4, 1, ("kept",)))
    ledger.close()
    assert len(state.read_bytes().splitlines()) < 110  # not 601 lines: bounded by what it holds
    again = SentLedger(state)
    assert again.entries == {"in/kept.txt": Sent(4, 1, ("kept",))}
    again.close()


def test_a_scan_says_which_folders_it_could_not_list(tmp_path: Path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_bytes(b"text")
    unlisted: list[str] = []
    found = [p.name for _, p in _files([tmp_path / "in", tmp_path / "unmounted"], unlisted)]
    # A folder gone (unmounted) is not a folder emptied: what was sent from it is not forgotten.
    assert found == ["a.txt"] and unlisted == [str(tmp_path / "unmounted")]


def test_a_file_skipped_as_too_large_is_read_again_under_a_higher_limit_only(tmp_path: Path):
    path = tmp_path / "huge.txt"
    path.write_bytes(b"x" * 100)
    st = path.stat()
    ledger = SentLedger(tmp_path / "state.jsonl")
    ledger.record("huge.txt", Sent(st.st_size, st.st_mtime_ns, (), too_large_at=50))
    ledger.close()
    again = SentLedger(tmp_path / "state.jsonl")  # as read after a restart
    again.close()
    known = again.entries["huge.txt"]
    assert known.holds(st, max_file_bytes=50) and known.holds(st, max_file_bytes=10)
    assert not known.holds(st, max_file_bytes=200)  # the operator raised the limit: try it again
    assert Sent(st.st_size, st.st_mtime_ns, ("a1",)).holds(st, max_file_bytes=200)


def test_a_watched_folder_that_disappears_is_said_once_and_its_return_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    from newsflow.producer.watch import _say_gone_or_back

    inbox = tmp_path / "inbox"
    gone: set[Path] = set()
    with caplog.at_level("INFO", logger="newsflow.producer"):
        _say_gone_or_back([inbox], gone)
        _say_gone_or_back([inbox], gone)  # a rescan later: not said again
        inbox.mkdir()
        _say_gone_or_back([inbox], gone)
    assert [r.getMessage().split(inbox.name, 1)[1] for r in caplog.records] == [
        " is gone; its files are watched for again when it is back",
        " is back",
    ]
