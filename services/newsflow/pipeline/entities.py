"""Entity tagging: spaCy NER over cleaned text, then canonical, merged, salience-ranked entities.

Only the NER component runs (tok2vec + ner); texts go through `nlp.pipe` in batches. Each
article's text is capped at `max_chars` (cut at a paragraph boundary): the lead carries the
salient entities, and NER cost grows linearly with length.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from newsflow.pipeline.options import NER_MAX_CHARS, NER_MODEL
from newsflow.pipeline.records import CleanArticle, Entity, EntityResult, Mention

DEFAULT_MODEL = NER_MODEL
# Everything the NER component does not need; loading without them halves the per-text cost.
NON_NER_COMPONENTS = ("tagger", "parser", "lemmatizer", "attribute_ruler", "senter", "morphologizer")

# Numbers, dates and amounts are not things a consumer joins on.
KEPT_LABELS = frozenset(
    {"PERSON", "ORG", "GPE", "LOC", "NORP", "EVENT", "FAC", "PRODUCT", "WORK_OF_ART", "LAW", "LANGUAGE"}
)
COARSE = {"PERSON": "PER", "ORG": "ORG", "GPE": "LOC", "LOC": "LOC", "FAC": "LOC"}

HONORIFICS = (
    "mr",
    "mrs",
    "ms",
    "miss",
    "dr",
    "prof",
    "professor",
    "sir",
    "dame",
    "lord",
    "lady",
    "president",
    "vice president",
    "prime minister",
    "chancellor",
    "minister",
    "secretary",
    "senator",
    "sen",
    "representative",
    "rep",
    "congressman",
    "congresswoman",
    "governor",
    "gov",
    "mayor",
    "judge",
    "justice",
    "general",
    "gen",
    "colonel",
    "col",
    "captain",
    "capt",
    "king",
    "queen",
    "prince",
    "princess",
    "pope",
    "rev",
    "reverend",
    "father",
    "sister",
    "saint",
    "st",
    "ambassador",
    "chairman",
    "ceo",
    "coach",
    "detective",
    "officer",
    "sergeant",
    "sgt",
    "lieutenant",
    "lt",
    "agent",
)
_HONORIFIC = re.compile(r"^(?:(?:" + "|".join(sorted(HONORIFICS, key=len, reverse=True)) + r")\.?\s+)+", re.I)
_POSSESSIVE = re.compile(r"(?:['’]s|['’])$")
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")
_LEADING_THE = re.compile(r"^the\s+", re.I)


def entity_key(name: str) -> str:
    """Return the join key of a name: accents folded, case folded, dots dropped, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", name)
    folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    folded = folded.replace(".", "").replace("’", "'")
    return " ".join(re.sub(r"[^\w' &-]+", " ", folded).split())


def strip_possessive(text: str) -> str:
    """Return text without a possessive ending: "Germany's" and "Germany" name one thing."""
    return _POSSESSIVE.sub("", text)


def clean_mention(text: str, label: str) -> str:
    """Return a mention without honorifics, possessive endings, a leading 'the' or edge punctuation."""
    name = " ".join(text.split())
    name = strip_possessive(name)
    if label == "PERSON":
        name = _HONORIFIC.sub("", name)
    else:
        name = _LEADING_THE.sub("", name)
    return _EDGE_PUNCT.sub("", name)


@dataclass
class _Group:
    names: Counter[str]
    labels: Counter[str]
    spans: list[tuple[int, int]]


def _merge_short_person_names(groups: dict[str, _Group]) -> None:
    """Fold a one-word PERSON ('Putin') into the only longer PERSON that ends or starts with it."""
    persons = {k: g for k, g in groups.items() if g.labels.most_common(1)[0][0] == "PERSON"}
    full = [k for k in persons if " " in k]
    for short in [k for k in persons if " " not in k]:
        owners = [f for f in full if f.split()[-1] == short or f.split()[0] == short]
        if len(owners) == 1:
            target, source = groups[owners[0]], groups.pop(short)
            target.spans += source.spans
            target.labels.update(source.labels)


