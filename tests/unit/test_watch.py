"""Watch mode's bookkeeping without a broker: when a file is complete, and when to try it again."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from newsflow.producer.settings import ProducerSettings
from newsflow.producer.watch import (
    MAX_CONTENTS,
    Sent,
    SentLedger,
    Settling,
    _send_file,
    folder_ids,
    is_gone,
    revision_id,
)


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


def test_the_versions_a_file_had_are_kept_across_restarts_and_known_from_older_state_files(tmp_path: Path):
    state = tmp_path / "state.jsonl"
    ledger = SentLedger(state)
    ledger.record("wire/a.txt", Sent(10, 1, ("c" * 24,), "c" * 24, contents=("a" * 24, "b" * 24, "c" * 24)))
    ledger.close()
    again = SentLedger(state)
    again.close()
    assert again.entries["wire/a.txt"].versions() == ("a" * 24, "b" * 24, "c" * 24)
    # A line written before versions were kept: a file sent once knows its one version; one revised
    # since does not know them all (any content may be one it had: its revisions keep chained ids).
    assert Sent(10, 1, ("a" * 24,)).versions() == ("a" * 24,)
    assert Sent(10, 1, ("r" * 24,), "c" * 24).versions() is None


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


def sent_now(path: Path, sent_at: float) -> Sent:
    st = path.stat()
    return Sent(
        st.st_size, st.st_mtime_ns, (path.name,), folders=folder_ids(path, path.parent), sent_at=sent_at
    )


def test_a_sent_file_that_is_gone_is_forgotten_once_sent_long_enough_ago(tmp_path: Path):
    inbox, day = tmp_path / "in", 24 * 3600.0
    (inbox / "2026-12-01").mkdir(parents=True)
    files = {name: inbox / name for name in ("kept.txt", "young.txt", "taken.txt", "2026-12-01/a.txt")}
    for f in files.values():
        f.write_bytes(b"text")
    ledger = SentLedger(tmp_path / "sent.jsonl")
    for name, f in files.items():
        st = f.stat()
        ids = folder_ids(f, inbox)
        ledger.record(
            str(f),
            Sent(st.st_size, st.st_mtime_ns, (name,), folders=ids, sent_at=day if name == "young.txt" else 0),
        )
    ledger.record("in/legacy.txt", Sent(4, 1, ("legacy",)))  # a line of an older state file
    files["young.txt"].unlink()
    files["taken.txt"].unlink()
    shutil.rmtree(inbox / "2026-12-01")  # a day's folder taken away whole
    # Gone at two looks in a row: forgotten at the second (a folder moved away and back is not).
    assert ledger.forget_gone(set(), now=day + 1, after=day) == 0
    assert ledger.forget_gone(set(), now=day + 2, after=day) == 2  # taken, and the folder's a.txt
    assert set(ledger.entries) == {str(files["kept.txt"]), str(files["young.txt"]), "in/legacy.txt"}
    ledger.close()
    again = SentLedger(tmp_path / "sent.jsonl")  # forgotten for good, and the times kept
    assert set(again.entries) == {str(files["kept.txt"]), str(files["young.txt"]), "in/legacy.txt"}
    again.forget_gone(set(), now=2 * day, after=day)
    young = str(files["young.txt"])
    # Gone, then back (present at a scan), then gone again: the two looks start again.
    assert again.forget_gone({young}, now=2 * day, after=day) == 0
    assert again.forget_gone(set(), now=2 * day, after=day) == 0
    assert again.forget_gone(set(), now=2 * day, after=day) == 1  # young is old enough now
    again.close()


def test_a_state_file_that_cannot_be_rewritten_is_used_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    state = tmp_path / "sent.jsonl"
    state.write_bytes(
        b"".join(
            b'{"path": "in/a.txt", "size": 4, "mtime_ns": %d, "article_ids": ["a"]}\n' % i for i in range(300)
        )
    )

    tries = []

    def no_room(self: SentLedger) -> None:
        tries.append(self._lines)
        self.path.with_suffix(".tmp").write_bytes(b"part of a copy")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SentLedger, "_rewrite", no_room)
    ledger = SentLedger(state)  # starts all the same, without the half-written copy
    assert ledger.entries["in/a.txt"].mtime_ns == 299 and not state.with_suffix(".tmp").exists()
    ledger.record("in/b.txt", Sent(4, 1, ("b",)))
    assert tries == [300]  # not tried again at every line: once it has twice the lines
    ledger.close()


def test_a_file_whose_folder_is_not_the_one_it_was_in_is_not_gone(tmp_path: Path):
    inbox = tmp_path / "in"
    (inbox / "feed" / "day").mkdir(parents=True)
    f = inbox / "feed" / "day" / "a.txt"
    f.write_bytes(b"text")
    ids = folder_ids(f, inbox)
    assert len(ids) == 3 and not is_gone(str(f), ids)  # there
    f.unlink()
    assert is_gone(str(f), ids)  # deleted
    shutil.rmtree(inbox / "feed" / "day")
    assert is_gone(str(f), ids)  # its folder deleted: the one above it is the same
    # inbox/feed was a mount (a share, a bind mount), now unmounted: its mount point, an empty
    # folder on the file system below, is another folder than the one the file was in.
    (inbox / "mount-point").mkdir()
    shutil.rmtree(inbox / "feed")
    (inbox / "mount-point").rename(inbox / "feed")
    assert not is_gone(str(f), ids)
    assert not is_gone(str(tmp_path / "a\\xff.txt"), ids)  # not UTF-8: unknown


def test_a_state_line_cut_short_by_a_crash_does_not_take_the_next_one_with_it(tmp_path: Path):
    state = tmp_path / "sent.jsonl"
    ledger = SentLedger(state)
    ledger.record("in/a.txt", Sent(4, 1, ("a",)))
    ledger.close()
    with state.open("ab") as fh:
        fh.write(b'{"path": "in/b.txt", "si')  # the crash
    again = SentLedger(state)
    again.record("in/c.txt", Sent(4, 1, ("c",)))
    again.close()
    last = SentLedger(state)
    assert set(last.entries) == {"in/a.txt", "in/c.txt"}
    last.close()


def test_the_state_file_is_rewritten_while_running_once_mostly_old_lines(tmp_path: Path):
    state = tmp_path / "sent.jsonl"
    ledger = SentLedger(state)
    for i in range(300):  # an inbox whose files are taken away once sent
        f = tmp_path / f"{i}.txt"
        f.write_bytes(b"text")
        ledger.record(str(f), sent_now(f, sent_at=0))
        f.unlink()
        ledger.forget_gone(set(), now=1, after=0)
        ledger.forget_gone(set(), now=2, after=0)
    kept = tmp_path / "kept.txt"
    kept.write_bytes(b"text")
    ledger.record(str(kept), sent_now(kept, sent_at=0))
    ledger.close()
    assert len(state.read_bytes().splitlines()) < 110  # not 601 lines: bounded by what it holds
    again = SentLedger(state)
    assert list(again.entries) == [str(kept)]
    again.close()


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


class _Publisher:
    """Takes what `_send_file` sends, acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, bytes]]] = []

    async def publish(self, item: Any, headers: Any = ()) -> asyncio.Future[bool] | None:
        from newsflow.pipeline.records import RawArticle

        if not isinstance(item, RawArticle):
            return None
        self.sent.append((item.article_id, dict(headers)))
        done = asyncio.get_running_loop().create_future()
        done.set_result(True)
        return done


