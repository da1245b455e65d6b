"""Story dedup: near-duplicate copies (MinHash LSH) and same-story grouping (online clustering).

`StoryIndex` is the single-writer state: it assigns each article's `duplicate_of` and `story_id`
from its features (`features.article_features`, computed per article in parallel), in the style
of Miranda et al. 2018: candidate stories from an inverted index over names and salient words, a
similarity against each story (`story_similarity`: the embedding, quotes, names and time), a
threshold, else a new story; stories that turn out to be one event merge, and a story whose
members fall into two events splits.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import sys
from array import array
from collections import Counter
from collections.abc import Collection, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from newsflow.pipeline.embed import DIM as EMBEDDING_DIM
from newsflow.pipeline.embed import dequantize
from newsflow.pipeline.entities import strip_possessive
from newsflow.pipeline.features import (
    MAX_QUOTE_SHINGLES,
    MAX_TERMS,
    NUM_PERM,
    StoryFeatures,
    estimated_containment,
    idf,
    words,
)
from newsflow.pipeline.lsh import BandIndex, signature_values
from newsflow.pipeline.options import STORY_THRESHOLD as STORY_THRESHOLD
from newsflow.pipeline.options import DedupOptions as DedupOptions
from newsflow.pipeline.places import countries_around, countries_named
from newsflow.pipeline.records import StoryAssignment, first_members

# What a shared quotation adds to the embedding's cosine (see `story_similarity`).
QUOTE_BONUS = 0.3
# Events are told within days, themes for ever: a report dated (publication time, else time
# received) more than FRESH_HOURS before or after the span of a story's reports counts less, down
# to STALE_FACTOR at the edge of the window (72 h by default), past which the story is not a
# candidate at all. A report three days on must be closer in meaning (at the default threshold, a
# cosine of 0.52, not 0.42). Not tuned: the dev pairs carry no dates. A window of FRESH_HOURS or
# less has no decay.
FRESH_HOURS = 24.0
STALE_FACTOR = 0.8
# What disjoint names leave of it: evidence of another event, not proof that the texts are
# unrelated (the score still orders such pairs by meaning; the rule alone keeps them apart).
NAMES_DIFFER_FACTOR = 0.5


class Weights(Mapping[str, float]):
    """A story's weighted keys (names or words), read-only and compact.

    A dict of 20 floats costs about 1.1 KB; a tuple of interned keys and the bytes of 32-bit floats,
    about 0.3 KB. A story keeps two of these, and at a million open stories that is gigabytes.
    (Weights are rounded to three digits where they are made; seven digits hold their averages.)
    """

    __slots__ = ("_keys", "_values")

    def __init__(self, pairs: Iterable[tuple[str, float]] = ()) -> None:
        items = list(pairs)
        self._keys = tuple(k for k, _ in items)
        self._values = array("f", [v for _, v in items]).tobytes()  # bytes: 33 bytes of overhead

    def _floats(self) -> memoryview[float]:
        return memoryview(self._values).cast("f")

    def __getitem__(self, key: str) -> float:
        try:
            return float(self._floats()[self._keys.index(key)])
        except ValueError:
            raise KeyError(key) from None

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def pairs(self) -> Iterator[tuple[str, float]]:
        return zip(self._keys, self._floats(), strict=True)

    # Pickled field by field (a snapshot of the index holds a million of these).
    def __reduce__(self) -> tuple[Any, ...]:
        return _weights, (self._keys, self._values)


def _weights(keys: tuple[str, ...], values: bytes) -> Weights:
    weights = Weights.__new__(Weights)
    weights._keys, weights._values = keys, values
    return weights


@dataclass(frozen=True, slots=True)
class IndexedArticle:
    """What the index keeps of an article: enough to find copies of it and to answer again.

    Its terms and entities live on in its story's centroid; keeping only this is what makes an
    article cost a few hundred bytes of memory instead of kilobytes.
    """

    signature: bytes  # its uint32 values' bytes: 33 bytes of overhead where an array has 96
    shingle_count: int
    assignment: StoryAssignment

    def __reduce__(self) -> tuple[Any, ...]:
        return IndexedArticle, (self.signature, self.shingle_count, self.assignment)


class MemberLog:
    """What a split needs of each member of a story of two or more (`StoryIndex.split`), in member
    order: its quantized embedding (DIM bytes, zeros for a text without one), its event and
    receipt times, its outlet and headline. About 0.5 KB a member; a story of one report keeps
    none (its own fields hold it), so an index of mostly single reports costs nothing more.
    """

    __slots__ = ("outlets", "times", "titles", "vectors")

    def __init__(self) -> None:
        self.vectors = bytearray()
        self.times = array("d")  # event time, receipt time: two per member
        self.outlets: list[str] = []
        self.titles: list[str] = []

    def __len__(self) -> int:
        return len(self.titles)

    def append(self, embedding: bytes, timestamp: float, received: float, outlet: str, title: str) -> None:
        self.vectors += embedding or bytes(EMBEDDING_DIM)
        self.times.extend((timestamp, received))
        self.outlets.append(sys.intern(outlet))
        self.titles.append(title)

    def extend(self, other: MemberLog) -> None:
        self.vectors += other.vectors
        self.times.extend(other.times)
        self.outlets += other.outlets
        self.titles += other.titles

    def entry(self, i: int) -> tuple[bytes, float, float, str, str]:
        """Return the i-th member's entry, as `append` takes it."""
        vector = bytes(self.vectors[i * EMBEDDING_DIM : (i + 1) * EMBEDDING_DIM])
        return vector, self.times[2 * i], self.times[2 * i + 1], self.outlets[i], self.titles[i]

    def take(self, positions: Sequence[int]) -> MemberLog:
        """Return the log of the members at these positions, in their order."""
        part = MemberLog()
        for i in positions:
            part.append(*self.entry(i))
        return part

    def matrix(self) -> np.ndarray:
        """Return the members' quantized embeddings, one int8 row each (a row of zeros: none)."""
        return np.frombuffer(self.vectors, dtype=np.int8).reshape(len(self), EMBEDDING_DIM)

    def __reduce__(self) -> tuple[Any, ...]:
        return _member_log, (bytes(self.vectors), self.times.tobytes(), self.outlets, self.titles)


def _member_log(vectors: bytes, times: bytes, outlets: list[str], titles: list[str]) -> MemberLog:
    log = MemberLog()
    log.vectors += vectors
    log.times.frombytes(times)
    log.outlets, log.titles = [sys.intern(o) for o in outlets], titles
    return log


