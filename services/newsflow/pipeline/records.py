"""Typed records that flow between stages, and the one place they map to and from the wire.

Raw articles travel as the file's original bytes in the Kafka value, with provenance in headers,
so a dead letter can always carry exactly what was received. Everything downstream is JSON
following the versioned schemas in `schemas/`.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from newsflow.pipeline.dates import checked_received

if TYPE_CHECKING:
    from newsflow.pipeline.dedup import Story

ENRICHED_SCHEMA_VERSION = "1.5.0"
DEAD_LETTER_SCHEMA_VERSION = "1.2.1"
STORY_SCHEMA_VERSION = "1.4.2"

# Kafka header names for raw articles (lower-case, dash-separated like HTTP).
H_ARTICLE_ID = "article-id"
H_SOURCE_PATH = "source-path"
H_OUTLET = "outlet"
H_CONTENT_TYPE = "content-type"
H_RECEIVED_AT = "received-at"
H_URL = "url"
# Set by the producer's watch mode on a changed file sent again: the article id of the version before.
H_REVISION_OF = "revision-of"
# How many times an operator has replayed this input from the dead letters (absent: 0).
H_REPLAY_COUNT = "replay-count"

CONTENT_TYPES = ("text/html", "text/plain", "application/json")


# The outlet of an input that names none: a file directly in the folder given, a message without one.
UNKNOWN_OUTLET = "unknown"


def host_of(url: str | None) -> str | None:
    """Return a URL's host without "www." (None for no URL, or one too malformed to have a host)."""
    try:
        host = urlsplit(url).hostname if url else None
    except ValueError:
        return None
    return host.removeprefix("www.") if host else None


def outlet_or_host(outlet: str, url: str | None) -> str:
    """Return the outlet, or, for an input that came under none, the host of its URL if it has one."""
    return (host_of(url) or outlet) if outlet == UNKNOWN_OUTLET else outlet


@dataclass(frozen=True, slots=True)
class Source:
    """Where an article came from; copied verbatim into every downstream record."""

    path: str
    outlet: str
    content_type: str
    received_at: str
    url: str | None = None
    # The charset the transport declared (an HTTP header in a WARC record), if any. It guides
    # decoding and is not part of the output: extraction.encoding says what was used.
    charset: str | None = None
    # The article id of the version this one revises (a changed file sent again), if any.
    revision_of: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "outlet": self.outlet,
            "content_type": self.content_type,
            "received_at": self.received_at,
            "url": self.url,
        }
        # Only on revisions: a consumer still holding a 1.4 schema (closed objects) refuses the
        # records that carry it, not every record.
        if self.revision_of:
            out["revision_of"] = self.revision_of
        return out


@dataclass(frozen=True, slots=True)
class RawArticle:
    """One received article file: its stable id, original bytes and provenance."""

    article_id: str
    payload: bytes
    source: Source


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message was read: enough to fetch its bytes again."""

    topic: str
    partition: int
    offset: int

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}

    def as_id(self) -> str:
        """The id of a message that has none of its own: where it was read, the same on every delivery."""
        return f"@{self.topic}/{self.partition}/{self.offset}"


# A rejection's detail is for people (an exception's message may hold a whole input).
MAX_DETAIL_CHARS = 1000


@dataclass(frozen=True, slots=True)
class Rejection:
    """Bad input as a value: which stage refused it, a bounded reason code and a human detail."""

    stage: str
    reason: str
    detail: str

    @classmethod
    def from_exception(cls, stage: str, exc: BaseException, reason: str = "internal_error") -> Rejection:
        """The rejection of an input whose handling raised: the exception, bounded, as its detail."""
        return cls(stage, reason, f"{type(exc).__name__}: {exc}"[:MAX_DETAIL_CHARS])


@dataclass(frozen=True, slots=True)
class Extraction:
    """How the text was obtained: method, outcome and what cleaning removed."""

    method: str
    status: str
    input_bytes: int
    encoding: str
    boilerplate_removed: int = 0
    # Why the text is empty or short when status says so (EMPTY_REASONS), else None.
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Language:
    code: str
    confidence: float


# A JSON envelope ({url, outlet, html|text, title, published, description, authors}): the fields
# it may carry as text. `published` may also be a Unix time; `authors` (or `author`) see
# `author_names`.
ENVELOPE_TEXT_FIELDS = ("html", "text")
ENVELOPE_STRING_FIELDS = ("url", "outlet", "title", "description", *ENVELOPE_TEXT_FIELDS)
# A Unix time above this is in milliseconds (1e11 seconds is in the year 5138).
_EPOCH_MILLIS = 1e11


def author_names(value: Any) -> tuple[str, ...] | None:
    """Return the authors an envelope (or a page's metadata) names, or None if it names them in no
    way we read: a string
    (several split by ";"), or a list of strings or of objects with a string "name" (schema.org's
    Person, as JSON-LD gives it); nulls in a list are skipped."""
    if isinstance(value, str):
        return tuple(a.strip() for a in value.split(";") if a.strip())
    names: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        name = item.get("name") if isinstance(item, dict) else item
        if isinstance(name, str):
            if name.strip():
                names.append(name.strip())
        elif item is not None:
            return None
    return tuple(names)


def envelope_published(value: Any) -> str | None:
    """Return an envelope's publication claim as text: a string as it is, a Unix time (seconds, or
    milliseconds) as an RFC 3339 date; None for none (or a value of another type)."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) > _EPOCH_MILLIS else value
        try:
            return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, OSError, ValueError):
            return str(value)  # kept as the claim, which the date check calls unparseable
    return None