def _send_one(ledger: SentLedger, root: Path, path: Path, key: str) -> list[tuple[str, dict[str, bytes]]]:
    """Send a file as the watch does, against what the ledger says was sent of it; return what went."""
    from newsflow.producer.watch import _send_file

    publisher = _Publisher()
    before = ledger.entries.get(key)
    asyncio.run(
        _send_file(publisher, ledger, root, path, key, path.stat(), before, ProducerSettings(), None, {})  # type: ignore[arg-type]
    )
    return publisher.sent


def test_a_revised_file_goes_under_its_contents_id_and_one_put_back_under_an_id_of_its_own(tmp_path: Path):
    from newsflow.producer.sources import iter_file

    (tmp_path / "wire").mkdir()
    path = tmp_path / "wire" / "a.txt"

    def send(text: str, ledger: SentLedger) -> tuple[str, dict[str, bytes], str]:
        path.write_text(text)
        (one_shot,) = iter_file(tmp_path, path)  # what a run over the folder without --watch sends
        ((sent, headers),) = _send_one(ledger, tmp_path, path, "wire/a.txt")
        return sent, headers, one_shot.article_id  # type: ignore[union-attr]

    ledger = SentLedger(tmp_path / "state.jsonl")
    a, _, a_content = send("Version A of the report.", ledger)
    b, b_headers, b_content = send("Version B of the report.", ledger)
    assert a == a_content and b == b_content and b_headers == {"revision-of": a.encode()}
    back, back_headers, _ = send("Version A of the report.", ledger)
    assert back not in (a, b) and back_headers == {"revision-of": b.encode()}  # A's id is enriched already
    c, _, c_content = send("Version C of the report.", ledger)
    assert c == c_content
    for _ in range(2 * MAX_CONTENTS):  # switched between two versions: A is still known
        send("Version B of the report.", ledger)
        send("Version C of the report.", ledger)
    assert ledger.entries["wire/a.txt"].versions() == (a_content, b_content, c_content)
    ledger.close()
    # A state line from before versions were kept, of a file revised since: its history is not
    # known, so a content it may have had gets an id of its own, as then.
    old = SentLedger(tmp_path / "old.jsonl")
    old.record("wire/a.txt", Sent(1, 1, (b,), b_content))
    again, _, again_content = send("Version A of the report.", old)
    assert again != again_content
    old.close()


