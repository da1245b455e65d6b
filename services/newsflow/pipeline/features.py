"""Dedup features: what the story index compares of an article, computed per article in parallel.

`article_features` turns a cleaned, tagged article into compact `StoryFeatures`: a sentence
embedding of its headline and lead, weighted salient terms and entity keys, quote shingles, a
MinHash signature of its 5-word shingles and its timestamps. They travel on the features topic to
the single writer (`dedup.StoryIndex`), which needs nothing else of the article.

Term weights use a static background IDF (wordfreq's Zipf frequencies), not one learned from the
stream, so a decision never depends on which articles happened to arrive first.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
from datasketch import MinHash
from spacy.lang.en.stop_words import STOP_WORDS
from wordfreq import zipf_frequency

from newsflow.pipeline.dates import parse_datetime
from newsflow.pipeline.embed import DIM as EMBEDDING_DIM
from newsflow.pipeline.embed import quantize
from newsflow.pipeline.entities import strip_possessive
from newsflow.pipeline.headline import untitled_headline as untitled_headline
from newsflow.pipeline.lsh import signature_values
from newsflow.pipeline.options import STORY_THRESHOLD as STORY_THRESHOLD
from newsflow.pipeline.options import DedupOptions as DedupOptions
from newsflow.pipeline.records import CleanArticle, EntityResult

NUM_PERM = 64
# 32-bit permutations: a bijection (no collision bias on long texts) and 4 bytes per value.
MINHASH_SCHEME = "affine32"
SHINGLE_WORDS = 5
# Weights of entity types: nationalities ("Russian") and products say less about the event
# than who, which organisation and where.
ENTITY_TYPE_WEIGHT = {"PER": 1.0, "ORG": 1.0, "LOC": 1.0, "MISC": 0.6}
NORP_WEIGHT = 0.4
# Salient words lead to candidate stories (the inverted index); the embedding decides.
MAX_TERMS = 15
# Longer "words" are run-together URLs, hashes or markup, not vocabulary an event is told in.
MAX_TERM_CHARS = 24
LEAD_WORDS = 30
# Outlets reproduce quotes verbatim; six words in a row rule out stock phrases ("we will not let").
QUOTE_SHINGLE_WORDS = 6
MAX_ENTITIES = 20
# A bottom-k sample of the quote shingles (smallest hashes): two reports of one quotation keep
# the same shingles in their samples, however many other quotes each article has.
MAX_QUOTE_SHINGLES = 48
# Words of at least this Zipf frequency (about "said", "year") carry no topical weight.
COMMON_ZIPF = 5.5

_WORD = re.compile(r"[^\W\d_][\w'’-]*[^\W_]|[^\W\d_]", re.UNICODE)
# A quotation is the text between an opening mark and its own closing mark, within a paragraph:
# curly double quotes, straight double quotes paired left to right, or curly single quotes whose
# closing mark is not an apostrophe ("don’t"). Matching any mark against any other would also take
# the text *between* two quotations ("“Caucasian Knot” has reported that ... a “tent city”"), which
# is an outlet's own stock wording, as a quotation.
_QUOTE = re.compile(r"“([^“”\n]*)”|\"([^\"\n]*)\"|‘([^‘\n]*?)’(?!\w)")
QUOTE_CHARS = (20, 600)


@dataclass(frozen=True, slots=True)
class StoryFeatures:
    article_id: str
    outlet: str
    # When the event happened: the plausible publication time, else the time received. It decides
    # which stories are near enough in time; it never moves the index's clock.
    timestamp: float
    title: str
    terms: dict[str, float]
    entities: dict[str, float]
    quotes: frozenset[int]
    signature: tuple[int, ...]
    shingle_count: int
    # The unit sentence embedding as DIM signed bytes (b"" for a text without words).
    embedding: bytes = b""
    # When the pipeline received the article: the index's clock (expiry), which no article's
    # own claims can move. 0 for features written before it existed: `timestamp` stands in.
    received: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form (the features topic and the dedup table store it, once per article).

        Hashes travel as base64 of fixed-width little-endian integers: 4 bytes per MinHash value
        and per quote shingle, about half of their decimal text.
        """
        return {
            "article_id": self.article_id,
            "outlet": self.outlet,
            "timestamp": self.timestamp,
            "title": self.title,
            "terms": self.terms,
            "entities": self.entities,
            "quotes": _pack(sorted(self.quotes), "<u4"),
            "signature": _pack(self.signature, "<u4"),
            "shingle_count": self.shingle_count,
            "embedding": base64.b64encode(self.embedding).decode(),
            "received": self.received,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StoryFeatures:
        """Return the features of `as_dict`'s form; ValueError (or KeyError, TypeError) if malformed.

        Shapes are checked here, where a bad message can still be dead-lettered: a signature or
        embedding of another length would otherwise fail later, inside the index.
        """
        features = cls(
            article_id=str(d["article_id"]),
            outlet=str(d["outlet"]),
            timestamp=float(d["timestamp"]),
            title=str(d.get("title") or ""),
            terms={str(k): float(v) for k, v in d["terms"].items()},
            entities={str(k): float(v) for k, v in d["entities"].items()},
            quotes=frozenset(_unpack(d["quotes"], "<u4")),
            signature=tuple(_unpack(d["signature"], "<u4")),
            shingle_count=int(d["shingle_count"]),
            embedding=base64.b64decode(d.get("embedding") or "", validate=True),
            received=float(d.get("received") or 0.0),
        )
        if len(features.signature) != NUM_PERM:
            raise ValueError(f"signature has {len(features.signature)} values, not {NUM_PERM}")
        if len(features.embedding) not in (0, EMBEDDING_DIM):
            raise ValueError(f"embedding has {len(features.embedding)} bytes, not {EMBEDDING_DIM}")
        return features


def _pack(values: Any, dtype: str) -> str:
    return base64.b64encode(np.asarray(values, dtype=dtype).tobytes()).decode()


def _unpack(text: str, dtype: str) -> list[int]:
    return [int(x) for x in np.frombuffer(base64.b64decode(text, validate=True), dtype=dtype)]


@lru_cache(maxsize=200_000)
def idf(word: str) -> float:
    """Return a background inverse document frequency from the word's Zipf frequency (0 for stop words)."""
    if word in STOP_WORDS:
        return 0.0
    zipf = zipf_frequency(word, "en")
    return max(0.0, COMMON_ZIPF - zipf) + (0.5 if zipf == 0 else 0.0)


def _normalize(weights: Mapping[str, float], keep: int) -> dict[str, float]:
    top = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:keep]
    norm = math.sqrt(sum(v * v for _, v in top)) or 1.0
    # Three decimals: a cosine moves by well under 0.01, and the JSON form is a quarter shorter.
    return {k: round(v / norm, 3) for k, v in top if v > 0.0005 * norm}