def envelope_problem(envelope: Mapping[str, Any]) -> str | None:
    """Return why an envelope's fields cannot be read as they are meant (a number for a URL, an
    object for a title), or None. The producer skips such a line of JSON Lines (and answers 400
    over HTTP); the worker dead-letters such an envelope file."""
    for name in ENVELOPE_STRING_FIELDS:
        if envelope.get(name) is not None and not isinstance(envelope[name], str):
            return f"'{name}' must be a string"
    if not any(isinstance(envelope.get(f), str) and envelope[f].strip() for f in ENVELOPE_TEXT_FIELDS):
        return "no 'html' or 'text' string with anything in it"
    published = envelope.get("published")
    if not (published is None or isinstance(published, str) or envelope_published(published)):
        return "'published' must be a string or a Unix time"
    for name in ("authors", "author"):
        if envelope.get(name) is not None and author_names(envelope[name]) is None:
            return f"'{name}' must be a string, or a list of strings or of objects with a string 'name'"
    return None


# Chinese and Japanese characters (Han, Hiragana, Katakana and its half-width forms), written
# without spaces between words. (Thai, Lao, Khmer and Myanmar leave words unspaced too, but write
# vowels and tone marks as characters of their own, in longer words: their spaced phrases stand in.)
_UNSPACED = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002ffff]"
)


def count_words(text: str) -> int:
    """Return about how many words a text has: its space-separated tokens, plus one word for every
    two Chinese or Japanese characters (a Chinese word is 1.5 to 2 characters on average), so that
    a report in those languages is not a one-line flash."""
    return len(text.split()) + len(_UNSPACED.findall(text)) // 2


@dataclass(frozen=True, slots=True)
class CleanArticle:
    """Extracted text and metadata of one article; paragraphs are separated by single newlines."""

    article_id: str
    source: Source
    text: str
    extraction: Extraction
    language: Language | None = None
    title: str | None = None
    authors: tuple[str, ...] = ()
    published: str | None = None
    site_name: str | None = None
    url: str | None = None
    description: str | None = None
    # The source's date when it was not usable (see pipeline/dates.py), and why.
    published_raw: str | None = None
    published_status: str = "missing"

    @property
    def word_count(self) -> int:
        return count_words(self.text)


@dataclass(frozen=True, slots=True)
class Mention:
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Entity:
    """One canonical entity of an article with all its mentions."""

    key: str
    name: str
    label: str
    coarse_label: str
    count: int
    first_offset: int
    salience: float
    mentions: tuple[Mention, ...] = field(default_factory=tuple)
    # A stable id of the place it names (`places.place_id`), for places only.
    place_id: str | None = None


@dataclass(frozen=True, slots=True)
class EntityResult:
    entities: tuple[Entity, ...]
    status: str  # ok | skipped_language | empty
    model: str