@dataclass(slots=True)
class Story:
    story_id: str
    first_seen: float
    last_seen: float
    headline: str
    entities: Weights = field(default_factory=Weights)
    # The members' quote shingles, sorted, as uint32 bytes (4 bytes each, not a set's 50; most
    # stories have none, and b"" costs nothing).
    quotes: bytes = b""
    members: list[str] = field(default_factory=list)
    # The members' salient words, bounded like `entities` (for `DedupOptions.names_to_differ`).
    terms: Weights = field(default_factory=Weights)
    outlets: tuple[str, ...] = ()  # a few per story: a tuple is the smaller container
    # The members' embeddings: while the story has one (most stories), that member's quantized
    # bytes (384 bytes instead of 1.5 KB of floats); from the second on, their sum as floats.
    embedding: bytes = b""
    vector_total: np.ndarray | None = None
    # When its latest member was received: the story's age on the index's clock (expiry).
    last_received: float = 0.0
    # How many members have an embedding (in `vector_total`): its coherence's denominator.
    embedded: int = 0
    # The stories merged into this one (`StoryIndex.merge`), and those merged into them.
    merged_from: tuple[str, ...] = ()
    # From the second member on (see `MemberLog`).
    log: MemberLog | None = None
    # The story this one split from, and the stories that split from this one (`StoryIndex.split`).
    split_from: str = ""
    split_into: tuple[str, ...] = ()
    # Records of this story beyond one per member (its version, see `records.story_record`): a split
    # takes members away, and the story's next record must still have a higher version.
    revisions: int = 0
    # Members that left the index with the window while the story stayed open
    # (`StoryIndex.age_out`), its own and those of stories merged into it: they still count in its
    # records.
    aged_out: int = 0
    # Once members have aged out: the story's first members (up to MAX_STORY_MEMBERS/2, in the
    # order they joined, as known when members last aged out), less those that left in a split
    # since; its records list them as its first. Such a story also keeps its span, headline and
    # outlets through a split (what its aged-out members held is not known any more).
    opening: tuple[str, ...] = ()

    def __reduce__(self) -> tuple[Any, ...]:
        # Positional, in slot order: unpickling a million stories costs one call each.
        return Story, tuple(getattr(self, name) for name in Story.__slots__)

    @property
    def vector_sum(self) -> np.ndarray | None:
        """The sum of the members' unit embeddings (None until a member has one)."""
        if self.vector_total is not None:
            return self.vector_total
        return dequantize(self.embedding) if self.embedding else None

    def member_log(self) -> MemberLog:
        """Return the story's member log, started from its own fields while it has one member."""
        if self.log is None:
            self.log = MemberLog()
            if self.members:
                embedding = self.embedding if self.embedded else b""
                self.log.append(
                    embedding, self.first_seen, self.last_received, self.outlets[0], self.headline
                )
        return self.log

    def add(self, f: StoryFeatures, options: DedupOptions) -> None:
        """Fold an article into the centroid (bounded) and the member list."""
        n = len(self.members)
        if n:  # before this member changes the fields the first one is read from
            self.member_log().append(f.embedding, f.timestamp, f.received or f.timestamp, f.outlet, f.title)
        self.entities = _combine(self.entities, n, f.entities.items(), 1, options.max_story_entities)
        self.terms = _combine(self.terms, n, f.terms.items(), 1, options.max_story_entities)
        if f.embedding:
            self.embedded += 1
            current = self.vector_sum
            if current is None:
                self.embedding = f.embedding
            else:
                self.vector_total, self.embedding = current + dequantize(f.embedding), b""
        if f.quotes:
            self.quotes = _with_quotes(self.quotes, f.quotes)
        self.members.append(f.article_id)
        if f.outlet not in self.outlets:
            self.outlets = (*self.outlets, f.outlet)
        self.first_seen = min(self.first_seen, f.timestamp)
        self.last_seen = max(self.last_seen, f.timestamp)
        self.last_received = max(self.last_received, f.received or f.timestamp)

    def absorb(self, other: Story, options: DedupOptions) -> None:
        """Fold another story's members and centroid into this one (`StoryIndex.merge`)."""
        n, m = len(self.members), len(other.members)
        self.member_log().extend(other.member_log())
        self.entities = _combine(self.entities, n, other.entities.pairs(), m, options.max_story_entities)
        self.terms = _combine(self.terms, n, other.terms.pairs(), m, options.max_story_entities)
        mine, theirs = self.vector_sum, other.vector_sum
        if theirs is not None:
            self.vector_total = theirs if mine is None else mine + theirs
            self.embedding = b""
            self.embedded += other.embedded
        if other.quotes:
            self.quotes = _with_quotes(self.quotes, memoryview(other.quotes).cast("I"))
        self.members.extend(other.members)
        self.outlets = (*self.outlets, *(o for o in other.outlets if o not in self.outlets))
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)
        self.last_received = max(self.last_received, other.last_received)
        self.merged_from = (*self.merged_from, other.story_id, *other.merged_from)
        self.aged_out += other.aged_out


def _combine(centroid: Weights, n: int, other: Iterable[tuple[str, float]], m: int, keep: int) -> Weights:
    """Return the centroid of n members' `centroid` and m members' `other` (one article's
    weights: m = 1), bounded to the `keep` heaviest keys."""
    total = {k: v * n for k, v in centroid.pairs()}
    for k, v in other:
        # Interned: open stories share one copy of each word or name, however many use it.
        k = sys.intern(k)
        total[k] = total.get(k, 0.0) + v * m
    top = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:keep]
    return Weights((k, v / (n + m)) for k, v in top)


def _with_quotes(quotes: bytes, more: Iterable[int]) -> bytes:
    """Return a story's quote shingles with `more` added, the smallest hashes kept (bounded)."""
    merged = set(memoryview(quotes).cast("I")).union(more)
    return array("I", sorted(merged)[: 4 * MAX_QUOTE_SHINGLES]).tobytes()


# Splits (`StoryIndex.split`): each of the two groups of a split has at least this many members
# (a lone report that reads apart stays: one text is not evidence of a second event), and a
# two-means of the members' embeddings runs for at most SPLIT_ROUNDS rounds.
MIN_SPLIT_PART = 2
SPLIT_ROUNDS = 10


def split_due(members: int) -> bool:
    """Return whether a story that has just grown to this many members is checked for a split: at
    every join up to 16 members, then each time it grows by about an eighth (20, 24, 28, 32, 40...),
    which keeps the checks' cost (a pass over the members) constant per join."""
    if members < 2 * MIN_SPLIT_PART:
        return False
    return members <= 16 or members % (1 << (members.bit_length() - 3)) == 0


