"""The stories view's state: the output topics folded into an SQLite database (pure: records in,
query results out; no Kafka, no HTTP).

SQLite (the standard library's, on disk) rather than dicts in memory: the view keeps every
enriched record it may be asked for, and a database on disk holds them in bounded memory (its page
cache) with indexes for each query the API answers. It also keeps the topics' offsets in the same
transactions as the rows, so a restarted view resumes where it stopped.

Story order is newest first by `last_seen`, then `story_id`; pages are keyset cursors over that
order, so stories inserted while a client pages never shift or repeat the pages it has not read. A
story that gains a member while a client pages moves to the top: a client that has passed it sees
it again only from the first page (which is what a front page shows).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsflow.pipeline import jsonio
from newsflow.pipeline.names import entity_key, without_legal_form
from newsflow.pipeline.places import country_key

log = logging.getLogger("newsflow.web")
# Stories looked at, at most, to find those a story descends from (`StoryStore._lineage_above`).
_MAX_LINEAGE = 10_000


SCHEMA = """
CREATE TABLE IF NOT EXISTS stories (
    story_id TEXT PRIMARY KEY,
    headline TEXT NOT NULL,
    first_seen TEXT,
    last_seen TEXT NOT NULL,        -- '' when unknown, so that the list's order can use the index
    member_count INTEGER NOT NULL,
    outlet_count INTEGER NOT NULL,
    outlets TEXT NOT NULL,          -- JSON array
    top_entities TEXT NOT NULL,     -- JSON array of entity keys
    status TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at TEXT
);
CREATE INDEX IF NOT EXISTS stories_by_time ON stories (last_seen DESC, story_id DESC);
CREATE INDEX IF NOT EXISTS stories_by_update ON stories (updated_at);  -- the retention's
CREATE TABLE IF NOT EXISTS articles (
    article_id TEXT PRIMARY KEY,
    story_id TEXT,
    outlet TEXT NOT NULL,
    title TEXT,
    url TEXT,
    published TEXT,
    lang TEXT,
    duplicate_of TEXT,
    processed_at TEXT,
    record BLOB NOT NULL            -- the enriched record, as published
);
CREATE INDEX IF NOT EXISTS articles_by_story ON articles (story_id, processed_at);
CREATE INDEX IF NOT EXISTS articles_by_outlet ON articles (outlet, story_id);
CREATE INDEX IF NOT EXISTS articles_by_lang ON articles (lang, story_id);
CREATE INDEX IF NOT EXISTS articles_by_processing ON articles (processed_at);  -- the retention's
CREATE TABLE IF NOT EXISTS entities (
    key TEXT NOT NULL,
    article_id TEXT NOT NULL,
    story_id TEXT,
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    PRIMARY KEY (article_id, key)
);
CREATE INDEX IF NOT EXISTS entities_by_key ON entities (key, story_id);
CREATE INDEX IF NOT EXISTS entities_by_story ON entities (story_id, key);
-- Merges and splits from the stories topic: each one as seen from both stories.
CREATE TABLE IF NOT EXISTS lineage (
    story_id TEXT NOT NULL,
    event TEXT NOT NULL,            -- merged_into | merged_from | split_from | split_into
    other TEXT NOT NULL,
    at TEXT,
    PRIMARY KEY (story_id, event, other)
);
CREATE INDEX IF NOT EXISTS lineage_by_other ON lineage (other);  -- the retention's
-- Articles a split moved to another story than the one their record was published with (the
-- members listed by the records of a story split from another): the story that lists them now.
CREATE TABLE IF NOT EXISTS moves (
    article_id TEXT PRIMARY KEY,
    story_id TEXT NOT NULL
);
-- Articles sent again once their story had let them go (past the story window), decided again
-- into another story: the story that listed them before, which still does (its records say so).
CREATE TABLE IF NOT EXISTS earlier (
    story_id TEXT NOT NULL,
    article_id TEXT NOT NULL,
    PRIMARY KEY (story_id, article_id)
);
CREATE INDEX IF NOT EXISTS earlier_by_article ON earlier (article_id);
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""