def build_entities(
    text: str, raw_ents: Sequence[tuple[int, int, str]], title: str | None = None
) -> list[Entity]:
    """Return canonical entities from raw (start, end, label) spans over `text`, most salient first."""
    groups: dict[str, _Group] = {}
    for start, end, label in raw_ents:
        if label not in KEPT_LABELS:
            continue
        name = clean_mention(text[start:end], label)
        key = entity_key(name)
        if len(key) < 2 or not any(c.isalpha() for c in key):
            continue
        g = groups.setdefault(key, _Group(Counter(), Counter(), []))
        g.names[name] += 1
        g.labels[label] += 1
        g.spans.append((start, end))
    _merge_short_person_names(groups)
    if not groups:
        return []
    title_key = f" {entity_key(title)} " if title else ""
    max_count = max(len(g.spans) for g in groups.values())
    length = max(len(text), 1)
    entities = []
    for key, g in groups.items():
        spans = sorted(g.spans)
        first = spans[0][0]
        # Frequency dominates; an early first mention and a headline mention each add weight.
        salience = (
            0.6 * len(spans) / max_count + 0.25 * (1 - first / length) + 0.15 * (f" {key} " in title_key)
        )
        label = g.labels.most_common(1)[0][0]
        # The display name is the longest surface form seen most often (e.g. 'Vladimir Putin').
        name = max(g.names.items(), key=lambda kv: (len(kv[0].split()), kv[1]))[0]
        entities.append(
            Entity(
                key=key,
                name=name,
                label=label,
                coarse_label=COARSE.get(label, "MISC"),
                count=len(spans),
                first_offset=first,
                salience=min(1.0, salience),
                mentions=tuple(Mention(s, e) for s, e in spans),
            )
        )
    entities.sort(key=lambda e: (-e.salience, e.first_offset))
    return entities


def cap_text(text: str, max_chars: int) -> str:
    """Return the first `max_chars` of text, cut at a paragraph (or word) boundary."""
    if len(text) <= max_chars:
        return text
    cut = text.rfind("\n", 0, max_chars)
    if cut < max_chars // 2:
        cut = text.rfind(" ", 0, max_chars)
    return text[: cut if cut > 0 else max_chars]


class EntityTagger:
    """Batched NER with a loaded spaCy pipeline; languages other than the model's are skipped."""

    def __init__(
        self, model: str = DEFAULT_MODEL, max_chars: int = NER_MAX_CHARS, batch_size: int = 32
    ) -> None:
        import spacy  # deferred: loading spaCy costs a second and most tests never need it

        self.model_name = model
        self.max_chars = max_chars
        self.batch_size = batch_size
        self.nlp: Any = spacy.load(model, exclude=list(NON_NER_COMPONENTS))
        self.language = str(self.nlp.lang)

    def tag_batch(self, articles: Sequence[CleanArticle]) -> list[EntityResult]:
        """Return one EntityResult per article, in order."""
        results: list[EntityResult | None] = [None] * len(articles)
        todo: list[tuple[int, str]] = []
        for i, article in enumerate(articles):
            if article.language is not None and article.language.code != self.language:
                results[i] = EntityResult((), "skipped_language", self.model_name)
            elif not article.text.strip():
                results[i] = EntityResult((), "empty", self.model_name)
            else:
                todo.append((i, cap_text(article.text, self.max_chars)))
        docs = self.nlp.pipe((t for _, t in todo), batch_size=self.batch_size)
        for (i, text), doc in zip(todo, docs, strict=True):
            raw = [(e.start_char, e.end_char, e.label_) for e in doc.ents]
            results[i] = EntityResult(
                tuple(build_entities(text, raw, articles[i].title)), "ok", self.model_name
            )
        return [r for r in results if r is not None]