@dataclass(frozen=True, slots=True)
class StoryAssignment:
    story_id: str
    duplicate_of: str | None
    duplicate_similarity: float | None
    story_score: float | None
    is_new_story: bool

    def __reduce__(self) -> tuple[Any, ...]:  # positional: fast to unpickle (index snapshots)
        return StoryAssignment, (
            self.story_id,
            self.duplicate_of,
            self.duplicate_similarity,
            self.story_score,
            self.is_new_story,
        )


def utc_now_iso() -> str:
    """Return the current UTC time as an RFC 3339 string with millisecond precision."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def raw_headers(raw: RawArticle) -> list[tuple[str, bytes]]:
    """Return the Kafka headers that carry a raw article's provenance."""
    src = raw.source
    headers = [
        (H_ARTICLE_ID, raw.article_id.encode()),
        (H_SOURCE_PATH, src.path.encode()),
        (H_OUTLET, src.outlet.encode()),
        (
            H_CONTENT_TYPE,
            (f"{src.content_type}; charset={src.charset}" if src.charset else src.content_type).encode(),
        ),
        (H_RECEIVED_AT, src.received_at.encode()),
    ]
    if src.url:
        headers.append((H_URL, src.url.encode()))
    if src.revision_of:
        headers.append((H_REVISION_OF, src.revision_of.encode()))
    return headers


Headers = Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None


def decode_headers(headers: Headers, errors: str = "replace") -> dict[str, str]:
    """Return Kafka headers as text (the last value of a repeated name wins).

    `errors="strict"` raises UnicodeDecodeError for a value that is not UTF-8.
    """
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    return {k: (v.decode(errors=errors) if isinstance(v, bytes) else str(v)) for k, v in items}


def raw_from_message(
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    fallback_id: str = "",
    timestamp: float | None = None,
) -> RawArticle | Rejection:
    """Rebuild a RawArticle from a Kafka message, or reject it if its provenance is unusable.

    The article id is the article-id header, else the key, else `fallback_id` (where the message
    was read: the same on every delivery). The received time is the received-at header's, else
    the message's `timestamp` (`dates.checked_received`).
    """
    try:
        h = decode_headers(headers, errors="strict")
    except UnicodeDecodeError:
        bad = [k for k, v in decode_headers(headers).items() if "\ufffd" in v]
        return Rejection("decode", "bad_headers", f"header {bad[0] if bad else '?'!r} is not UTF-8")
    article_id = message_article_id(key, h, fallback_id)
    if not article_id:
        return Rejection("decode", "bad_headers", "message has neither a key nor an article-id header")
    content_type, _, params = h.get(H_CONTENT_TYPE, "").partition(";")
    content_type = content_type.strip().lower()
    charset = params.strip().removeprefix("charset=").strip("\"' ") if "charset=" in params else None
    if content_type not in CONTENT_TYPES:
        return Rejection(
            "decode", "unsupported_type", f"content-type {content_type!r} is not one of {CONTENT_TYPES}"
        )
    source = Source(
        path=h.get(H_SOURCE_PATH, ""),
        outlet=h.get(H_OUTLET) or UNKNOWN_OUTLET,
        content_type=content_type,
        received_at=checked_received(h.get(H_RECEIVED_AT), timestamp),
        url=h.get(H_URL) or None,
        charset=charset or None,
        revision_of=h.get(H_REVISION_OF) or None,
    )
    return RawArticle(article_id=article_id, payload=value or b"", source=source)


def message_article_id(key: bytes | None, headers: Mapping[str, str], fallback_id: str = "") -> str:
    """Return a message's article id: its article-id header, else its key, else `fallback_id`.

    The one rule for every path an input can take (enriched or dead-lettered), so that a
    redelivered input is recognised whichever path it takes the second time.
    """
    return headers.get(H_ARTICLE_ID) or (key.decode(errors="replace") if key else "") or fallback_id


def replay_count(headers: Mapping[str, str]) -> int:
    """Return the replay count a message's headers carry (0 for a first delivery or a bad value)."""
    try:
        return max(0, int(headers.get(H_REPLAY_COUNT, "0")))
    except ValueError:
        return 0