def test_a_json_array_file_that_grows_sends_only_its_new_envelopes_and_remembers_them_all(tmp_path: Path):
    """A .json file of an array of envelopes is watched as an archive is: one appended to sends
    the new envelopes alone, none as a revision of another, and the ledger keeps every id."""
    import json

    (tmp_path / "wire").mkdir()
    path = tmp_path / "wire" / "batch.json"
    envelopes = [{"url": f"https://arr.example/{n}", "text": f"Report {n}."} for n in range(3)]
    ledger = SentLedger(tmp_path / "state.jsonl")

    def send(count: int) -> list[tuple[str, dict[str, bytes]]]:
        path.write_text(json.dumps(envelopes[:count]))
        return _send_one(ledger, tmp_path, path, "batch.json")

    first = send(2)
    assert len(first) == 2 and all(headers == {} for _, headers in first)
    grown = send(3)
    assert len(grown) == 1 and grown[0][1] == {}  # the new envelope, not a revision of the file
    assert set(ledger.entries["batch.json"].article_ids) == {i for i, _ in first + grown}
    ledger.close()


def test_only_an_unchanged_file_that_could_not_be_read_is_a_retry(tmp_path: Path):
    path = tmp_path / "a.txt.gz"
    path.write_bytes(b"not gzip")
    settling = Settling(0.0)
    settling.could_not_read(path, path.stat(), 0.0)
    assert settling.retrying(path, path.stat())
    path.write_bytes(b"another version, not gzip either")
    assert not settling.retrying(path, path.stat())


def test_a_file_that_stays_unreadable_is_skipped_and_counted_at_its_first_try_only(tmp_path: Path):
    # A .gz that is not gzip, retried after growing pauses: the count said 5 unreadable for 3 files.
    bad = tmp_path / "fake.txt.gz"
    bad.write_bytes(b"plain text, not gzip")
    said: list[Any] = []

    class _Publisher:
        async def publish(self, item: Any, _headers: Any = ()) -> None:
            said.append(item)

    ledger = SentLedger(tmp_path / "state.jsonl")

    async def attempt(retrying: bool) -> bool:
        return await _send_file(
            _Publisher(),  # type: ignore[arg-type]
            ledger,
            tmp_path,
            bad,
            str(bad),
            bad.stat(),
            None,
            ProducerSettings(),
            None,
            {},
            retrying=retrying,
        )

    try:
        assert asyncio.run(attempt(False)) is False and asyncio.run(attempt(True)) is False
    finally:
        ledger.close()
    assert [(s.reason, s.path) for s in said] == [("unreadable", said[0].path)]