MAX_LIMIT = 200
# Where `StoryStore.prune` goes on from: the (processed_at, rowid) of the last article it deleted.
PruneCursor = tuple[str, int]
# The stories the retention keeps though not updated since :before: those linked by merges and
# splits, at any remove, to one that was (lineage holds each link from both sides; it is small).
_LINKED_TO_KEPT = (
    "WITH RECURSIVE linked(story_id) AS ("
    # CROSS JOIN: SQLite reads lineage first (the few links), not every story updated since.
    "SELECT l.other FROM lineage AS l CROSS JOIN stories AS s ON s.story_id = l.story_id "
    "WHERE s.updated_at >= :before "
    "UNION SELECT l.other FROM lineage AS l JOIN linked AS k ON l.story_id = k.story_id) "
)


def query_entity_key(name: str) -> str:
    """Return the key records give the entity a query names: "U.S.", "USA", "America" are the
    records' `united states`, and "Sony Corp." their `sony`, as the entity stage keys them."""
    key = entity_key(without_legal_form(name, typed=True))
    return country_key(key) or key


def _current_story(table: str, alias: str, condition: str) -> str:
    """Return the clause: the story, or a story merged into it (articles keep the story id they
    were published with), has a row of `table` meeting `condition`."""
    return (
        f"s.story_id IN (SELECT COALESCE(l.story_id, {alias}.story_id) FROM {table} {alias} "  # noqa: S608
        f"LEFT JOIN lineage l ON l.event = 'merged_from' AND l.other = {alias}.story_id WHERE {condition})"
    )


# The story list's filters: parameter -> its clause over `stories s` (one bound value each).
FILTERS = {
    "min_outlets": "s.outlet_count >= ?",
    "since": "s.last_seen >= ?",
    "until": "s.first_seen <= ?",
    "entity": _current_story("entities", "e", "e.key = ?"),
    "outlet": _current_story("articles", "a", "a.outlet = ?"),
    "lang": _current_story("articles", "a", "a.lang = ?"),
}
MAX_OUTLETS = 10_000


class BadQuery(ValueError):
    """A query parameter the API cannot take (answered with 400 and this message)."""


@dataclass(frozen=True, slots=True)
class StoryQuery:
    since: str | None = None  # RFC 3339: stories last seen at or after
    until: str | None = None  # stories first seen at or before
    entity: str | None = None  # an entity key
    outlet: str | None = None
    lang: str | None = None
    min_outlets: int = 1
    limit: int = 50
    cursor: str | None = None


