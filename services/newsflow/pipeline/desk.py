"""The single writer's stage: one decision per article, and exactly what to write for it.

Every article reaches the desk as one message on the features topic: either its cleaned record
with its dedup features, or the dead letter an earlier stage made of it. The desk decides the
story (`StoryIndex`), and returns the records to write: the enriched record or the dead letter,
the story's new state, and its own state changes (a compacted topic, written in the same Kafka
transaction as the outputs, from which a restarted writer rebuilds the desk).

The desk also learns every outlet's boilerplate (`BoilerplateModel`) from the line fingerprints
the clean stage sends with each article: one learner that sees all of an outlet's articles once,
whichever worker cleaned them. `learned()` returns the outlets' new states for a compacted topic
that every worker follows and cleans with, so an outlet's articles can go to any worker.

Because the desk remembers every article it has written out, a message delivered again (a
worker restarted before its input offsets were committed, a clean stage that ran a batch twice)
yields nothing: each article comes out once, enriched or dead-lettered, never both. An input an
operator replays carries a higher replay count and is decided again if it was dead-lettered.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from newsflow.pipeline import cloudevents, jsonio
from newsflow.pipeline.dedup import DedupOptions, StoryHeader, StoryIndex, StoryShape
from newsflow.pipeline.features import StoryFeatures
from newsflow.pipeline.records import (
    H_OUTLET,
    H_REPLAY_COUNT,
    Origin,
    Rejection,
    StoryAssignment,
    article_fields,
    assignment_dict,
    assignment_from_dict,
    dead_letter_record,
    enriched_record,
    latest,
    message_article_id,
    story_record,
    utc_now_iso,
)
from newsflow.pipeline.textclean import BoilerplateModel

if TYPE_CHECKING:  # the desk itself loads no model
    from newsflow.pipeline.enrich import Enriched

log = logging.getLogger("newsflow.desk")

# Logical destinations; the worker maps them to topic names.
ENRICHED, STORIES, DEAD_LETTER, STATE, BOILERPLATE = (
    "enriched",
    "stories",
    "dead_letter",
    "state",
    "boilerplate",
)

KIND_ARTICLE, KIND_REJECTED = "article", "rejected"
# A page with no text left after cleaning reports no event: it is enriched without a story rather
# than opening a story of its own.
NO_STORY_STATUSES = frozenset({"empty"})
# A short text (under NEWSFLOW_EXTRACT_MIN_ARTICLE_WORDS: an error page, a caption, a one-line
# flash) joins the story it reads like, or copies an article, but never opens a story: its few
# words are no evidence of an event, and the stories it opened were mostly pages of no event.
JOIN_ONLY_STATUSES = frozenset({"not_article"})
# See `DedupDesk.learned`.
LEARNING_DOCS, LEARNED_WRITE_EVERY = 64, 32
# The layout of `DedupDesk.snapshot`: a snapshot of another version is not loaded (the writer
# replays the state topic instead).
SNAPSHOT_VERSION = 10


@dataclass(frozen=True, slots=True)
class Output:
    """One Kafka record to write: a logical destination, key and value (None: a tombstone)."""

    destination: str
    key: bytes
    value: bytes | None
    headers: cloudevents.Headers = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """What the desk made of one message: an outcome for the metrics and the records to write."""

    outcome: str  # new_story | joined_story | copy | no_story | dead_letter | duplicate
    outputs: tuple[Output, ...] = ()
    record: dict[str, Any] | None = None
    reason: str | None = None  # the dead letter's reason, when the outcome is dead_letter
    stage: str | None = None
    merged: int = 0  # stories this decision merged into another (`StoryIndex.merge`)
    split: int = 0  # stories this decision split from another (`StoryIndex.split`)
    # When the article reached the raw topic (the broker's LogAppendTime, seconds), for the
    # end-to-end latency: not `received_at`, which is a WARC record's crawl time.
    produced: float | None = None


def article_message(
    enriched: Enriched, replay_count: int, origin: Origin | None, produced: float | None = None
) -> bytes:
    """Return the features-topic message for a cleaned article with its features (`produced`: the
    raw message's Kafka timestamp, in seconds)."""
    if enriched.features is None:
        raise ValueError(f"{enriched.article.article_id} has no dedup features")
    return jsonio.dumps(
        {
            "kind": KIND_ARTICLE,
            "article_id": enriched.article.article_id,
            "replay_count": replay_count,
            "origin": origin.as_dict() if origin else None,
            "produced": produced,
            "fields": article_fields(enriched.article, enriched.entities),
            "features": enriched.features.as_dict(),
            "outlet": enriched.article.source.outlet,
            "lines": list(enriched.lines),
        }
    )


def rejected_message(article_id: str, dead_letter: dict[str, Any], received: float) -> bytes:
    """Return the features-topic message that carries an earlier stage's dead letter to the desk."""
    return jsonio.dumps(
        {
            "kind": KIND_REJECTED,
            "article_id": article_id,
            "replay_count": dead_letter.get("replay_count", 0),
            "received": received,
            "dead_letter": dead_letter,
        }
    )


def _extraction_status(fields: Any) -> str | None:
    """Check that a message's record fields hold what the writer reads of them, before anything
    is indexed (a message that fails later would stop the writer, not cost one dead letter), and
    return the extraction's status."""
    if not isinstance(fields, dict) or "article_id" not in fields:
        raise TypeError("fields is not an object with an article_id")
    source = fields.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("outlet"), str):
        raise TypeError("fields.source.outlet is not a string")
    extraction = fields.get("extraction", {})
    if not isinstance(extraction, dict):
        raise TypeError("fields.extraction is not an object")
    status = extraction.get("status")
    return status if isinstance(status, str) else None