# What a dead letter needs besides its payload: the bounded headers, detail and key below, even if
# JSON escapes every character of them (6 bytes each), and the envelope that carries it to the writer.
DEAD_LETTER_OVERHEAD_BYTES = 512 * 1024
MAX_HEADERS, MAX_HEADER_NAME, MAX_HEADER_VALUE, MAX_DETAIL, MAX_KEY = 32, 128, 1024, 4096, 1024


def max_dead_letter_payload(max_message_bytes: int) -> int:
    """Return the most original bytes a dead letter can carry within a message limit."""
    return max(0, (max_message_bytes - DEAD_LETTER_OVERHEAD_BYTES) * 3 // 4)


def dead_letter_record(
    rejection: Rejection,
    payload: bytes,
    key: bytes | None,
    headers: Mapping[str, str] | None = None,
    *,
    origin: Origin | None = None,
    max_payload_bytes: int | None = None,
    failed_at: str | None = None,
) -> dict[str, Any]:
    """Return the dead-letter record: the reason, where the input was read, and its bytes.

    The bytes are base64-encoded, cut to `max_payload_bytes` so the record always fits in a
    message (`payload_truncated` says so; `payload_sha256` and `payload_bytes` describe the
    whole input, whose full copy stays at `origin` for the topic's retention). Header values and
    the detail are bounded too: no input can make its own dead letter unsendable.
    """
    kept = payload if max_payload_bytes is None else payload[:max_payload_bytes]
    bounded_headers = {
        k[:MAX_HEADER_NAME]: v[:MAX_HEADER_VALUE] for k, v in list((headers or {}).items())[:MAX_HEADERS]
    }
    return {
        "schema_version": DEAD_LETTER_SCHEMA_VERSION,
        "stage": rejection.stage,
        "reason": rejection.reason,
        "detail": rejection.detail[:MAX_DETAIL],
        "key": key.decode(errors="replace")[:MAX_KEY] if key else None,
        "headers": bounded_headers,
        "payload_base64": base64.b64encode(kept).decode("ascii"),
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "payload_truncated": len(kept) < len(payload),
        "origin": origin.as_dict() if origin else None,
        "replay_count": replay_count(bounded_headers),
        "failed_at": failed_at or utc_now_iso(),
    }


def _entity_dict(e: Entity) -> dict[str, Any]:
    return {
        "key": e.key,
        "name": e.name,
        "label": e.label,
        "coarse_label": e.coarse_label,
        "count": e.count,
        "first_offset": e.first_offset,
        "salience": round(e.salience, 4),
        "mentions": [[m.start, m.end] for m in e.mentions],
        "place_id": e.place_id,
    }


def article_fields(article: CleanArticle, entities: EntityResult | None = None) -> dict[str, Any]:
    """Return what the per-article stages found, as the enriched record's fields (see `enriched_record`)."""
    lang = article.language
    ex = article.extraction
    return {
        "article_id": article.article_id,
        "source": article.source.as_dict(),
        "title": article.title,
        "authors": list(article.authors),
        "published": article.published,
        "published_raw": article.published_raw,
        "published_status": article.published_status,
        "site_name": article.site_name,
        "url": article.url,
        "description": article.description,
        "language": {"code": lang.code, "confidence": round(lang.confidence, 4)} if lang else None,
        "text": article.text,
        "word_count": article.word_count,
        "extraction": {
            "method": ex.method,
            "status": ex.status,
            "input_bytes": ex.input_bytes,
            "encoding": ex.encoding,
            "boilerplate_removed": ex.boilerplate_removed,
            "reason": ex.reason,
        },
        "entities": [_entity_dict(e) for e in entities.entities] if entities else [],
        "entities_status": entities.status if entities else "not_run",
        "entities_model": entities.model if entities else None,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def enriched_record(
    fields: Mapping[str, Any], story: StoryAssignment | None, processed_at: str | None = None
) -> dict[str, Any]:
    """Return the output-topic record (schemas/enriched-article.schema.json) for one article.

    The one builder of that record: `fields` from `article_fields` (made where the article was
    cleaned, carried to the single writer), `story` from the dedup decision (None: a page with
    no article text, which belongs to no story).
    """
    return {
        "schema_version": ENRICHED_SCHEMA_VERSION,
        **fields,
        "story_id": story.story_id if story else None,
        "duplicate_of": story.duplicate_of if story else None,
        "duplicate_similarity": _rounded(story.duplicate_similarity) if story else None,
        "story_score": _rounded(story.story_score) if story else None,
        "processed_at": processed_at or utc_now_iso(),
    }


def assignment_dict(a: StoryAssignment) -> dict[str, Any]:
    return dataclasses.asdict(a)


def assignment_from_dict(d: Mapping[str, Any]) -> StoryAssignment:
    return StoryAssignment(
        story_id=str(d["story_id"]),
        duplicate_of=d.get("duplicate_of"),
        duplicate_similarity=d.get("duplicate_similarity"),
        story_score=d.get("story_score"),
        is_new_story=bool(d.get("is_new_story")),
    )


# A story record lists at most this many members (the first and the latest), so that it fits in a
# message however big the story grows; member_count says how many there are.
MAX_STORY_MEMBERS = 200


def first_members(story: Story) -> tuple[str, ...]:
    """Return the first MAX_STORY_MEMBERS/2 members a story's records list: those of its opening
    (the first members, once some have aged out), then of its members."""
    return first_unique(itertools.chain(story.opening, story.members))


def first_unique(ids: Iterable[str], n: int = MAX_STORY_MEMBERS // 2) -> tuple[str, ...]:
    """Return the first n distinct ids, reading no further."""
    seen: dict[str, None] = {}
    for i in ids:
        if len(seen) == n:
            break
        seen.setdefault(i)
    return tuple(seen)


def bounded_members(members: list[str], first: Sequence[str] = ()) -> list[str]:
    """Return a story's members, or its first and latest MAX_STORY_MEMBERS/2 when there are more
    or when `first` (the first members of a story whose first ones aged out) is given."""
    half = MAX_STORY_MEMBERS // 2
    if not first:
        return list(members) if len(members) <= MAX_STORY_MEMBERS else [*members[:half], *members[-half:]]
    listed = set(first)
    latest = [m for m in itertools.islice(reversed(members), half + len(first)) if m not in listed]
    return [*first, *reversed(latest[:half])]


def _iso(ts: float) -> str | None:
    if not ts:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def story_record(
    story: Story, top_entities: int = 10, closed_at: str | None = None, merged_into: str | None = None
) -> dict[str, Any]:
    """Return the stories-topic record (schemas/story.schema.json) of a story's current state.

    With `closed_at`, the story's final record: the window has closed it, or (`merged_into`)
    another story has taken it in, and no article joins it.
    """
    top = sorted(story.entities.pairs(), key=lambda kv: -kv[1])[:top_entities]
    lineage: dict[str, Any] = {}
    if merged_into:
        lineage["merged_into"] = merged_into
    if story.merged_from:
        lineage["merged_from"] = list(story.merged_from)
    if story.split_from:
        lineage["split_from"] = story.split_from
    if story.split_into:
        lineage["split_into"] = list(story.split_into)
    return {
        "schema_version": STORY_SCHEMA_VERSION,
        "story_id": story.story_id,
        "headline": story.headline,
        "first_seen": _iso(story.first_seen),
        "last_seen": _iso(story.last_seen),
        # One record per change: each member joining, a split (`Story.revisions`), then the close.
        "version": len(story.members) + story.aged_out + story.revisions + (1 if closed_at else 0),
        "member_count": len(story.members) + story.aged_out,
        "members": bounded_members(story.members, first_members(story) if story.opening else ()),
        "outlets": list(story.outlets),
        "top_entities": [k for k, _ in top],
        "status": "closed" if closed_at else "open",
        "closed_at": closed_at,
        "updated_at": closed_at or utc_now_iso(),
        **lineage,
    }


def latest(entries: Iterable[tuple[bytes, bytes | None]]) -> dict[bytes, bytes]:
    """Return a compacted topic's live records: the latest value of each key, in the order written."""
    live: dict[bytes, bytes] = {}
    for key, value in entries:
        # The latest record of a key wins, at the place it was written (as compaction keeps it).
        live.pop(key, None)
        if value is not None:
            live[key] = value
    return live
