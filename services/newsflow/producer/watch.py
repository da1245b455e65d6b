"""Watch mode: send each file in the input folders once, when it is complete, and remember it.

A file is sent once its size and modification time have stayed the same for the quiet period
(`NEWSFLOW_PRODUCER_QUIET_SECONDS`): a file still being written is not sent half-way. Writers that
can should write to a dot-file and rename it, which is picked up at once (dot-files are ignored).
Changes are noticed through inotify (watchfiles), with a full rescan every `watch_seconds` as well
(and alone where inotify is not available).

What was sent is recorded in a small append-only state file, after the broker acknowledged it, so a
restarted producer sends nothing again. A file whose content changed is a new version: it is sent
under the id its content has (as a one-shot run over the folder would send it) with the header
`revision-of` naming the id of the version before it; a version the file had before (put back as it
was) gets an id of its own, its first one being enriched already. A sent
file that is gone for sure is forgotten a while after it was sent (`SentLedger.forget_gone`), so
the state of an inbox emptied by its users stays the size of the inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import watchfiles

from newsflow.pipeline import jsonio
from newsflow.pipeline.records import H_REVISION_OF, RawArticle
from newsflow.producer.metrics import ProducerMetrics
from newsflow.producer.publish import Progress, Publisher, Tally, broker_ready
from newsflow.producer.settings import ProducerSettings, parse_outlet_map
from newsflow.producer.sources import (
    Item,
    Skipped,
    display_name,
    in_array,
    iter_file,
    kind_of,
    leads_nowhere,
    walk,
)
from newsflow.settings import KafkaSettings

log = logging.getLogger("newsflow.producer")

# How often sent files are looked for, to forget those gone (or at half NEWSFLOW_PRODUCER_FORGET_HOURS).
FORGET_CHECK_SECONDS = 600.0
# How many of a sent file's folders `folder_ids` keeps (the watched folder is usually 1-3 up).
MAX_FOLDER_IDS = 8
# The content ids a file's versions had that are remembered, to tell a version put back (`Sent.contents`).
MAX_CONTENTS = 16
# Skips that may not hold next time (permissions fixed, a file put back): such a file is not recorded.
TRANSIENT_SKIPS = frozenset({"unreadable", "vanished"})


@dataclass(frozen=True, slots=True)
class Sent:
    """A file as it was when sent: size and mtime (its signature) and the article ids it gave."""

    size: int
    mtime_ns: int
    article_ids: tuple[str, ...]
    # A revised file's content alone, whose id its article does not carry (`revision_id`).
    content_id: str | None = None
    # The size limit (NEWSFLOW_PRODUCER_MAX_FILE_BYTES) under which it, or records of it, were
    # skipped as too large: under a higher one they are read again.
    too_large_at: int | None = None
    # Which folders it was in, (st_dev, st_ino) from its own up to the watched folder, and when it
    # was sent (wall clock): what `is_gone` needs (entries of state files written before they were
    # kept are never forgotten).
    folders: tuple[tuple[int, int], ...] | None = None
    sent_at: float | None = None
    # The content ids of the file's versions sent, latest last (a revision sent under another id
    # than its content's, `content_id`, counts by its content's); empty in state files from before.
    contents: tuple[str, ...] = ()

    def versions(self) -> tuple[str, ...] | None:
        """The content ids of the file's versions sent, or None if they are not all known (a file
        revised before its state kept them: only its latest is)."""
        if self.contents:
            return self.contents
        return None if self.content_id is not None else self.article_ids[:1]

    def holds(self, st: os.stat_result, max_file_bytes: int) -> bool:
        """Whether the file as it is now (`st`) was dealt with in full under this size limit."""
        if (self.size, self.mtime_ns) != (st.st_size, st.st_mtime_ns):
            return False
        return self.too_large_at is None or self.too_large_at >= max_file_bytes


class SentLedger:
    """The state file: one JSON line per file sent, the latest line of a path wins; a line
    `{"path": ..., "forgotten": true}` drops a file that is gone (`forget_gone`). The file is
    rewritten with only the entries it holds once it has over twice as many lines (at start, and
    while running)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, Sent] = {}
        self._lines = 0
        self._gone_once: set[str] = set()  # found gone by the last look (`forget_gone`)
        if path.exists():
            for line in path.read_bytes().splitlines():
                try:
                    d = jsonio.loads(line)
                    if d.get("forgotten") is True:
                        self.entries.pop(d["path"], None)
                        self._lines += 1
                        continue
                    limit, folders, sent_at = d.get("too_large_at"), d.get("folders"), d.get("sent_at")
                    self.entries[d["path"]] = Sent(
                        int(d["size"]),
                        int(d["mtime_ns"]),
                        tuple(d["article_ids"]),
                        d.get("content_id"),
                        None if limit is None else int(limit),
                        None if folders is None else tuple((int(dev), int(ino)) for dev, ino in folders),
                        None if sent_at is None else float(sent_at),
                        tuple(str(c) for c in d.get("contents") or ()),
                    )
                    self._lines += 1
                except (ValueError, KeyError, TypeError):
                    log.warning("ignoring a bad line of %s", path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._rewrite_above = 2 * len(self.entries) + 100
        if self._lines > self._rewrite_above:
            self._rewrite_or_wait()
        self._file = path.open("ab")
        if self._file.tell() and not _ends_with_newline(path):
            self._file.write(b"\n")  # a line cut short by a crash: the next one starts on its own

    def _rewrite(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            for key, sent in self.entries.items():
                fh.write(self._line(key, sent))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:  # the rename itself survives a power loss
            os.fsync(folder)
        finally:
            os.close(folder)
        self._lines = len(self.entries)

    @staticmethod
    def _line(key: str, sent: Sent) -> bytes:
        line = {
            "path": key,
            "size": sent.size,
            "mtime_ns": sent.mtime_ns,
            "article_ids": list(sent.article_ids),
        }
        if sent.content_id is not None:
            line["content_id"] = sent.content_id
        if sent.too_large_at is not None:
            line["too_large_at"] = sent.too_large_at
        if sent.folders is not None:
            line["folders"] = [list(f) for f in sent.folders]
        if sent.sent_at is not None:
            line["sent_at"] = sent.sent_at
        if sent.contents:
            line["contents"] = list(sent.contents)
        return jsonio.dumps_line(line)

    def record(self, key: str, sent: Sent) -> None:
        self.entries[key] = sent
        self._append([self._line(key, sent)])

    def forget_gone(self, present: set[str], now: float, after: float) -> int:
        """Forget the files sent `after` seconds or more before `now` (wall clock) that are gone
        for sure (`is_gone`) at this look and at the one before, so that an inbox whose files are
        taken away once sent does not grow the state for ever; `present`: the keys of the files
        a scan just found (not looked at again). Return how many were forgotten. One put back
        later is sent again under its first id, with no `revision-of`."""
        gone = {
            key
            for key, sent in self.entries.items()
            if key not in present
            and sent.folders is not None
            and sent.sent_at is not None
            and now - sent.sent_at >= after
            and is_gone(key, sent.folders)
        }
        forgotten = sorted(gone & self._gone_once)  # a folder moved away and back is not gone
        self._gone_once = gone - self._gone_once
        for key in forgotten:
            del self.entries[key]
        if forgotten:
            self._append([jsonio.dumps_line({"path": key, "forgotten": True}) for key in forgotten])
        return len(forgotten)

    def _append(self, lines: list[bytes]) -> None:
        self._file.write(b"".join(lines))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._lines += len(lines)
        if self._lines > self._rewrite_above:
            self._file.close()
            try:
                self._rewrite_or_wait()
            finally:
                self._file = self.path.open("ab")

    def _rewrite_or_wait(self) -> None:
        """Rewrite the file; if that fails (no room for the copy: the lines appended are all
        there), try again only once it has twice the lines."""
        try:
            self._rewrite()
            self._rewrite_above = 2 * len(self.entries) + 100
        except OSError as exc:
            log.warning("could not rewrite the watch state file %s (tried again later): %s", self.path, exc)
            self.path.with_suffix(".tmp").unlink(missing_ok=True)
            self._rewrite_above = 2 * self._lines

    def close(self) -> None:
        self._file.close()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def folder_ids(path: Path, root: Path) -> tuple[tuple[int, int], ...]:
    """Return (st_dev, st_ino) of the folders a file is in, from its own up to `root` (at most
    MAX_FOLDER_IDS): what `is_gone` compares."""
    ids = []
    for folder in path.parents[:MAX_FOLDER_IDS]:
        st = os.stat(folder)
        ids.append((st.st_dev, st.st_ino))
        if folder == root:
            break
    return tuple(ids)


def _folders_of(path: Path, root: Path) -> tuple[tuple[int, int], ...] | None:
    try:
        return folder_ids(path.resolve(), root.resolve())
    except (OSError, RuntimeError):  # gone meanwhile: it is looked at again when it comes back
        return None


def is_gone(key: str, folders: tuple[tuple[int, int], ...]) -> bool:
    """Whether the file a state key names is gone for sure: not there, and the nearest of the
    folders it was in that is there now (its own, or the one a deleted folder was in) is the same
    folder (`folders`: as `folder_ids` gave them when it was sent). An unmounted file system or
    bind mount leaves another folder at its mount point, and a folder that cannot be read says
    nothing: their files may come back. A name that is not UTF-8 (escaped in its key) is never
    taken for gone."""
    if "\\" in key:
        return False
    path = Path(key)
    try:
        os.stat(path)
        return False
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        return False
    for folder, ident in zip(path.parents, folders, strict=False):
        try:
            st = os.stat(folder)
        except FileNotFoundError:
            continue
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == ident
    return False


def _files(dirs: list[Path]) -> Iterator[tuple[Path, Path | Skipped]]:
    """Yield each file below the folders, and each link that leads out of its folder: a drop
    folder others write to must not be a way to send any file this process may read."""
    for root in dirs:
        for found in walk(root, within=root.resolve()):
            if not isinstance(found, Skipped) or found.reason == "outside_folder":
                yield root, found


async def watch(
    dirs: list[Path],
    kafka: KafkaSettings,
    settings: ProducerSettings,
    metrics: ProducerMetrics,
    stop: asyncio.Event,
    outlet: str | None = None,
    force_polling: bool = False,
    show_progress: bool = True,
) -> Tally:
    """Send every complete new or changed file under `dirs` until `stop` is set (`show_progress`:
    a progress line every PROGRESS_LOG_SECONDS while the counts move, a bar on a terminal)."""
    try:  # before waiting for the broker: a state file that cannot be used is the user's to fix now
        if not settings.state_file.strip():  # Path("") is the current folder
            raise OSError(errno.EINVAL, "it is empty")
        ledger = SentLedger(Path(settings.state_file))
    except OSError as exc:
        raise OSError(
            f"cannot use the watch state file {settings.state_file!r} (NEWSFLOW_PRODUCER_STATE_FILE): "
            f"{exc.strerror or exc}"
        ) from exc
    try:
        if not await broker_ready(kafka, stop):
            ledger.close()
            return Tally()
    except BaseException:
        ledger.close()
        raise
    tally = Tally()
    progress = Progress(tally, enabled=show_progress)
    publisher = Publisher(kafka, settings, metrics, tally, progress)
    outlets = parse_outlet_map(settings.outlet_map)
    rescan = settings.watch_seconds if settings.watch_seconds > 0 else 5.0
    changed = asyncio.Event()
    settling = Settling(settings.quiet_seconds)
    await publisher.start()
    notifier = asyncio.ensure_future(_notify(dirs, changed, stop, force_polling))
    log.info(
        "watching %s (quiet period %.1fs, state in %s)",
        ", ".join(map(str, dirs)),
        settings.quiet_seconds,
        ledger.path,
    )
    forget_after, checked_gone = 3600 * settings.forget_hours, -math.inf
    try:
        gone: set[Path] = set()
        # Links that lead out of the watched folders or nowhere.
        links = _SkippedOnce(publisher)
        while not stop.is_set():
            now = time.monotonic()
            _say_gone_or_back(dirs, gone)
            present: set[Path] = set()
            present_keys: set[str] = set()
            for root, path in _files(dirs):
                if isinstance(path, Skipped):
                    links.skip(path)
                    continue
                present.add(path)
                try:
                    st = path.stat()
                    # Keyed by the file, not by how the folder was spelled ("in" or "/data/in") today.
                    key = display_name(path.resolve())
                except (OSError, RuntimeError) as exc:  # gone meanwhile, a link to nothing or to itself
                    settling.forget(path)
                    if path.is_symlink():
                        links.skip(leads_nowhere(display_name(path), exc))
                    continue
                present_keys.update((key, display_name(path)))
                # (State files written before kept the path as spelled.)
                known = ledger.entries.get(key) or ledger.entries.get(display_name(path))
                if known is not None and known.holds(st, settings.max_file_bytes):
                    continue
                if settling.ready(path, st, now):
                    read = await _send_file(
                        publisher,
                        ledger,
                        root,
                        path,
                        key,
                        st,
                        known,
                        settings,
                        outlet,
                        outlets,
                        retrying=settling.retrying(path, st),
                    )
                    if read:
                        settling.sent(path)
                    else:
                        settling.could_not_read(path, st, now)
            settling.keep_only(present)
            links.scanned()
            if forget_after > 0 and now - checked_gone >= min(FORGET_CHECK_SECONDS, forget_after / 2):
                checked_gone = now
                forgotten = ledger.forget_gone(present_keys, time.time(), forget_after)
                if forgotten:
                    metrics.forgotten.inc(forgotten)
                    log.info("forgot %d sent files that are gone (NEWSFLOW_PRODUCER_FORGET_HOURS)", forgotten)
            progress.tick()
            changed.clear()
            wait = min(rescan, settings.quiet_seconds / 2) if settling.waiting else rescan
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(changed, stop), timeout=wait)
    finally:
        notifier.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await notifier
        await publisher.stop()
        ledger.close()
    return tally


def _say_gone_or_back(dirs: list[Path], gone: set[Path]) -> None:
    """Warn once when a watched folder disappears (deleted, unmounted), and say when it is back."""
    for folder in dirs:
        if not folder.is_dir() and folder not in gone:
            gone.add(folder)
            log.warning("watched folder %s is gone; its files are watched for again when it is back", folder)
        elif folder.is_dir() and folder in gone:
            gone.discard(folder)
            log.info("watched folder %s is back", folder)


class _SkippedOnce:
    """Skips of things that stay as they are while they are there (a link that leads out of the
    watched folders, or nowhere): said and counted once, not at every rescan."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self._said: set[str] = set()
        self._seen: set[str] = set()  # in this scan

    def skip(self, skipped: Skipped) -> None:
        self._seen.add(skipped.path)
        if skipped.path not in self._said:
            self.publisher.skip(skipped)

    def scanned(self) -> None:
        """A scan ended: what it did not find again is said again if it comes back."""
        self._said, self._seen = self._seen, set()


class Settling:
    """Which files are complete: their size and mtime unchanged for the quiet period.

    A file that could not be read is tried again as soon as it changes, its permissions included
    (they move the inode's ctime), and otherwise after a pause that doubles from RETRY_SECONDS up
    to RETRY_MAX_SECONDS: an I/O error on a network share passes without the file changing, but a
    file that stays unreadable is not tried (and counted) again at every rescan.
    """

    RETRY_SECONDS = 30.0
    RETRY_MAX_SECONDS = 3600.0

    def __init__(self, quiet_seconds: float) -> None:
        self.quiet_seconds = quiet_seconds
        self._changing: dict[Path, tuple[int, int, float]] = {}  # path -> (size, mtime_ns, since)
        # path -> ((size, mtime_ns, ctime_ns), when to try again, the pause before that)
        self._unread: dict[Path, tuple[tuple[int, int, int], float, float]] = {}

    @property
    def waiting(self) -> bool:
        """Whether a file is waiting for its quiet period to end."""
        return bool(self._changing)

    def ready(self, path: Path, st: os.stat_result, now: float) -> bool:
        """Whether `path`, as `st` finds it at `now`, is to be sent."""
        unread = self._unread.get(path)
        if unread is not None and unread[0] == (st.st_size, st.st_mtime_ns, st.st_ctime_ns):
            return now >= unread[1]  # unchanged since: its pause decides (it was quiet already)
        seen = self._changing.get(path)
        if seen is None or seen[:2] != (st.st_size, st.st_mtime_ns):
            self._changing[path] = (st.st_size, st.st_mtime_ns, now)  # new or still changing
            return False
        if now - seen[2] < self.quiet_seconds:
            return False
        del self._changing[path]
        return True

    def could_not_read(self, path: Path, st: os.stat_result, now: float) -> None:
        """Leave `path` alone until it changes from `st`, or for a pause longer than the last one."""
        last = self._unread.get(path)
        pause = min(last[2] * 2, self.RETRY_MAX_SECONDS) if last else self.RETRY_SECONDS
        self._unread[path] = ((st.st_size, st.st_mtime_ns, st.st_ctime_ns), now + pause, pause)

    def retrying(self, path: Path, st: os.stat_result) -> bool:
        """Whether `path`, as `st` finds it, is being tried again unchanged after it could not be
        read (a new version that fails is said and counted again)."""
        unread = self._unread.get(path)
        return unread is not None and unread[0] == (st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def sent(self, path: Path) -> None:
        """`path` was read: a later failure starts with the shortest pause again."""
        self._unread.pop(path, None)

    def forget(self, path: Path) -> None:
        """Drop all that is known of `path` (it is seen anew, if ever again)."""
        self._changing.pop(path, None)
        self._unread.pop(path, None)

    def keep_only(self, present: set[Path]) -> None:
        """Forget files deleted or renamed (before they settled, or after a failed read)."""
        for gone in (set(self._changing) | set(self._unread)) - present:
            self.forget(gone)


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def _notify(dirs: list[Path], changed: asyncio.Event, stop: asyncio.Event, force_polling: bool) -> None:
    """Set `changed` whenever something under `dirs` changes (inotify, or watchfiles' polling)."""
    try:
        async for _ in watchfiles.awatch(*dirs, stop_event=stop, force_polling=force_polling or None):
            changed.set()
    except (OSError, RuntimeError) as exc:
        log.warning("file notifications unavailable (%s); rescanning on a timer only", exc)


def revision_id(previous: str, content: str) -> str:
    """Return the id of a file's new version: from the id of the version it follows and the id its
    content alone would have (stable, so a revision sent again after a crash keeps its id)."""
    return hashlib.sha256(f"{previous}\0{content}".encode()).hexdigest()[:24]


async def _send_file(
    publisher: Publisher,
    ledger: SentLedger,
    root: Path,
    path: Path,
    key: str,
    st: os.stat_result,
    before: Sent | None,
    settings: ProducerSettings,
    outlet: str | None,
    outlets: dict[str, str],
    retrying: bool = False,
) -> bool:
    """Send one complete file (or each article of an archive); record it once all are acknowledged.
    Return False if it could not be read now (see `Settling` for when it is tried again): skipped
    and counted at its first failure, not at every try (`retrying`)."""
    outcomes: list[asyncio.Future[bool]] = []
    ids: list[str] = []
    transient = too_large = False
    archive = kind_of(path.name) != "article"
    content_id: str | None = None
    items: Iterable[Item] = iter_file(root, path, outlet, settings.max_file_bytes, outlets, root.resolve())
    if not archive:  # one article, or a .json file's array of them (at most max_file_bytes)
        items = list(items)
        archive = any(map(in_array, items))
    for item in items:
        headers: list[tuple[str, bytes]] = []
        if isinstance(item, Skipped) and item.reason in TRANSIENT_SKIPS:
            transient = True  # try again at the next change or rescan
            if retrying:
                continue  # said and counted at the first try
        too_large |= isinstance(item, Skipped) and item.reason == "too_large"
        if isinstance(item, RawArticle):
            if before is not None and item.article_id in (*before.article_ids, before.content_id):
                continue  # touched, not changed: this article was sent already
            if before is not None and not archive and len(before.article_ids) == 1:
                # A revision goes under its content's id, as a one-shot run would send the file
                # (once, whichever sends it first); but a version the file had before (A, B, A
                # again) gets an id naming the version it follows too: A's was enriched already,
                # and would not be again.
                content_id = item.article_id
                versions = before.versions()
                if versions is None or content_id in versions:  # (None: it may be one)
                    item = replace(item, article_id=revision_id(before.article_ids[0], content_id))
                headers.append((H_REVISION_OF, before.article_ids[0].encode()))
            ids.append(item.article_id)
        outcome = await publisher.publish(item, headers)
        if outcome is not None:
            outcomes.append(outcome)
    results: list[Any] = list(await asyncio.gather(*outcomes)) if outcomes else []
    if transient:
        log.info("%s could not be read now; it will be tried again when it changes, or after a pause", key)
        return False
    if all(results):
        if ids:  # what went out, file by file (a watch's progress lines only count)
            revision = f", a revision of {before.article_ids[0]}" if content_id and before else ""
            log.info("sent %s: %s%s", key, ids[0] if len(ids) == 1 else f"{len(ids)} articles", revision)
        # A file is one article, its latest version; an archive is all the articles it ever held
        # (one appended to is not sent again in full).
        earlier = before.article_ids if before and (archive or not ids) else ()
        if content_id is not None and before is not None:  # a new version (of a known history)
            versions = before.versions()
            # (Once each, latest last: a file switching between two versions keeps the others.)
            kept = () if versions is None else tuple(v for v in versions if v != content_id)
            contents = () if versions is None else (*kept, content_id)[-MAX_CONTENTS:]
        elif before is None and not archive and len(ids) == 1:  # a first version
            contents = (ids[0],)
        else:
            contents = before.contents if before else ()
        ledger.record(
            key,
            Sent(
                st.st_size,
                st.st_mtime_ns,
                tuple(dict.fromkeys([*earlier, *ids])),
                content_id if ids or before is None else before.content_id,
                settings.max_file_bytes if too_large else None,
                _folders_of(path, root),
                time.time(),
                contents,
            ),
        )
    else:
        log.warning(
            "%s is not recorded as sent: %d of %d sends failed", key, results.count(False), len(results)
        )
    return True