def _enriched_output(record: dict[str, Any]) -> Output:
    article_id = str(record["article_id"])
    headers = cloudevents.headers(
        cloudevents.ARTICLE_ENRICHED,
        article_id,
        str(record["source"]["outlet"]),
        str(record["processed_at"]),
        "enriched-article",
        subject=record["story_id"],
    )
    return Output(ENRICHED, article_id.encode(), jsonio.dumps(record), headers)


def _story_output(record: dict[str, Any]) -> Output:
    story_id = str(record["story_id"])
    closed = record["status"] == "closed"
    headers = cloudevents.headers(
        cloudevents.STORY_CLOSED if closed else cloudevents.STORY_UPDATED,
        f"{story_id}/{record['version']}",
        cloudevents.PIPELINE_SOURCE,
        str(record["updated_at"]),
        "story",
        subject=story_id,
    )
    return Output(STORIES, story_id.encode(), jsonio.dumps(record), headers)


def _story_deleted(story_id: str) -> Output:
    """The tombstone of a story closed `closed_retention_hours` ago, with its event's headers."""
    headers = cloudevents.headers(
        cloudevents.STORY_DELETED,
        f"{story_id}/deleted",
        cloudevents.PIPELINE_SOURCE,
        utc_now_iso(),
        None,
        story_id,
    )
    return Output(STORIES, story_id.encode(), None, headers)


# What a dead letter forwarded by the clean stage must name (its record's headers read them).
_DEAD_LETTER_NAMES = ("stage", "reason", "failed_at")


def _dead_letter_output(article_id: str, dead: dict[str, Any]) -> Output:
    headers = cloudevents.headers(
        cloudevents.ARTICLE_DEAD_LETTERED,
        f"{article_id}/{dead.get('replay_count', 0)}",
        str((dead.get("headers") or {}).get(H_OUTLET) or cloudevents.PIPELINE_SOURCE),
        str(dead["failed_at"]),
        "dead-letter",
        subject=f"{dead['stage']}/{dead['reason']}",
    )
    return Output(DEAD_LETTER, article_id.encode(), jsonio.dumps(dead), headers)