def words(text: str) -> list[str]:
    return [w.casefold().replace("’", "'") for w in _WORD.findall(text)]


def _stable_hash(s: str) -> int:
    # 32 bits: a story keeps at most a few hundred quote hashes, so chance collisions (which
    # would need three at once to count) are negligible.
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=4).digest(), "big")


def shingle_set(tokens: list[str], n: int = SHINGLE_WORDS) -> set[bytes]:
    if len(tokens) < n:
        return {" ".join(tokens).encode()} if tokens else set()
    return {" ".join(tokens[i : i + n]).encode() for i in range(len(tokens) - n + 1)}


def quotations(text: str) -> list[str]:
    """Return the quoted passages of a text long enough to be a statement (QUOTE_CHARS)."""
    found = (m.group(m.lastindex or 0) for m in _QUOTE.finditer(text))
    return [q for q in found if QUOTE_CHARS[0] <= len(q) <= QUOTE_CHARS[1]]


def _epoch(value: str | None) -> float:
    dt = parse_datetime(value) if value else None
    return dt.timestamp() if dt else 0.0


def _timestamps(article: CleanArticle) -> tuple[float, float]:
    """Return (event time, received time) of an article in epoch seconds.

    The publication date has been checked for plausibility at extraction (`records.plausible_published`);
    a text without one happened when it was received.
    """
    received = _epoch(article.source.received_at)
    return (_epoch(article.published) or received), received