def encode_cursor(last_seen: str | None, story_id: str) -> str:
    return base64.urlsafe_b64encode(jsonio.dumps([last_seen or "", story_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        last_seen, story_id = jsonio.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return str(last_seen), str(story_id)
    except Exception as exc:  # noqa: BLE001 - any garbage is the client's mistake
        raise BadQuery("cursor is not one this API returned") from exc


# An entity's name across the articles that name it: one written as prose writes it before one
# in capitals (a dateline's "PARIS" sorts before "Paris"), then the first in byte order.
_DISPLAY_NAME = "COALESCE(MIN(CASE WHEN name <> UPPER(name) THEN name END), MIN(name))"


def _story_row(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "story_id": row["story_id"],
        "headline": row["headline"],
        "first_seen": row["first_seen"],
        "last_seen": row["last_seen"] or None,
        "member_count": row["member_count"],
        "outlets": jsonio.loads(row["outlets"]),
        "top_entities": jsonio.loads(row["top_entities"]),
        "status": row["status"],
        "version": row["version"],
    }


class StoryStore:
    """Enriched and story records in, the API's answers out."""

    def __init__(self, path: Path | str = ":memory:") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA cache_size=-32000")  # at most about 32 MB of pages in memory
        self.db.executescript(SCHEMA)
        self.skipped = 0

    def close(self) -> None:
        self.db.close()

    # -- records in ------------------------------------------------------------------------------

    def apply(
        self,
        records: Iterable[tuple[str, Mapping[str, Any] | None]],
        offsets: Mapping[tuple[str, int], int] | None = None,
    ) -> int:
        """Fold records (kind "enriched" or "story", JSON or None for a tombstone) and the topics'
        next offsets in one transaction; return how many records were applied (a record that
        cannot be read is skipped and counted in `skipped`)."""
        n = 0
        with self._transaction():
            for kind, record in records:
                if record is None:  # a tombstone: the view keeps the story as history
                    continue
                # One record that is not what the schema says must not hold up the rest (nor
                # the offsets after it): it is skipped and counted, alone.
                self.db.execute("SAVEPOINT record")
                try:
                    if kind == "enriched":
                        self._enriched(record)
                    elif kind == "story":
                        self._story(record)
                    n += 1
                except (KeyError, TypeError, ValueError, AttributeError, sqlite3.Error) as exc:
                    self.db.execute("ROLLBACK TO record")
                    self.skipped += 1
                    log.warning("skipped a %s record the view cannot read: %r", kind, exc)
                self.db.execute("RELEASE record")
            for (topic, partition), offset in (offsets or {}).items():
                self.db.execute(
                    "INSERT INTO offsets VALUES (?, ?, ?) ON CONFLICT (topic, partition) "
                    "DO UPDATE SET next_offset = excluded.next_offset",
                    (topic, partition, offset),
                )
        return n

    def offsets(self) -> dict[tuple[str, int], int]:
        """Return where to resume reading each topic partition."""
        rows = self.db.execute("SELECT topic, partition, next_offset FROM offsets")
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _enriched(self, r: Mapping[str, Any]) -> None:
        if not isinstance(r, Mapping):
            raise TypeError(f"not an object: {type(r).__name__}")
        article_id = str(r["article_id"])
        source = r.get("source") or {}
        # A split may have moved it before its record was read (the topics are read apart): if
        # its record names a story the split one descends from. One naming another (the article
        # sent again once that story had let it go, now in another story) is its story of now.
        moved = self.db.execute("SELECT story_id FROM moves WHERE article_id = ?", (article_id,)).fetchone()
        story_id = r.get("story_id")
        if moved and story_id in self._lineage_above(moved["story_id"]):
            story_id = moved["story_id"]
        elif moved:
            self.db.execute("DELETE FROM moves WHERE article_id = ?", (article_id,))
        before = self.db.execute(
            "SELECT story_id FROM articles WHERE article_id = ?", (article_id,)
        ).fetchone()
        if before is not None and before["story_id"] not in (None, story_id):
            # Sent again and decided again: the story it was in still lists it (a redelivered
            # record names the same story; a split's move is the story's own, above).
            self.db.execute("INSERT OR IGNORE INTO earlier VALUES (?, ?)", (before["story_id"], article_id))
        self.db.execute("DELETE FROM earlier WHERE story_id = ? AND article_id = ?", (story_id, article_id))
        self.db.execute(
            "INSERT OR REPLACE INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                article_id,
                story_id,
                str(source.get("outlet") or "unknown"),
                r.get("title"),
                r.get("url"),
                r.get("published"),
                (r.get("language") or {}).get("code"),
                r.get("duplicate_of"),
                r.get("processed_at"),
                jsonio.dumps(dict(r)),
            ),
        )
        self.db.execute("DELETE FROM entities WHERE article_id = ?", (article_id,))
        self.db.executemany(
            "INSERT OR IGNORE INTO entities VALUES (?, ?, ?, ?, ?)",
            [
                (
                    str(e["key"]),
                    article_id,
                    story_id,
                    str(e.get("name") or e["key"]),
                    str(e["label"]),
                )
                for e in r.get("entities") or ()
                if e.get("key")
            ],
        )

    def _story(self, r: Mapping[str, Any]) -> None:
        if not isinstance(r, Mapping):
            raise TypeError(f"not an object: {type(r).__name__}")
        # A record older than the one kept (a redelivery, or out of order) changes nothing.
        version = int(r.get("version") or r.get("member_count") or 1)
        outlets = list(r.get("outlets") or ())
        current = self.db.execute(
            "INSERT INTO stories VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (story_id) DO UPDATE SET headline = excluded.headline, "
            "first_seen = excluded.first_seen, last_seen = excluded.last_seen, "
            "member_count = excluded.member_count, outlet_count = excluded.outlet_count, "
            "outlets = excluded.outlets, top_entities = excluded.top_entities, status = excluded.status, "
            "version = excluded.version, updated_at = excluded.updated_at "
            "WHERE excluded.version >= stories.version",
            (
                str(r["story_id"]),
                str(r.get("headline") or ""),
                r.get("first_seen"),
                r.get("last_seen") or "",
                int(r.get("member_count") or 0),
                len(outlets),
                jsonio.dumps(outlets).decode(),
                jsonio.dumps(list(r.get("top_entities") or ())).decode(),
                str(r.get("status") or "open"),
                version,
                r.get("updated_at"),
            ),
        )
        story_id, at = str(r["story_id"]), r.get("updated_at")
        merges = [(story_id, "merged_from", str(other), at) for other in r.get("merged_from") or ()]
        if r.get("merged_into"):
            into = str(r["merged_into"])
            merges += [(story_id, "merged_into", into, at), (into, "merged_from", story_id, at)]
        if r.get("split_from"):
            parent = str(r["split_from"])
            merges += [(story_id, "split_from", parent, at), (parent, "split_into", story_id, at)]
            # Its latest record (the stories topic has one partition: records come in the order
            # written): the members it lists are its own now. A story that had more than
            # MAX_STORY_MEMBERS at the split lists its first and latest only (records.bounded_members).
            if current.rowcount:
                self._moved(story_id, parent, [str(m) for m in r.get("members") or ()])
        self.db.executemany("INSERT OR IGNORE INTO lineage VALUES (?, ?, ?, ?)", merges)
        # A story the survivor lists is hidden even if its own last record was not seen (its
        # direct survivor, when that record was, is the one it names).
        self.db.executemany(
            "INSERT OR IGNORE INTO lineage SELECT ?, 'merged_into', ?, ? WHERE NOT EXISTS "
            "(SELECT 1 FROM lineage WHERE story_id = ? AND event = 'merged_into')",
            [(other, story_id, at, other) for other in r.get("merged_from") or ()],
        )

    def _moved(self, story_id: str, parent: str, members: list[str]) -> None:
        """Record that a split story's members are its own, whatever story their records named
        before: one of those it descends from (`parent` and its own lineage). A member whose
        record names another story was sent again later and is there now (an opening member a
        long-running story still lists after it let it go), and listed by this one too."""
        above = {story_id} | self._lineage_above(parent)
        placeholders = ",".join("?" * len(members))
        elsewhere = {
            row["article_id"]
            for row in self.db.execute(
                f"SELECT article_id, story_id FROM articles WHERE article_id IN ({placeholders})",  # noqa: S608
                members,
            )
            if row["story_id"] not in above
        }
        moving = [(story_id, m) for m in members if m not in elsewhere]
        # Those it lists that are elsewhere now were its members before they were sent again; the
        # stories it split from (or took in) no longer list any of them.
        self.db.executemany("INSERT OR IGNORE INTO earlier VALUES (?, ?)", [(story_id, m) for m in elsewhere])
        self.db.executemany(
            "DELETE FROM earlier WHERE story_id = ? AND article_id = ?",
            [(s, m) for s in above - {story_id} for m in members],
        )
        self.db.executemany("INSERT OR REPLACE INTO moves (story_id, article_id) VALUES (?, ?)", moving)
        for table in ("articles", "entities"):
            self.db.executemany(
                f"UPDATE {table} SET story_id = ? WHERE article_id = ?",  # noqa: S608 - fixed names
                moving,
            )

    def _lineage_above(self, story_id: str) -> set[str]:
        """Return a story and every story whose members it may hold: the one it split from, those
        it absorbed, and theirs in turn."""
        found, todo = {story_id}, [story_id]
        while todo and len(found) < _MAX_LINEAGE:
            for row in self.db.execute(
                "SELECT other FROM lineage WHERE story_id = ? AND event IN ('split_from', 'merged_from')",
                (todo.pop(),),
            ):
                if row["other"] not in found:
                    found.add(row["other"])
                    todo.append(row["other"])
        return found

    # -- answers out ----------------------------------------------------------------------------

    def stories(self, q: StoryQuery) -> tuple[list[dict[str, Any]], str | None]:
        """Return one page of stories, newest first, and the cursor of the next page (or None)."""
        if not 1 <= q.limit <= MAX_LIMIT:
            raise BadQuery(f"limit must be between 1 and {MAX_LIMIT}")
        if not 1 <= q.min_outlets <= MAX_OUTLETS:
            raise BadQuery(f"min_outlets must be between 1 and {MAX_OUTLETS}")
        entity = query_entity_key(q.entity) if q.entity else None
        if q.entity and not entity:  # "%" or "...": a filter that would filter nothing
            raise BadQuery("entity has no letters or digits")
        values = {
            "min_outlets": q.min_outlets,
            "since": q.since,
            "until": q.until,
            "entity": entity,
            "outlet": q.outlet,
            "lang": q.lang.lower() if q.lang else None,  # records carry ISO 639-1 in lower case
        }
        where = [clause for name, clause in FILTERS.items() if values[name]]
        args: list[object] = [values[name] for name in FILTERS if values[name]]
        # A story merged into another is listed as that one (its page still answers).
        where.append("s.story_id NOT IN (SELECT l.story_id FROM lineage l WHERE l.event = 'merged_into')")
        if q.cursor:
            last_seen, story_id = decode_cursor(q.cursor)
            where.append("(s.last_seen, s.story_id) < (?, ?)")
            args += [last_seen, story_id]
        rows = self.db.execute(
            f"SELECT * FROM stories s WHERE {' AND '.join(where)} "  # noqa: S608 - fixed clauses, bound values
            "ORDER BY s.last_seen DESC, s.story_id DESC LIMIT ?",
            [*args, q.limit + 1],
        ).fetchall()
        page = [_story_row(r) for r in rows[: q.limit]]
        more = len(rows) > q.limit
        cursor = encode_cursor(page[-1]["last_seen"], page[-1]["story_id"]) if more and page else None
        return page, cursor

    def story(self, story_id: str) -> dict[str, Any] | None:
        """Return a story with all its members (copies under the report they copy, and the members
        of the stories merged into it), its entities and its lineage."""
        row = self.db.execute("SELECT * FROM stories WHERE story_id = ?", (story_id,)).fetchone()
        if row is None:
            return None
        story = _story_row(row)
        lineage = [
            {"event": r["event"], "story_id": r["other"], "at": r["at"]}
            for r in self.db.execute(
                "SELECT event, other, at FROM lineage WHERE story_id = ? ORDER BY at, other", (story_id,)
            )
        ]
        ids = [story_id, *(m["story_id"] for m in lineage if m["event"] == "merged_from")]
        marks = ", ".join("?" * len(ids))
        members = [
            {
                "article_id": m["article_id"],
                "outlet": m["outlet"],
                "title": m["title"],
                "url": m["url"],
                "published": m["published"],
                "lang": m["lang"],
                "copy_of": m["duplicate_of"],
                "revision_of": m["revision_of"],
                "processed_at": m["processed_at"],
            }
            for m in self.db.execute(
                # The version an outlet's report revises, read from its record (no column: a
                # store kept from before it was shown needs no migration).
                "SELECT *, json_extract(CAST(record AS TEXT), '$.source.revision_of') AS revision_of "
                f"FROM articles WHERE story_id IN ({marks}) "  # noqa: S608 - placeholders only
                # ... and those sent again since into another story, shown as their latest record.
                f"OR article_id IN (SELECT article_id FROM earlier WHERE story_id IN ({marks})) "
                "ORDER BY processed_at, article_id",
                [*ids, *ids],
            )
        ]
        story["members"] = members
        story["entities"] = [
            {"key": e["key"], "name": e["name"], "label": e["label"], "articles": e["n"]}
            for e in self.db.execute(
                f"SELECT key, {_DISPLAY_NAME} AS name, MIN(label) AS label, COUNT(*) AS n FROM entities "  # noqa: S608
                f"WHERE story_id IN ({marks}) "
                # ... and those of its members sent again since into another story, as listed above.
                f"OR article_id IN (SELECT article_id FROM earlier WHERE story_id IN ({marks})) "
                "GROUP BY key ORDER BY n DESC, key LIMIT 50",
                [*ids, *ids],
            )
        ]
        story["lineage"] = lineage
        return story

    def article(self, article_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT record FROM articles WHERE article_id = ?", (article_id,)).fetchone()
        return None if row is None else dict(jsonio.loads(row["record"]))

    def entities(self, q: str, limit: int = 50) -> list[dict[str, Any]]:
        """Return entity keys starting with `q` (case-insensitive), most mentioned first, with their stories;
        a `q` that names a country by another of its names ("U.S.", "USA") finds its key too."""
        if not q.strip():
            raise BadQuery("q is required")
        if not 1 <= limit <= MAX_LIMIT:
            raise BadQuery(f"limit must be between 1 and {MAX_LIMIT}")
        prefix = entity_key(q)
        if not prefix:
            raise BadQuery("q has no letters or digits")
        rows = self.db.execute(
            f"SELECT key, {_DISPLAY_NAME} AS name, MIN(label) AS label, COUNT(*) AS articles, "  # noqa: S608
            "COUNT(DISTINCT story_id) AS stories FROM entities WHERE (key >= ? AND key < ?) OR key = ? "
            "GROUP BY key ORDER BY articles DESC, key LIMIT ?",
            # Keys compare as UTF-8 bytes: the highest code point bounds every key the prefix starts.
            (prefix, prefix + "\U0010ffff", query_entity_key(q), limit),
        ).fetchall()
        out = []
        for r in rows:
            story_ids = [
                s["story_id"]
                for s in self.db.execute(
                    "SELECT DISTINCT story_id FROM entities WHERE key = ? AND story_id IS NOT NULL "
                    "ORDER BY story_id DESC LIMIT 20",
                    (r["key"],),
                )
            ]
            out.append(
                {
                    "key": r["key"],
                    "name": r["name"],
                    "label": r["label"],
                    "articles": r["articles"],
                    "stories": r["stories"],
                    "story_ids": story_ids,
                }
            )
        return out

    def prune(
        self, before: str, limit: int = 5000, after: PruneCursor | None = None
    ) -> tuple[int, PruneCursor | None]:
        """Delete what was last written before `before` (RFC 3339, as records write times): up to
        `limit` articles processed before it, oldest first from `after`, with their entities,
        unless their story is kept; once fewer are left, the stories not kept that have no article
        left, with their lineage. A story is kept if it, or a story it is linked to by a merge or
        split (at any remove), was updated since: a story's page lists the members of the stories
        merged into it. Return how many articles were deleted and where to go on from (None: done)."""
        at, rowid = after or ("", 0)
        with self._transaction():
            rows = self.db.execute(
                _LINKED_TO_KEPT + "SELECT rowid, processed_at, article_id FROM articles AS a "
                "WHERE processed_at < :before AND (processed_at, rowid) > (:at, :rowid) AND NOT EXISTS "
                "(SELECT 1 FROM stories AS s WHERE s.story_id = a.story_id AND s.updated_at >= :before) "
                "AND COALESCE(a.story_id, '') NOT IN linked ORDER BY processed_at, rowid LIMIT :limit",
                {"before": before, "at": at, "rowid": rowid, "limit": limit},
            ).fetchall()
            doomed = [(r["article_id"],) for r in rows]
            for table in ("articles", "entities", "moves", "earlier"):
                self.db.executemany(f"DELETE FROM {table} WHERE article_id = ?", doomed)  # noqa: S608 - fixed names
            if limit > 0 and len(rows) == limit:  # more to come: the stories once at the end
                return limit, (rows[-1]["processed_at"], rows[-1]["rowid"])
            gone = self.db.execute(
                _LINKED_TO_KEPT
                + "DELETE FROM stories AS s WHERE (updated_at IS NULL OR updated_at < :before) "
                "AND story_id NOT IN linked AND NOT EXISTS (SELECT 1 FROM articles AS a WHERE a.story_id = s.story_id) "
                "RETURNING story_id",
                {"before": before},
            ).fetchall()
            # Their links, both sides (a story kept for an article whose story record is still to
            # come may name one), and the moves into them; links to stories yet to come stay.
            ids = [(r["story_id"],) for r in gone]
            self.db.executemany("DELETE FROM lineage WHERE story_id = ?", ids)
            self.db.executemany("DELETE FROM lineage WHERE other = ?", ids)
            self.db.executemany("DELETE FROM moves WHERE story_id = ?", ids)
            self.db.executemany("DELETE FROM earlier WHERE story_id = ?", ids)
        return len(rows), None

    def counts(self) -> dict[str, int]:
        one = self.db.execute(
            "SELECT (SELECT COUNT(*) FROM stories) AS stories, (SELECT COUNT(*) FROM articles) AS articles"
        ).fetchone()
        return {"stories": one["stories"], "articles": one["articles"]}