def load_boilerplate(model: BoilerplateModel, key: bytes, value: bytes | None) -> None:
    """Load one record of the boilerplate topic (outlet -> `BoilerplateModel.outlet_state`)."""
    outlet = key.decode(errors="replace")
    if value is None:
        model.outlets.pop(outlet, None)
        return
    try:
        model.load_outlet_state(outlet, jsonio.loads(value))
    except ValueError as exc:
        # E.g. written by another version: learn this outlet afresh rather than fail.
        log.warning("ignoring learned boilerplate: %s", exc)


def _article_key(article_id: str) -> bytes:
    return f"a/{article_id}".encode()


def _unstoried_key(article_id: str) -> bytes:
    return f"n/{article_id}".encode()


def _closed_key(story_id: str) -> bytes:
    return f"c/{story_id}".encode()


def _merged_key(story_id: str) -> bytes:
    return f"m/{story_id}".encode()


def _split_key(story_id: str) -> bytes:
    return f"p/{story_id}".encode()


def _shape_key(story_id: str) -> bytes:
    return f"v/{story_id}".encode()


def _aged_key(story_id: str) -> bytes:
    return f"t/{story_id}".encode()


def _rejected_key(article_id: str, replay_count: int) -> bytes:
    return f"r/{replay_count}/{article_id}".encode()