class Encoder(Protocol):
    """What embeds a text: a `TextEncoder`, or one with some of its vectors computed ahead."""

    def encode(self, text: str) -> np.ndarray: ...


def embedding_input(article: CleanArticle) -> str:
    """Return what the sentence embedding reads of an article ("" for none): the headline and the
    lead, where a news report says what happened."""
    if not _WORD.search(article.text):  # a text without words has no embedding
        return ""
    return f"{article.title}\n{article.text}" if article.title else article.text


def article_features(
    article: CleanArticle,
    entities: EntityResult | None,
    encoder: Encoder,
    received: float | None = None,
) -> StoryFeatures:
    """Return the dedup features of one article (pure; the heavy per-article part of dedup).

    `encoder` is the sentence-embedding model (`embed.default_encoder()` loads the process's
    one). `received` is the index clock's
    reading for this article (the worker passes the time it got it); by default the time the
    article's source says it was received.
    """
    text = article.text
    tokens = words(text)
    event_time, source_received = _timestamps(article)
    received = source_received if received is None else received
    # News is written as an inverted pyramid: without a headline, the lead stands in for it.
    title_tokens = [
        strip_possessive(w) for w in (words(article.title) if article.title else tokens[:LEAD_WORDS])
    ]
    tf = Counter(map(strip_possessive, tokens))
    # A headline word counts like two body mentions: the headline names the event.
    tf.update(title_tokens * 2)
    terms = _normalize(
        {w: (1 + math.log(c)) * idf(w) for w, c in tf.items() if 2 < len(w) <= MAX_TERM_CHARS}, MAX_TERMS
    )
    ents: dict[str, float] = {}
    for e in entities.entities if entities else ():
        weight = NORP_WEIGHT if e.label == "NORP" else ENTITY_TYPE_WEIGHT.get(e.coarse_label, 0.6)
        ents[e.key] = ents.get(e.key, 0.0) + weight * (0.3 + e.salience)
    quote_shingles: set[int] = set()
    for quoted in quotations(text):
        q = words(quoted)
        if len(q) >= QUOTE_SHINGLE_WORDS:
            n = QUOTE_SHINGLE_WORDS
            quote_shingles.update(_stable_hash(" ".join(q[i : i + n])) for i in range(len(q) - n + 1))
    quotes = frozenset(sorted(quote_shingles)[:MAX_QUOTE_SHINGLES])
    shingles = shingle_set(tokens)
    mh = MinHash(num_perm=NUM_PERM, seed=7, scheme=MINHASH_SCHEME)
    mh.update_batch(list(shingles))
    embedding = quantize(encoder.encode(lead)) if (lead := embedding_input(article)) else b""
    return StoryFeatures(
        article_id=article.article_id,
        outlet=article.source.outlet,
        timestamp=event_time,
        received=received,
        title=article.title or untitled_headline(text),
        terms=terms,
        entities=_normalize(ents, MAX_ENTITIES),
        quotes=quotes,
        signature=tuple(int(x) for x in mh.hashvalues),
        shingle_count=len(shingles),
        embedding=embedding,
    )


class _Signed(Protocol):
    @property
    def signature(self) -> Sequence[int] | np.ndarray | bytes: ...
    @property
    def shingle_count(self) -> int: ...


def estimated_containment(a: _Signed, b: _Signed) -> float:
    """Return the estimated share of the smaller text's shingles found in the other text."""
    if not a.shingle_count or not b.shingle_count:
        return 0.0
    jaccard = float(np.mean(signature_values(a.signature) == signature_values(b.signature)))
    inter = jaccard * (a.shingle_count + b.shingle_count) / (1 + jaccard)
    return min(1.0, inter / min(a.shingle_count, b.shingle_count))