def split_parts(log: MemberLog, threshold: float) -> list[int] | None:
    """Return the positions of the members that report another event than the story's first
    report, or None: a two-means of the members' embeddings (from the first report and the one
    least like it), kept when both groups have MIN_SPLIT_PART members and their mean embeddings'
    cosine is below `threshold`. Members without an embedding stay."""
    rows = log.matrix().astype(np.float32)
    norms = np.linalg.norm(rows, axis=1)
    embedded = np.flatnonzero(norms > 0)
    if len(embedded) < 2 * MIN_SPLIT_PART:
        return None
    x = rows[embedded] / norms[embedded, None]
    centers = np.stack([x[0], x[int(np.argmin(x @ x[0]))]])
    labels: np.ndarray | None = None
    for _ in range(SPLIT_ROUNDS):
        nearest = np.argmax(x @ centers.T, axis=1)  # a tie stays with the first report
        if nearest[0]:
            nearest = 1 - nearest
        if not nearest.any():
            return None
        if labels is not None and np.array_equal(nearest, labels):
            break
        labels = nearest
        centers = np.stack([x[labels == 0].mean(axis=0), x[labels == 1].mean(axis=0)])
    assert labels is not None
    a, b = centers
    cosine = float(a @ b) / float(np.linalg.norm(a) * np.linalg.norm(b))
    if np.bincount(labels, minlength=2).min() < MIN_SPLIT_PART or cosine >= threshold:
        return None
    return [int(i) for i in embedded[labels == 1]]


# Members of an open story received before the window leave the index in groups of at least this
# many and an eighth of the story (`StoryIndex.age_out`): it keeps fewer old ones than that, and a
# member that joins with an old receipt time.
AGE_OUT_AT_LEAST = 8

# Ids of stories split from another: new stories' ids start with "s-".
SPLIT_PREFIX = "split-"
# Members waiting on a rebuild for the split that took them on (`StoryIndex.reshape`): not a story
# any record names, and not posted under any key.
WAITING_PREFIX = "\x00waiting/"