@dataclass
class DedupDesk:
    """The story index plus the memory of what has been written out (see module docstring)."""

    options: DedupOptions = field(default_factory=DedupOptions)
    # The most input bytes one of the desk's own dead letters carries (see records.max_dead_letter_payload).
    max_payload_bytes: int = 1 << 20
    index: StoryIndex = field(init=False)
    # (article id, replay count) of dead-lettered inputs -> when they were received.
    rejected: dict[tuple[str, int], float] = field(default_factory=dict)
    _rejected_by_age: list[tuple[float, str, int]] = field(default_factory=list)
    # Articles written out without a story (NO_STORY_STATUSES, JOIN_ONLY_STATUSES) -> when received.
    unstoried: dict[str, float] = field(default_factory=dict)
    _unstoried_by_age: list[tuple[float, str]] = field(default_factory=list)
    # Closed stories whose record is still on the stories topic -> when they closed (index clock).
    closed: dict[str, float] = field(default_factory=dict)
    _closed_by_age: list[tuple[float, str]] = field(default_factory=list)
    boilerplate: BoilerplateModel = field(default_factory=BoilerplateModel)
    # Outlet -> its articles learned from since its state was last written (see `learned`).
    _unwritten: dict[str, int] = field(default_factory=dict)
    # Set when a decision raised part-way: the desk may hold what it did before (the article, a
    # merge, a split, the article remembered) with nothing written for it. The writer then
    # rebuilds the desk from the state topic before it decides another message.
    damaged: bool = False

    def __post_init__(self) -> None:
        self.index = StoryIndex(self.options)
        self.index.retired = self.closed

    # -- state ----------------------------------------------------------------------------------

    @classmethod
    def from_state(
        cls,
        entries: Iterable[tuple[bytes, bytes | None]],
        options: DedupOptions | None = None,
        max_payload_bytes: int = 1 << 20,
        boilerplate: Iterable[tuple[bytes, bytes | None]] = (),
    ) -> DedupDesk:
        """Return the desk rebuilt from its state topic's and boilerplate topic's records, read in order."""
        desk = cls(options or DedupOptions(), max_payload_bytes)
        for key, value in latest(entries).items():
            try:
                desk._restore(key, jsonio.loads(value))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("skipping unreadable desk state %r: %s", key, exc)
        for key, value in latest(boilerplate).items():
            load_boilerplate(desk.boilerplate, key, value)
        desk._check_waiting()
        return desk

    def _check_waiting(self) -> None:
        waiting = self.index.waiting()
        if waiting:
            log.warning(
                "%d articles left a story in a split the state topic no longer holds; "
                "they stay indexed (copies of them are found) in no story's record: %s",
                len(waiting),
                ", ".join(waiting[:10]),
            )

    def snapshot(self) -> dict[str, Any]:
        """Return the desk's state as one picklable object (the boilerplate has its own topic).

        Loading it (`from_snapshot`) costs tens of microseconds per article where replaying the
        state topic costs hundreds: it is what makes a writer with a million articles indexed
        restart in seconds rather than minutes.
        """
        self.index.lsh.compact()
        return {
            "version": SNAPSHOT_VERSION,
            "options": asdict(self.options),
            "index": self.index,
            "rejected": (self.rejected, self._rejected_by_age),
            "unstoried": (self.unstoried, self._unstoried_by_age),
            "closed": (self.closed, self._closed_by_age),
        }

    @classmethod
    def from_snapshot(
        cls,
        snapshot: Mapping[str, Any],
        options: DedupOptions | None = None,
        max_payload_bytes: int = 1 << 20,
        boilerplate: Iterable[tuple[bytes, bytes | None]] = (),
    ) -> DedupDesk:
        """Return the desk a `snapshot` holds; ValueError if it was taken under other options.

        Records written after the snapshot are then applied with `replay`.
        """
        options = options or DedupOptions()
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {snapshot.get('version')!r}, not {SNAPSHOT_VERSION}")
        if snapshot.get("options") != asdict(options):
            raise ValueError("snapshot taken under other dedup options")
        desk = cls(options, max_payload_bytes)
        desk.index = snapshot["index"]
        desk.index.options = options
        desk.rejected, desk._rejected_by_age = snapshot["rejected"]
        desk.unstoried, desk._unstoried_by_age = snapshot["unstoried"]
        desk.closed, desk._closed_by_age = snapshot["closed"]
        desk.index.retired = desk.closed
        for key, value in latest(boilerplate).items():
            load_boilerplate(desk.boilerplate, key, value)
        return desk

    def replay(self, entries: Iterable[tuple[bytes, bytes | None]]) -> int:
        """Apply state records written after a snapshot, in order; return how many were applied."""
        applied = 0
        closed: list[str] = []  # a closed story's members, forgotten together
        for key, value in entries:
            kind, _, rest = key.decode(errors="replace").partition("/")
            if closed and not (kind == "a" and value is None):
                self.index.forget(closed)
                closed = []
            if value is None:  # what the window closed after the snapshot
                if kind == "a":
                    closed.append(rest)
                elif kind == "r":
                    count, _, article_id = rest.partition("/")
                    self.rejected.pop((article_id, int(count)), None)
                elif kind == "n":
                    self.unstoried.pop(rest, None)
                elif kind == "c":
                    self.closed.pop(rest, None)
                # "m", "p", "v", "t": a merged story's survivor, or a split story, or one whose
                # old members had aged out, left the window, and its members with it.
            else:
                if kind == "a" and rest in self.index.articles:
                    # Sent again after it left the index (closed, or aged out), where compaction has
                    # since removed the tombstone between: it leaves where it was first.
                    self.index.forget([rest])
                try:
                    self._restore(key, jsonio.loads(value))
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("skipping unreadable desk state %r: %s", key, exc)
                    continue
            applied += 1
        self.index.forget(closed)
        self._check_waiting()
        return applied

    def learned(self) -> list[Output]:
        """Return the boilerplate records to write: outlets' new states and forgotten outlets' tombstones.

        An outlet's state (up to about 80 KB) is written with every batch while the outlet is
        new, then once per LEARNED_WRITE_EVERY of its articles: a rebuilt desk may miss the counts
        of those few, never the boilerplate it has long known.
        """
        outputs = []
        for outlet in self.boilerplate.forgotten:
            self._unwritten.pop(outlet, None)
            outputs.append(Output(BOILERPLATE, outlet.encode(), None))
        self.boilerplate.forgotten.clear()
        for outlet, count in sorted(self._unwritten.items()):
            state = self.boilerplate.outlet_state(outlet)
            if state is None:
                del self._unwritten[outlet]
            elif state["docs"] <= LEARNING_DOCS or count >= LEARNED_WRITE_EVERY:
                outputs.append(Output(BOILERPLATE, outlet.encode(), jsonio.dumps(state)))
                del self._unwritten[outlet]
        return outputs

    def _restore(self, key: bytes, entry: dict[str, Any]) -> None:
        kind, _, rest = key.decode().partition("/")
        if kind == "a":
            self.index.restore(
                StoryFeatures.from_dict(entry["features"]), assignment_from_dict(entry["assignment"])
            )
        elif kind == "r":
            count, _, article_id = rest.partition("/")
            self._remember_rejected(article_id, int(count), float(entry["received"]))
        elif kind == "n":
            self._remember_unstoried(rest, float(entry["received"]))
        elif kind == "c":
            self._remember_closed(rest, float(entry["closed"]))
        elif kind == "m":
            into = str(entry["into"])
            if self.index.merge(rest, into) is None:
                self.index.merged_away(rest, into, [str(m) for m in entry.get("merged_from", ())])
            if "aged_out" in entry and into in self.index.stories:
                self.index.stories[into].aged_out = int(entry["aged_out"])
            self.index.merged.clear()  # its records were written when it happened
        elif kind == "p":
            shape = StoryShape.from_dict(entry["shape"])
            self.index.split(str(entry["from"]), rest, [str(m) for m in entry["members"]], shape)
            self.index.splits.clear()
        elif kind == "t":
            self.index.reinstate(
                rest,
                [str(m) for m in entry["members"]],
                StoryShape.from_dict(entry["shape"]),
                StoryHeader.from_dict(entry["header"]),
            )
        elif kind == "v":
            shape = StoryShape.from_dict(entry["shape"])
            members = [str(m) for m in entry["members"]]
            merged_from = entry.get("merged_from")
            self.index.reshape(
                rest,
                shape,
                int(entry["revisions"]),
                [str(s) for s in entry["split_into"]],
                members,
                None if merged_from is None else [str(m) for m in merged_from],
                int(entry["aged_out"]) if "aged_out" in entry else None,
                [str(m) for m in entry["opening"]] if "opening" in entry else None,
            )

    def _remember_unstoried(self, article_id: str, received: float) -> None:
        self.unstoried[article_id] = received
        heapq.heappush(self._unstoried_by_age, (received, article_id))

    def _remember_closed(self, story_id: str, closed: float) -> None:
        self.closed[story_id] = closed
        heapq.heappush(self._closed_by_age, (closed, story_id))

    def _remember_rejected(self, article_id: str, replay_count: int, received: float) -> None:
        self.rejected[(article_id, replay_count)] = received
        heapq.heappush(self._rejected_by_age, (received, article_id, replay_count))

    def _expired(self) -> list[Output]:
        """Return the records of everything the window has left behind since the last call: tombstones
        of the desk's state, each closed story's final record, and the tombstones of the stories
        closed longer than `closed_retention_hours` ago."""
        tombstones = [Output(STATE, _article_key(a), None) for a in self.index.expired_articles]
        self.index.expired_articles.clear()
        tombstones += [
            Output(STATE, key(m), None)
            for s in self.index.expired_stories
            for m in s.merged_from
            # A story merged in may have split, or let members age out; an id open again (reused
            # after its retention) keeps those records, its own now, but never has a merge record.
            for key in (_merged_key, _split_key, _shape_key, _aged_key)
            if key is _merged_key or m not in self.index.stories
        ]
        tombstones += [
            Output(STATE, key(s.story_id), None)
            for s in self.index.expired_stories
            for key, needed in (
                (_split_key, s.split_from),
                (_shape_key, s.split_into),
                (_aged_key, s.aged_out),
            )
            if needed
        ]
        # A story's last record says it is closed: it will not change again.
        closed_at = utc_now_iso()
        tombstones += [
            _story_output(story_record(s, closed_at=closed_at)) for s in self.index.expired_stories
        ]
        # Remembered while the topic holds its record (for good with a retention of 0), so that
        # no new story takes its id meanwhile (`StoryIndex.new_story_id`).
        tombstones += [self._closing(s.story_id) for s in self.index.expired_stories]
        if self.options.closed_retention_hours:
            retention = self.index.watermark - self.options.closed_retention_hours * 3600
            while self._closed_by_age and self._closed_by_age[0][0] < retention:
                _, story_id = heapq.heappop(self._closed_by_age)
                if self.closed.pop(story_id, None) is not None:
                    tombstones.append(_story_deleted(story_id))
                    tombstones.append(Output(STATE, _closed_key(story_id), None))
        self.index.expired_stories.clear()
        horizon = self.index.watermark - self.options.window_hours * 3600
        while self._rejected_by_age and self._rejected_by_age[0][0] < horizon:
            _, article_id, count = heapq.heappop(self._rejected_by_age)
            if self.rejected.pop((article_id, count), None) is not None:
                tombstones.append(Output(STATE, _rejected_key(article_id, count), None))
        while self._unstoried_by_age and self._unstoried_by_age[0][0] < horizon:
            _, article_id = heapq.heappop(self._unstoried_by_age)
            if self.unstoried.pop(article_id, None) is not None:
                tombstones.append(Output(STATE, _unstoried_key(article_id), None))
        return tombstones

    def _closing(self, story_id: str) -> Output:
        """Remember a closed story until its record is deleted (`_expired`); return the state record
        that remembers it across restarts."""
        self._remember_closed(story_id, self.index.watermark)
        return Output(STATE, _closed_key(story_id), jsonio.dumps({"closed": self.index.watermark}))

    def _aged_out(self) -> tuple[list[Output], list[Output]]:
        """Return the state records of the stories whose old members the last decision let go
        (`StoryIndex.age_out`): the members' tombstones, to write after the decision's merges and
        before its splits, as it let them go; and each story as it is at the decision's end
        (members, shape, header: `StoryIndex.reinstate`), written after the split records so that
        it states the story after them: a rebuild may lack those (a split-off story closed since)."""
        tombstones, stories = [], []
        for story_id, leaving in self.index.aged_out_stories:
            tombstones += [Output(STATE, _article_key(a), None) for a in leaving]
            story = self.index.stories.get(story_id)
            if story is not None:
                entry = {
                    "members": story.members,
                    "shape": StoryShape.of(story, self.index.story_keys_of(story)).as_dict(),
                    "header": StoryHeader.of(story).as_dict(),
                }
                stories.append(Output(STATE, _aged_key(story_id), jsonio.dumps(entry)))
        self.index.aged_out_stories.clear()
        return tombstones, stories

    def _merges(self) -> list[Output]:
        """Return the records of the merges the last decision made: each merged story's final
        record (closed, `merged_into` its survivor) and the state record that repeats the merge
        on a rebuilt desk (written after the decision's own article record, so it is replayed
        after it, as it happened)."""
        outputs = []
        closed_at = utc_now_iso()
        for story, into, aged_out in self.index.merged:
            outputs.append(_story_output(story_record(story, closed_at=closed_at, merged_into=into)))
            # With the survivor's count of members aged out then: the absorbed story's own may not
            # be rebuilt (its members left the survivor since, and closed).
            entry = {
                "into": into,
                "merged_from": list(story.merged_from),
                "aged_out": aged_out,
                "at": closed_at,
            }
            outputs.append(Output(STATE, _merged_key(story.story_id), jsonio.dumps(entry)))
            outputs.append(self._closing(story.story_id))
        self.index.merged.clear()
        return outputs

    def _splits(self, written: str) -> list[Output]:
        """Return the records of the splits the last decision made: both stories' new records (but
        the one `written` already, the decision's own story), and the state records a rebuilt
        desk repeats them from (after the decision's own article record and its merges, as it
        happened): the split, with the new story's members and shape (kept while the new story
        is open), and the shape and lineage of the story it left (kept while that one is open;
        the latest split of it holds all)."""
        outputs = []
        at = utc_now_iso()
        for new, kept in self.index.splits:
            for story in (kept, new):
                if story is not None and story.story_id != written:
                    outputs.append(_story_output(story_record(story)))
            shape = StoryShape.of(new, self.index.story_keys_of(new)).as_dict()
            entry = {"from": new.split_from, "members": new.members, "shape": shape, "at": at}
            outputs.append(Output(STATE, _split_key(new.story_id), jsonio.dumps(entry)))
            if kept is not None:
                left = {
                    "shape": StoryShape.of(kept, self.index.story_keys_of(kept)).as_dict(),
                    "revisions": kept.revisions,
                    "split_into": list(kept.split_into),
                    "merged_from": list(kept.merged_from),
                    "members": kept.members,
                    "aged_out": kept.aged_out,
                    "opening": list(kept.opening),
                    "at": at,
                }
                outputs.append(Output(STATE, _shape_key(kept.story_id), jsonio.dumps(left)))
        self.index.splits.clear()
        return outputs

    def written(self, article_id: str, replay_count: int) -> bool:
        """Return whether this article (at this replay) has already come out."""
        return (
            article_id in self.index.articles
            or article_id in self.unstoried
            or (article_id, replay_count) in self.rejected
        )

    # -- decisions ------------------------------------------------------------------------------

    def decide(self, message: bytes, origin: Origin, key: bytes | None = None) -> Decision:
        """Return the decision for one features-topic message and the records that carry it out."""
        replay_count = 0
        try:
            body = jsonio.loads(message)
            kind = body["kind"]
            article_id = str(body["article_id"])
            replay_count = int(body.get("replay_count") or 0)
            if kind == KIND_REJECTED:
                return self._reject_forwarded(article_id, replay_count, body)
            if kind != KIND_ARTICLE:
                raise ValueError(f"unknown message kind {kind!r}")
            features = StoryFeatures.from_dict(body["features"])
            status = _extraction_status(body["fields"])
            if not isinstance(body.get("lines", []), list):
                raise TypeError("lines is not a list")
        except Exception as exc:  # noqa: BLE001 - any malformed message, whatever it breaks
            # Not one of ours (or from an incompatible version): keep its bytes, under its key or
            # else where it was read, so that a redelivery is recognised as well.
            rejection = Rejection.from_exception("dedup", exc, "bad_features")
            name = message_article_id(key, {}, origin.as_id())
            return self._dead_letter(name, replay_count, rejection, message, key, origin)
        if self.written(article_id, replay_count):
            return Decision("duplicate")
        try:
            return self._sent_at(self._decided(features, status, body), body)
        except Exception as exc:  # noqa: BLE001 - a bug must cost one article, not the stream
            log.exception("dedup of %s failed; the desk is rebuilt before the next message", article_id)
            # What the desk did before it raised is not written: none of it goes out (a merge or
            # split queued here would otherwise leave with the next article's records), and the
            # article is dead-lettered even if the index took it in. The writer rebuilds the desk
            # from what was written before it decides another message (`damaged`).
            self.damaged = True
            for effects in (
                self.index.merged,
                self.index.splits,
                self.index.aged_out_stories,
                self.index.expired_articles,  # the rebuilt desk closes them at its next article
                self.index.expired_stories,
            ):
                effects.clear()
            rejection = Rejection.from_exception("dedup", exc)
            return self._dead_letter(article_id, replay_count, rejection, message, key, origin, check=False)

    def _decided(self, features: StoryFeatures, status: str | None, body: dict[str, Any]) -> Decision:
        """The decision for a readable article message not decided before, with its records."""
        if status in NO_STORY_STATUSES:
            return self._unstoried_out(features, body)
        if status in JOIN_ONLY_STATUSES:
            joined = self.index.join(features)
            if joined is None:
                return self._unstoried_out(features, body)
            return self._article_out(features, joined, body)
        return self._article_out(features, self.index.assign(features), body)

    @staticmethod
    def _sent_at(decision: Decision, body: dict[str, Any]) -> Decision:
        produced = body.get("produced")
        if isinstance(produced, int | float) and not isinstance(produced, bool) and math.isfinite(produced):
            return replace(decision, produced=float(produced))
        return decision

    def _unstoried_out(self, features: StoryFeatures, body: dict[str, Any]) -> Decision:
        received = features.received or features.timestamp
        self._remember_unstoried(features.article_id, received)
        out = enriched_record(body["fields"], None)
        outputs = (
            _enriched_output(out),
            Output(STATE, _unstoried_key(features.article_id), jsonio.dumps({"received": received})),
            *self._expired(),
        )
        self._learn(features, body)  # last: an article whose records failed teaches nothing
        return Decision("no_story", outputs, out)

    def _learn(self, features: StoryFeatures, body: dict[str, Any]) -> None:
        outlet, lines = str(body.get("outlet") or features.outlet), body.get("lines")
        if lines:  # none: nothing to learn from (an empty page)
            self.boilerplate.observe_fingerprints(outlet, map(str, lines))
            self._unwritten[outlet] = self._unwritten.get(outlet, 0) + 1

    def _article_out(
        self, features: StoryFeatures, assignment: StoryAssignment, body: dict[str, Any]
    ) -> Decision:
        out = enriched_record(body["fields"], assignment)
        story = self.index.stories[assignment.story_id]
        merged, split = len(self.index.merged), len(self.index.splits)
        # With merges or splits, the state holds the story the article joined, and the merges and
        # splits after it: a rebuilt writer then folds and splits the stories as this one did.
        joined = self.index.joined if (merged or split) and self.index.joined else assignment
        state = {"features": features.as_dict(), "assignment": assignment_dict(joined)}
        aged_tombstones, aged_stories = self._aged_out()
        outputs = (
            _enriched_output(out),
            _story_output(story_record(story)),
            Output(STATE, _article_key(features.article_id), jsonio.dumps(state)),
            *self._merges(),
            *aged_tombstones,
            *self._splits(story.story_id),
            *aged_stories,
            *self._expired(),
        )
        self._learn(features, body)  # last: an article whose records failed teaches nothing
        outcome = (
            "copy" if assignment.duplicate_of else "new_story" if assignment.is_new_story else "joined_story"
        )
        return Decision(outcome, outputs, out, merged=merged, split=split)

    def _reject_forwarded(self, article_id: str, replay_count: int, body: dict[str, Any]) -> Decision:
        dead = body["dead_letter"]
        # What its record and headers are made of, checked before the desk remembers anything.
        if (
            not isinstance(dead, dict)
            or not all(isinstance(dead.get(k), str) for k in _DEAD_LETTER_NAMES)
            or not isinstance(dead.get("headers") or {}, dict)
        ):
            raise TypeError(
                f"dead_letter is not an object with strings {', '.join(_DEAD_LETTER_NAMES)} and headers an object"
            )
        if self.written(article_id, replay_count):
            return Decision("duplicate")
        received = float(body.get("received") or self._clock())
        return self._rejected_out(article_id, replay_count, received, dead)

    def _clock(self) -> float:
        """When an input with no time of its own was received: the desk's clock, or before its
        first article (a clock of 0) the wall clock, so that the first article does not expire
        what is remembered of it (and a redelivery is recognised)."""
        return self.index.watermark or time.time()

    def _dead_letter(
        self,
        article_id: str,
        replay_count: int,
        rejection: Rejection,
        message: bytes,
        key: bytes | None,
        origin: Origin,
        check: bool = True,
    ) -> Decision:
        if check and self.written(article_id, replay_count):
            return Decision("duplicate")
        # The desk's input is the features message; the article's own bytes stay at the clean
        # stage's input (the record's origin), which `newsflow-deadletters replay` fetches.
        dead = dead_letter_record(
            rejection,
            message,
            key,
            {H_REPLAY_COUNT: str(replay_count)},
            origin=origin,
            max_payload_bytes=self.max_payload_bytes,
        )
        return self._rejected_out(article_id, replay_count, self._clock(), dead)

    def _rejected_out(
        self, article_id: str, replay_count: int, received: float, dead: dict[str, Any]
    ) -> Decision:
        letter = _dead_letter_output(article_id, dead)  # made before anything is remembered
        self._remember_rejected(article_id, replay_count, received)
        outputs = (
            letter,
            Output(STATE, _rejected_key(article_id, replay_count), jsonio.dumps({"received": received})),
            *self._expired(),
        )
        return Decision(
            "dead_letter", outputs, dead, reason=str(dead.get("reason")), stage=str(dead.get("stage"))
        )