@dataclass(frozen=True, slots=True)
class StoryShape:
    """What a story holds for all its members together, not per member: names, words, quotes and
    the keys it is posted under (see `StoryIndex.split`)."""

    entities: Weights
    terms: Weights
    quotes: bytes
    keys: tuple[str, ...]

    @classmethod
    def of(cls, story: Story, keys: Iterable[str]) -> StoryShape:
        return cls(story.entities, story.terms, story.quotes, tuple(keys))

    def as_dict(self) -> dict[str, Any]:
        return {
            "entities": [[k, v] for k, v in self.entities.pairs()],
            "terms": [[k, v] for k, v in self.terms.pairs()],
            "quotes": list(memoryview(self.quotes).cast("I")),
            "keys": list(self.keys),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StoryShape:
        return cls(
            Weights((sys.intern(str(k)), float(v)) for k, v in d["entities"]),
            Weights((sys.intern(str(k)), float(v)) for k, v in d["terms"]),
            array("I", [int(q) for q in d["quotes"]]).tobytes(),
            tuple(sys.intern(str(k)) for k in d["keys"]),
        )


@dataclass(frozen=True, slots=True)
class StoryHeader:
    """What a story that has let members age out holds beyond its members' own records: its
    opening, span, outlets, counts and lineage (`StoryIndex.reinstate`)."""

    aged_out: int
    opening: tuple[str, ...]
    first_seen: float
    last_seen: float
    headline: str
    outlets: tuple[str, ...]
    revisions: int
    split_from: str
    split_into: tuple[str, ...]
    merged_from: tuple[str, ...]

    @classmethod
    def of(cls, story: Story) -> StoryHeader:
        return cls(*(getattr(story, name) for name in cls.__slots__))

    def apply(self, story: Story) -> None:
        for name in self.__slots__:
            setattr(story, name, getattr(self, name))

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StoryHeader:
        return cls(
            int(d["aged_out"]),
            tuple(map(str, d["opening"])),
            float(d["first_seen"]),
            float(d["last_seen"]),
            str(d["headline"]),
            tuple(sys.intern(str(o)) for o in d["outlets"]),
            int(d["revisions"]),
            str(d["split_from"]),
            tuple(map(str, d["split_into"])),
            tuple(map(str, d["merged_from"])),
        )


def _story_of(
    story_id: str, members: list[str], log: MemberLog, like: StoryShape, header: StoryHeader | None = None
) -> Story:
    """Return a story of these members built from their log; its names, words and quotes are
    `like`'s (the index keeps those per story, not per member); with a `header`, that is its own
    (and it keeps its log even with one member: its header does not tell that member's)."""
    events, receipts = log.times[0::2], log.times[1::2]
    story = Story(
        story_id,
        min(events),
        max(events),
        log.titles[0],
        entities=like.entities,
        quotes=like.quotes,
        members=members,
        terms=like.terms,
        outlets=tuple(dict.fromkeys(log.outlets)),
        last_received=max(receipts),
    )
    rows = [row.tobytes() for row in log.matrix() if row.any()]
    story.embedded = len(rows)
    if len(rows) == 1:
        story.embedding = rows[0]
    elif rows:
        # Added one by one in member order, as `Story.add` adds them: the same sum to the last bit.
        total = dequantize(rows[0])
        for row in rows[1:]:
            total = total + dequantize(row)
        story.vector_total = total
    story.log = log if len(members) > 1 or header is not None else None
    if header is not None:
        header.apply(story)
    return story


def story_similarity(
    f: StoryFeatures, story: Story, vector: np.ndarray | None = None, options: DedupOptions | None = None
) -> float:
    """Return how likely the article reports the story's event, in [0, 1].

    The measure is the cosine of the article's embedding with the story's centroid, discounted by
    how far the story's members have spread (`semantic_scores`): reports of one event say the same
    thing in other words. A shared quotation (a sentence someone said, reported by both) is
    near-proof of the same event and adds to it; several names on both sides and none shared are
    evidence of another event (`DedupOptions.names_to_differ`): they scale the measure down, and
    such an article never joins the story (`StoryIndex.score`). `vector` is the article's
    dequantized embedding, when the caller has it.
    """
    if vector is None and f.embedding:
        vector = dequantize(f.embedding)
    semantic = 0.0
    if vector is not None:
        (semantic,) = semantic_scores(vector, [story]).tolist()
    return _with_evidence(f, story, semantic, options or DedupOptions())[0]


def semantic_scores(vector: np.ndarray, stories: Sequence[Story]) -> np.ndarray:
    """Return how close an article's unit embedding is to each story (0 for a story without one).

    A story with one embedded report: the cosine with that report. A larger story: the cosine with
    its centroid times the square root of its coherence, the centroid's length over the number of
    members it sums (1 when all members say the same, less as they spread). A centroid that averages
    reports of several events points at what they share, a theme, and every new report on that
    theme comes close to it: the discount keeps a story that has spread from growing further on
    theme alone. (Where positive, it is the geometric mean of the centroid's cosine and the
    article's mean cosine with the members.) One matrix product for all candidates.
    """
    rows = np.zeros((len(stories), EMBEDDING_DIM), dtype=np.float32)
    members = np.zeros(len(stories), dtype=np.float32)  # 0: one embedding, kept as its bytes
    for i, story in enumerate(stories):
        if story.vector_total is not None:
            rows[i] = story.vector_total
            members[i] = story.embedded
        elif story.embedding:
            rows[i] = np.frombuffer(story.embedding, dtype=np.int8)
    lengths = np.linalg.norm(rows, axis=1)
    # dot / |sum| * sqrt(|sum| / n) = dot / sqrt(|sum| * n); a story of one: dot / |its vector|.
    divisors = np.where(members > 0, np.sqrt(lengths * members), lengths)
    scores: np.ndarray = np.divide(rows @ vector, divisors, out=np.zeros_like(divisors), where=divisors > 0)
    return scores


def stories_similarity(a: Story, b: Story) -> float:
    """Return how alike two stories are as wholes: the cosine of their centroids times the square
    root of each one's coherence (see `semantic_scores`; 0 when either has no embedding)."""
    va, vb = a.vector_sum, b.vector_sum
    if va is None or vb is None:
        return 0.0
    la, lb = float(np.linalg.norm(va)), float(np.linalg.norm(vb))
    if not la or not lb:
        return 0.0
    cosine = float(va @ vb) / (la * lb)
    return cosine * math.sqrt(la / max(1, a.embedded) * lb / max(1, b.embedded))


def _with_evidence(
    f: StoryFeatures, story: Story, semantic: float, options: DedupOptions
) -> tuple[float, bool]:
    """Return the similarity with the evidence of quotes and names, and whether names rule the
    story out."""
    semantic *= _freshness(f, story, options.window_hours)
    # A shared quotation of eight or more words (three six-word shingles) is evidence; a couple of
    # shared shingles is a stock phrase.
    ruled_out = False
    if f.quotes and len(f.quotes.intersection(memoryview(story.quotes).cast("I"))) >= 3:
        semantic += QUOTE_BONUS
    elif _names_differ(f, story, options.names_to_differ):
        semantic *= NAMES_DIFFER_FACTOR
        ruled_out = True
    return min(1.0, max(0.0, semantic)), ruled_out


def _freshness(f: StoryFeatures, story: Story, window_hours: float) -> float:
    """Return 1 for a report within FRESH_HOURS of the span of the story's reports, falling
    linearly to STALE_FACTOR at the window's edge."""
    if not f.timestamp or not story.last_seen:
        return 1.0
    gap_hours = max(story.first_seen - f.timestamp, f.timestamp - story.last_seen, 0.0) / 3600
    if gap_hours <= FRESH_HOURS or window_hours <= FRESH_HOURS:
        return 1.0
    stale = min(1.0, (gap_hours - FRESH_HOURS) / (window_hours - FRESH_HOURS))
    return 1.0 - (1.0 - STALE_FACTOR) * stale


@lru_cache(maxsize=200_000)
def name_words(key: str) -> tuple[str, ...]:
    """Return the words of an entity key that can tell it apart, in order: topical words (`idf` > 0)
    of three letters or more, without possessive endings."""
    return tuple(w for w in map(strip_possessive, words(key)) if len(w) > 2 and idf(w) > 0)


@dataclass(frozen=True, slots=True)
class _Names:
    """What the names rule compares of one side's entity keys."""

    short: frozenset[str]  # the words of its one-word names ("pompeo", "nsw")
    heads: frozenset[str]  # the last word of each name ("pompeo" of "mike pompeo")
    countries: frozenset[str]  # ISO codes of the countries it names
    around: frozenset[str]  # ISO codes of the countries its states and regions lie in


# One entry per side of recent comparisons: an article is compared with up to `max_candidates`
# stories, each unchanged until it gains a member.
@lru_cache(maxsize=4096)
def _names(keys: tuple[str, ...]) -> _Names:
    found = [name_words(k) for k in keys]
    return _Names(
        short=frozenset(w[0] for k, w in zip(keys, found, strict=True) if len(w) == 1 and len(words(k)) == 1),
        heads=frozenset(w[-1] for w in found if w),
        countries=frozenset(countries_named(keys)),
        around=frozenset(countries_around(keys)),
    )


def _names_differ(f: StoryFeatures, story: Story, at_least: int) -> bool:
    """Return whether both sides name `at_least` entities and none of one side's is the other's.

    A name is the other side's when the keys are equal, or when it is a one-word name (how news
    refers back to a person, place or organisation already named in full) that ends one of the
    other side's names or is among its salient words (the tagger may tag "coronavirus" in one text
    and leave it a plain word in the other), or when one is a country and the other a state or
    region of it ("Australia", "NSW"). Two full names sharing a word are not one name: two people
    called Chiara, two boards; nor are two places of one country.
    """
    if not at_least or min(len(f.entities), len(story.entities)) < at_least:
        return False
    if not f.entities.keys().isdisjoint(story.entities):
        return False
    a, b = _names(tuple(f.entities)), _names(tuple(story.entities))
    return (
        a.short.isdisjoint(b.heads)
        and a.short.isdisjoint(story.terms)
        and b.short.isdisjoint(a.heads)
        and b.short.isdisjoint(f.terms)
        and a.countries.isdisjoint(b.around)
        and b.countries.isdisjoint(a.around)
    )


class StoryIndex:
    """Single-writer dedup state: articles' signatures (LSH) and open stories (inverted index).

    Stories whose last member is older than the window (relative to the newest article seen)
    are expired with their members, so memory is bounded by the window's traffic.
    """

    def __init__(self, options: DedupOptions | None = None) -> None:
        self.options = options or DedupOptions()
        self.lsh = BandIndex(self.options.lsh_jaccard, NUM_PERM)
        self.articles: dict[str, IndexedArticle] = {}
        self.stories: dict[str, Story] = {}
        # key -> story ids, oldest first. A list, not an ordered set: refreshing and evicting scan
        # at most `max_stories_per_key` ids, and a list costs 8 bytes an id where a dict costs ~50.
        self.postings: dict[str, list[str]] = {}
        # story id -> the keys it is posted under, for the stories whose keys their centroid no
        # longer tells (`_story_keys`): most stories have one report, and theirs need no copy.
        self.story_keys: dict[str, tuple[str, ...]] = {}
        # (last_received, story_id), lazily updated: expiry pops only what is old, never scans.
        self._by_age: list[tuple[float, str]] = []
        self.watermark = 0.0
        self.expired_articles: list[str] = []
        # Stories the window closed, for their final record (the caller empties both lists).
        self.expired_stories: list[Story] = []
        # Stories merged into another (`merge`), with the id of the one they joined and its count
        # of members aged out then, for their records (the caller empties the list).
        self.merged: list[tuple[Story, str, int]] = []
        # Stories split from another (`split`), each with what is left of the other, for their
        # records (the caller empties the list).
        self.splits: list[tuple[Story, Story | None]] = []
        # Stories whose old members left the index (`age_out`), with those members, for the state
        # records that repeat it on a rebuild (the caller empties the list).
        self.aged_out_stories: list[tuple[str, list[str]]] = []
        self._aged_now: list[str] = []  # (see `_post_aged`)
        # The assignment the last article was indexed under before its merges and splits: what
        # the writer's state records, so that a rebuild indexes it, then merges and splits, as
        # `assign` did.
        self.joined: StoryAssignment | None = None
        # Ids a new story may not take: those of closed stories whose records are still on the
        # stories topic (the writer's `DedupDesk.closed`; see `new_story_id`).
        self.retired: Container[str] = frozenset()

    def __len__(self) -> int:
        return len(self.articles)

    def new_story_id(self, prefix: str, f: StoryFeatures) -> str:
        """Return the id of a story the article opens ("s-") or splits off ("split-"): the prefix
        and its id; or, for an article sent again after the window forgot it, whose first story of
        that id is closed but still on the stories topic, that and the second it was received (a
        closed story's id never comes back while its record is there: consumers keep a story's
        highest version)."""
        story_id = f"{prefix}{f.article_id}"
        if story_id in self.retired or story_id in self.stories:
            story_id = f"{story_id}-{int(f.received or f.timestamp)}"
        return story_id

    @staticmethod
    def _postings_keys(f: StoryFeatures | Story) -> list[str]:
        # The words of the names and the salient words, in one vocabulary: one report's "Mike
        # Pompeo" finds another's "Pompeo", and a name in one text finds the same word left
        # untagged in another.
        keys = frozenset().union(*map(name_words, f.entities), list(f.terms)[:MAX_TERMS])
        # Sorted: string hashes differ between processes, and vote order must not.
        return [sys.intern(k) for k in sorted(keys)]

    def waiting(self) -> list[str]:
        """Return the members still waiting for a split after a rebuild (none, when the state topic
        held every split it should: see `reshape`)."""
        return [m for sid, s in self.stories.items() if sid.startswith(WAITING_PREFIX) for m in s.members]

    def story_keys_of(self, story: Story) -> tuple[str, ...]:
        """Return the keys a story is posted under."""
        return self._story_keys(story)

    def _story_keys(self, story: Story) -> tuple[str, ...]:
        """Return the keys a story is posted under (its members' keys, together)."""
        known = self.story_keys.get(story.story_id)
        if known is not None:
            return known
        # A story of one report posted its keys only, and its centroid holds them all.
        return tuple(self._postings_keys(story)) if story.members else ()

    def _in_window(self, f: StoryFeatures, story: Story) -> bool:
        if not f.timestamp or not story.last_seen:
            return True
        window = self.options.window_hours * 3600
        return story.first_seen - window <= f.timestamp <= story.last_seen + window

    def _candidates(self, f: StoryFeatures) -> list[Story]:
        keys = self._postings_keys(f)
        votes = Counter(chain.from_iterable(self.postings.get(key, ()) for key in keys))
        # Most shared keys first; ties in counting order (sorted keys, then stories by when they
        # were last joined), which is the same in every process that replays the same articles.
        ranked = heapq.nlargest(self.options.max_candidates, votes.items(), key=itemgetter(1))
        return [self.stories[sid] for sid, _ in ranked if self._in_window(f, self.stories[sid])]

    def find_copy(self, f: StoryFeatures) -> tuple[str, float] | None:
        """Return (first-seen article id, containment) of the text this one copies, if any."""
        best: tuple[str, float] | None = None
        for other_id in sorted(self.lsh.query(f.signature)):
            other = self.articles.get(other_id)
            if other is None or other_id == f.article_id:
                continue
            c = estimated_containment(f, other)
            if c >= self.options.copy_containment and (best is None or c > best[1]):
                best = (other_id, c)
        return best

    def scores(self, f: StoryFeatures) -> list[tuple[float, Story]]:
        """Return the stories the article may join with their similarities, best first; a story
        whose names rule the article out is not one."""
        candidates = self._candidates(f)
        if f.embedding and candidates:
            semantics = semantic_scores(dequantize(f.embedding), candidates).tolist()
        else:
            semantics = [0.0] * len(candidates)
        scored = []
        for story, semantic in zip(candidates, semantics, strict=True):
            s, ruled_out = _with_evidence(f, story, semantic, self.options)
            if s > 0.0 and not ruled_out:
                scored.append((s, story))
        # Stable: of equal scores, the first candidate wins (as it always has).
        scored.sort(key=itemgetter(0), reverse=True)
        return scored

    def merge(self, absorbed_id: str, survivor_id: str) -> Story | None:
        """Fold one open story into another: its members, centroid and index entries become the
        survivor's, and its id leads there from now on. Return the survivor (None, changing
        nothing, if either is not open: a merge replayed onto a state that already holds it)."""
        absorbed, survivor = self.stories.get(absorbed_id), self.stories.get(survivor_id)
        if absorbed is None or survivor is None or absorbed is survivor:
            return None
        keys = set(self._story_keys(absorbed)).union(self._story_keys(survivor))
        survivor.absorb(absorbed, self.options)
        self._reassign(absorbed.members, survivor_id)
        for key in self._story_keys(absorbed):
            ids = self.postings.get(key)
            if ids is None:
                continue
            with contextlib.suppress(ValueError):
                ids.remove(absorbed_id)
            if survivor_id not in ids:
                ids.append(survivor_id)
                if len(ids) > self.options.max_stories_per_key:
                    del ids[0]
        self.story_keys.pop(absorbed_id, None)
        self.story_keys[survivor_id] = tuple(sorted(keys))
        del self.stories[absorbed_id]
        heapq.heappush(self._by_age, (survivor.last_received, survivor_id))
        self.merged.append((absorbed, survivor_id, survivor.aged_out))
        return survivor

    def merged_away(self, absorbed_id: str, survivor_id: str, lineage: Sequence[str]) -> None:
        """Repeat on a rebuild a merge whose absorbed story is not indexed any more (its members
        left the survivor in a split and closed since): the survivor's lineage is all that is left
        of it (and what closes its state records when the survivor closes)."""
        survivor = self.stories.get(survivor_id)
        if survivor is None or absorbed_id in self.stories or absorbed_id in survivor.merged_from:
            return
        # Stories merged into the absorbed one that the rebuild still holds apart (their members
        # stayed in the survivor live, while the absorbed story's own left): they join it now.
        for earlier in lineage:
            self.merge(earlier, survivor_id)
        earlier_ids = set(lineage)
        rest = (m for m in survivor.merged_from if m not in earlier_ids)
        survivor.merged_from = (*rest, absorbed_id, *lineage)  # in the live order

    def split(
        self, story_id: str, new_id: str, leaving: Iterable[str], shape: StoryShape | None = None
    ) -> Story | None:
        """Move these members of an open story to a new story, `new_id`, split from it; return the
        new story (None, changing nothing, if the new id is taken or none of them is indexed: a
        split replayed onto a state that already holds it).

        Both stories' embeddings, times, outlets and headlines are rebuilt from their members'
        logs. The new story takes `shape` (names, words, quotes and keys; by default the story's
        own, as the live writer splits), and is posted under its keys. On a rebuild from the state
        topic, a member may still sit in a story its records name but the writer had left
        behind (an earlier split whose story has since closed): it is moved from there, and a
        story left without members is dropped.
        """
        if new_id in self.stories:
            return None
        story = self.stories.get(story_id)
        if shape is None:
            if story is None:
                return None
            shape = StoryShape.of(story, self._story_keys(story))
        listed = set(leaving := list(leaving))
        moving, log, sources = self._gather(leaving)
        if not moving:
            return None
        new = _story_of(new_id, moving, log, shape)
        new.split_from = story_id
        self._reassign(moving, new_id)
        self.story_keys[new_id] = shape.keys
        for key in shape.keys:
            self._post(key, new_id)
        self.stories[new_id] = new
        heapq.heappush(self._by_age, (new.last_received, new_id))
        kept: Story | None = None
        for source_id, going in sources.items():
            source = self.stories[source_id]
            stay = [i for i, m in enumerate(source.members) if m not in going]
            if not stay:
                self._drop_emptied(source)
                continue
            rest = self._keep_only(source, stay, StoryShape.of(source, ()))
            if source_id == story_id:
                rest.split_into = (*source.split_into, new_id)
                rest.revisions = source.revisions + len(going) + 1
                kept = rest
        parent = self.stories.get(story_id)
        if parent is not None and parent.opening:  # they are listed by the new story only
            parent.opening = tuple(m for m in parent.opening if m not in listed)
        self.splits.append((new, kept))
        return new

    def _gather(self, members: Iterable[str]) -> tuple[list[str], MemberLog, dict[str, set[str]]]:
        """Return these members (those indexed, in this order), their log entries, and the members
        each story holding them gives up (for `split` and `reinstate`)."""
        moving = [
            m
            for m in dict.fromkeys(members)
            if m in self.articles and self.articles[m].assignment.story_id in self.stories
        ]
        log = MemberLog()
        sources: dict[str, set[str]] = {}
        positions: dict[str, dict[str, int]] = {}
        for m in moving:
            source = self.stories[self.articles[m].assignment.story_id]
            if source.story_id not in positions:
                positions[source.story_id] = {x: i for i, x in enumerate(source.members)}
            log.append(*source.member_log().entry(positions[source.story_id][m]))
            sources.setdefault(source.story_id, set()).add(m)
        return moving, log, sources

    def _drop_emptied(self, story: Story) -> None:
        """Drop a story all of whose members another story has taken (with the keys it was
        posted under: they go with them)."""
        self.story_keys[story.story_id] = self._story_keys(story)
        story.members = []
        self._drop_story(story.story_id)

    def _reassign(self, members: Iterable[str], story_id: str) -> None:
        """Index these members (those still indexed) under another story."""
        for member in members:
            indexed = self.articles.get(member)
            if indexed is not None:
                assignment = replace(indexed.assignment, story_id=story_id)
                self.articles[member] = IndexedArticle(indexed.signature, indexed.shingle_count, assignment)

    def _post_latest(self, key: str, story_id: str, posted: bool = True) -> None:
        """Post a story under a key as the most recent one (moved there if `posted` already),
        within the key's bound."""
        ids = self.postings.setdefault(key, [])
        if not ids or ids[-1] != story_id:
            if posted:
                with contextlib.suppress(ValueError):
                    ids.remove(story_id)
            ids.append(story_id)
            if len(ids) > self.options.max_stories_per_key:
                del ids[0]

    def _post(self, key: str, story_id: str, before: Collection[str] = ()) -> None:
        """Post a story under a key, as the most recent one (or before the first of `before`
        there), within the key's bound."""
        ids = self.postings.setdefault(key, [])
        ids.insert(next((i for i, sid in enumerate(ids) if sid in before), len(ids)), story_id)
        if len(ids) > self.options.max_stories_per_key:
            del ids[0]

    def _keep_only(
        self, story: Story, positions: Sequence[int], shape: StoryShape, header: StoryHeader | None = None
    ) -> Story:
        """Replace an open story with one of only its members at these positions (rebuilt from
        its member log, with `shape` and its lineage; one that has let members age out keeps its
        header, unless given another); return it."""
        members = [story.members[i] for i in positions]
        if header is None and story.aged_out:
            header = StoryHeader.of(story)
        rest = _story_of(story.story_id, members, story.member_log().take(positions), shape, header)
        if header is None:
            rest.merged_from, rest.split_from = story.merged_from, story.split_from
            rest.split_into, rest.revisions = story.split_into, story.revisions
        self.stories[story.story_id] = rest
        heapq.heappush(self._by_age, (rest.last_received, story.story_id))
        return rest

    def reshape(
        self,
        story_id: str,
        shape: StoryShape,
        revisions: int,
        split_into: Sequence[str],
        members: Sequence[str],
        merged_from: Sequence[str] | None = None,
        aged_out: int | None = None,
        opening: Sequence[str] | None = None,
    ) -> None:
        """Give an open story the members, names, words, quotes and keys, the split lineage and
        the count of members aged out, it had when the live writer last split it (a rebuild from the state topic: its members
        that left may have closed since, and its own records cannot tell what they had added).

        A member it holds that is not among `members` left it in a split whose story has closed
        since, and is on its way to a later one: it waits, apart, for that split's record. Keys it
        lacks are posted where the live writer had them as near as is known (before the stories
        split from it): in a random-stream check of 200 streams, one rebuilt index listed two
        stories of a key in another order than the live one (which decides only exact ties).
        """
        story = self.stories.get(story_id)
        listed = set(members)
        if story is None or listed.isdisjoint(story.members):
            # (None of the members it had then is in it: a state no writer leaves; unchanged.)
            return
        known = set(self._story_keys(story))  # (a story of one report tells them by its centroid)
        away = [i for i, m in enumerate(story.members) if m not in listed]
        if away:
            self._wait(story, away, shape)
            story = self._keep_only(story, [i for i, m in enumerate(story.members) if m in listed], shape)
        story.entities, story.terms, story.quotes = shape.entities, shape.terms, shape.quotes
        story.revisions, story.split_into = revisions, tuple(split_into)
        if merged_from is not None:  # (state written by earlier versions does not say)
            story.merged_from = tuple(merged_from)
        if aged_out is not None:
            story.aged_out = aged_out
        if opening is not None:
            story.opening = tuple(opening)
        self.story_keys[story_id] = shape.keys
        for key in known.difference(shape.keys):  # (keys only shrink when members age out)
            self._unpost(key, story_id)
        children = set(story.split_into)
        for key in shape.keys:
            if key not in known:
                # Where the live writer had it: posted before the stories split from it were.
                self._post(key, story_id, before=children)

    def _wait(self, story: Story, positions: Sequence[int], shape: StoryShape) -> None:
        """Set these members of a story apart in a story of their own, not posted, waiting for the
        record that moves them (see `reshape`)."""
        waiting_id = f"{WAITING_PREFIX}{story.story_id}"
        waiting = _story_of(
            waiting_id, [story.members[i] for i in positions], story.member_log().take(positions), shape
        )
        self._reassign(waiting.members, waiting_id)
        self.stories[waiting_id] = waiting
        heapq.heappush(self._by_age, (waiting.last_received, waiting_id))

    def age_out(self, story: Story, joining: str) -> Story:
        """Let the members of a story that keeps growing leave the index once they were received
        more than the window ago, as a story's members all do when its last one is that old
        (`expire`); return the story as it is now. Called as a member joins (after the merges it
        made): never that member, which may have been received long ago (a dead letter replayed,
        an archive read out of order).

        A story that gets reports for weeks (a running theme, a daily template) would otherwise
        keep every one of them in memory. The story stays open with the same id and its header
        (opening, span, outlets, version count, lineage); its embedding, member log and copies
        found are its in-window members'; its keys are those its names and words (not rebuilt:
        bounded averages) give, and those of the members that join it later.
        They leave in groups of at least an eighth of its members and AGE_OUT_AT_LEAST, so that
        rebuilding the story from its log costs a constant amount per member. What the state
        needs to repeat it is added to `aged_out_stories` (and see `reinstate`).
        """
        log = story.log
        horizon = self.watermark - self.options.window_hours * 3600
        if log is None or log.times[1] >= horizon:  # its first member is not old: few are
            return story
        receipts = np.frombuffer(log.times, dtype=np.float64)[1::2]
        old = receipts < horizon
        group = max(AGE_OUT_AT_LEAST, len(receipts) / 8)
        if np.count_nonzero(old) < group:
            return story
        at = np.flatnonzero(old)
        leaving = [story.members[i] for i in at]
        if joining in leaving:
            old[at[leaving.index(joining)]] = False
            leaving.remove(joining)
            if len(leaving) < group:
                return story
        count = len(leaving)
        for article_id in leaving:
            indexed = self.articles.pop(article_id, None)
            if indexed is not None:
                self.lsh.remove(article_id, indexed.signature)
        header = replace(StoryHeader.of(story), aged_out=story.aged_out + count, opening=first_members(story))
        keys, old_keys = tuple(self._postings_keys(story)), self._story_keys(story)
        rest = self._keep_only(story, np.flatnonzero(~old).tolist(), StoryShape.of(story, keys), header)
        self._repost(rest.story_id, keys, old_keys, now=False)
        self.aged_out_stories.append((rest.story_id, leaving))
        return rest

    def reinstate(
        self, story_id: str, members: Sequence[str], shape: StoryShape, header: StoryHeader
    ) -> None:
        """Make a story what the live writer held when it last let members age out (a rebuild
        from the state topic, where their records are deleted, and where records written before,
        of merges into it and splits from it, may have found it without the members they moved):
        these members, taken from whatever stories hold them (a story left without members is
        dropped), with this shape and header. What else it holds waits (see `reshape`)."""
        moving, log, sources = self._gather(members)
        if not moving:  # they have all left it since (for a story that took it in, and aged out)
            return
        old_keys = self._story_keys(self.stories[story_id]) if story_id in self.stories else ()
        for source_id, going in sources.items():
            source = self.stories[source_id]
            stay = [i for i, m in enumerate(source.members) if m not in going]
            if source_id == story_id:
                if stay:
                    self._wait(source, stay, shape)
            elif stay:
                self._keep_only(source, stay, StoryShape.of(source, ()))
            else:
                self._drop_emptied(source)
        story = _story_of(story_id, moving, log, shape, header)
        self.stories[story_id] = story
        self._reassign(moving, story_id)
        heapq.heappush(self._by_age, (story.last_received, story_id))
        self._repost(story_id, shape.keys, old_keys)

    def _repost(
        self, story_id: str, keys: tuple[str, ...], old_keys: Iterable[str], now: bool = True
    ) -> None:
        """Post a story under these keys instead of `old_keys`, as the most recent under each (a
        rebuild cannot tell when the members that aged out had posted it); not `now`: at the end
        of the decision (`_post_aged`)."""
        for key in set(old_keys).difference(keys):
            self._unpost(key, story_id)
        self.story_keys[story_id] = keys
        if not now:
            self._aged_now.append(story_id)
            return
        for key in keys:
            self._post_latest(key, story_id)

    def _post_aged(self) -> None:
        """Post the stories whose members aged out in this decision as the most recent under their
        keys, after its splits, as a rebuild does from their records (written after the splits')."""
        for story_id in self._aged_now:
            if story_id in self.stories:
                for key in self.story_keys.get(story_id, ()):
                    self._post_latest(key, story_id)
        self._aged_now.clear()

    def _unpost(self, key: str, story_id: str) -> None:
        ids = self.postings.get(key)
        if ids is not None:
            with contextlib.suppress(ValueError):
                ids.remove(story_id)
            if not ids:
                del self.postings[key]

    def _split_if_two_events(self, story: Story, trigger: StoryFeatures) -> None:
        """Split a story that has just grown if its members tell two events (`split_parts`)."""
        threshold = self.options.split_threshold
        if not threshold or story.log is None or not split_due(len(story.members)):
            return
        moved = split_parts(story.log, threshold)
        if moved:
            leaving = [story.members[i] for i in moved]
            # Unique as new stories' ids are (`new_story_id`): an article splits one story at most
            # each time it is decided; and no new story's id ("s-...") has this prefix.
            self.split(story.story_id, self.new_story_id(SPLIT_PREFIX, trigger), leaving)

    def assign(self, f: StoryFeatures) -> StoryAssignment:
        """Decide `duplicate_of` and `story_id` for an article and index it."""
        assignment = self._assign(f, may_open=True)
        assert assignment is not None  # may_open: every article gets one
        return assignment

    def join(self, f: StoryFeatures) -> StoryAssignment | None:
        """Like `assign` for an article that may join a story or copy an article but never opens a
        story: one that would is not indexed, and None is returned (a short text: an error page,
        a caption, a one-line flash, whose few words are no evidence of an event of its own)."""
        return self._assign(f, may_open=False)

    def _assign(self, f: StoryFeatures, may_open: bool) -> StoryAssignment | None:
        known = self.articles.get(f.article_id)
        if known is not None:  # a redelivered message gets the same answer
            return known.assignment
        # The clock is the time of receipt, which only the pipeline sets: an article claiming to be
        # from 2099 cannot expire the window for everything after it.
        self.expire(max(self.watermark, f.received or f.timestamp))
        copy = self.find_copy(f)
        if copy is not None:
            original_id, containment = copy
            original = self.articles[original_id].assignment
            first = original.duplicate_of or original_id
            assignment = StoryAssignment(original.story_id, first, containment, None, False)
        else:
            scored = self.scores(f)
            if not scored or scored[0][0] < self.options.story_threshold:
                if not may_open:
                    return None
                assignment = StoryAssignment(self.new_story_id("s-", f), None, None, None, True)
            else:
                similarity, story = scored[0]
                assignment = StoryAssignment(story.story_id, None, None, similarity, False)
                # The other stories it could have joined: one event told twice before this
                # report linked them? They must have named someone or something in common
                # already, and be alike as wholes with this report in its story.
                others = [
                    other
                    for score, other in scored[1:]
                    if score >= self.options.story_threshold
                    and self.options.merge_threshold
                    and not story.entities.keys().isdisjoint(other.entities)
                ]
                story = self.restore(f, assignment)
                self.joined = assignment
                for other in others:
                    if stories_similarity(story, other) >= self.options.merge_threshold:
                        # The larger story keeps its id (of two alike, the earlier one).
                        keep, fold = sorted(
                            (story, other), key=lambda s: (-len(s.members) - s.aged_out, s.first_seen)
                        )
                        story = self.merge(fold.story_id, keep.story_id) or story
                # The story it is in now: one that grows by merges lets old members go too.
                story = self.age_out(story, f.article_id)
                self._split_if_two_events(story, f)
                self._post_aged()
                return self.articles[f.article_id].assignment
        self.age_out(self.restore(f, assignment), f.article_id)
        self._post_aged()
        return assignment

    def restore(self, f: StoryFeatures, assignment: StoryAssignment) -> Story:
        """Index an article under a decision already taken (used by `assign` and on recovery)."""
        story = self.stories.get(assignment.story_id)
        if story is None:
            story = Story(assignment.story_id, f.timestamp, f.timestamp, f.title)
            self.stories[story.story_id] = story
        known = self._story_keys(story)  # before the centroid takes this article in
        story.add(f, self.options)
        heapq.heappush(self._by_age, (story.last_received, story.story_id))
        signature = signature_values(f.signature).tobytes()
        self.lsh.insert(f.article_id, signature)
        self.articles[f.article_id] = IndexedArticle(signature, f.shingle_count, assignment)
        keys = self._postings_keys(f)
        # A tuple, not a set: a set of 30 keys costs 2 KB, and this is only walked at expiry.
        story_keys = tuple(sorted(set(known).union(keys))) if known else tuple(keys)
        if known or story_keys != self._story_keys(story):
            self.story_keys[story.story_id] = story_keys
        for key in keys:
            self._post_latest(key, story.story_id, posted=bool(known))
        self.watermark = max(self.watermark, f.received or f.timestamp)
        return story

    def expire(self, now: float) -> list[str]:
        """Forget stories whose last member is older than the window before `now`; return their ids.

        The ids of the articles forgotten with them are added to `self.expired_articles`.
        """
        horizon = now - self.options.window_hours * 3600
        old: list[str] = []
        while self._by_age and self._by_age[0][0] < horizon:
            last_received, sid = heapq.heappop(self._by_age)
            story = self.stories.get(sid)
            # Several heap entries may describe one story; only an unchanged, unseen one expires.
            if (
                story is not None
                and story.last_received == last_received
                and last_received
                and sid not in old
            ):
                old.append(sid)
        for sid in old:
            story, members = self._drop_story(sid)
            self.expired_stories.append(story)
            self.expired_articles.extend(members)
        return old

    def forget(self, article_ids: Iterable[str]) -> None:
        """Drop these articles, silently (their expiry, replayed from the state topic after a
        snapshot): a story keeps its other members, rebuilt from its member log, and goes with
        its last. The live writer closes a story with all its members, but a replayed index may
        hold one of them elsewhere: in the story a split took it from, when compaction has
        removed the split's record since."""
        leaving: dict[str, set[str]] = {}
        for article_id in article_ids:
            indexed = self.articles.get(article_id)
            if indexed is not None:
                leaving.setdefault(indexed.assignment.story_id, set()).add(article_id)
        for story_id, gone in leaving.items():
            story = self.stories[story_id]
            stay = [i for i, m in enumerate(story.members) if m not in gone]
            if not stay:
                self._drop_story(story_id)
                continue
            for article_id in gone:
                self.lsh.remove(article_id, self.articles.pop(article_id).signature)
            self._keep_only(story, stay, StoryShape.of(story, ()))

    def _drop_story(self, sid: str) -> tuple[Story, list[str]]:
        """Remove a story and its members from every structure; return it and the members removed."""
        story = self.stories.pop(sid)
        story_keys = self._story_keys(story)  # before its stored copy, if any, is dropped
        self.story_keys.pop(sid, None)
        members = []
        for member in story.members:
            indexed = self.articles.pop(member, None)
            if indexed is not None:
                self.lsh.remove(member, indexed.signature)
                members.append(member)
        for key in story_keys:
            self._unpost(key, sid)
        return story, members
