"""Entity tagging: spaCy NER over cleaned text, then canonical, merged, salience-ranked entities.

Only the NER component runs (with the shared tok2vec only if it listens to it, see
`load_ner_pipeline`); texts go through `nlp.pipe` in batches. The model reads at most `max_chars`
of each article (cut at a paragraph or sentence boundary): the lead carries the salient entities, and NER cost grows linearly with length, so a few long pages would otherwise
hold up every article queued behind them. The entities are built over the whole text: the names
found in the lead are found again past the cap where they are written the same way; names that
first appear there are missed.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
from wordfreq import zipf_frequency

from newsflow.pipeline.layout import (
    PLACE_LABELS,
    Span,
    dateline_places,
    in_capitals,
    line_pieces,
    with_layout,
    without_slug,
)
from newsflow.pipeline.names import entity_key as entity_key
from newsflow.pipeline.names import strip_possessive as strip_possessive
from newsflow.pipeline.names import without_legal_form
from newsflow.pipeline.options import NER_MAX_CHARS, NER_MODEL, model_location
from newsflow.pipeline.places import country_key, is_place, place_id
from newsflow.pipeline.recent import RECENT_INPUTS, Recent, digest
from newsflow.pipeline.records import CleanArticle, Entity, EntityResult, Mention

DEFAULT_MODEL = NER_MODEL
# Part of the name under which workers share spans (recent.py): bump it when the spans computed
# for a text change other than with the model (what `cased_for_ner` gives it, the packing).
SPANS_VERSION = 2
# Components the NER component never needs; loading without them halves the per-text cost.
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
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")
_LEADING_THE = re.compile(r"^the\s+", re.I)
# "pro-Beijing", "anti-EU": a stance, said of people or parties, not a name (the model often tags
# it an ORG or a place).
_STANCE = re.compile(r"^(?:pro|anti)\s*-", re.I)
# An account or a link the model read as a name ("@POTUS", "pic.twitter.com/4p7SXk7JPW"): an
# address, not the name of what it points to. Matched over the mention and the character before
# it (the model may leave the "@" out).
_ADDRESS = re.compile(r"(?<!\w)@\w|://|\w\.[a-z]{2,}/|(?:^|\W)www\.", re.I)


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


def _label(group: _Group) -> str:
    return group.labels.most_common(1)[0][0]


def _fold(groups: dict[str, _Group], source_key: str, target_key: str, keep_target_label: bool) -> None:
    """Merge one group into another (created if missing); the target's label wins if asked."""
    source = groups.pop(source_key)
    target = groups.setdefault(target_key, _Group(Counter(), Counter(), []))
    target.names.update(source.names)
    target.spans += source.spans
    if not keep_target_label or not target.labels:
        target.labels.update(source.labels)


# A one-word name with one of these labels may be a reference back to a longer name (the model
# often labels a surname alone as an organisation, "Havel", or a product, "Kursk"); a known place
# is left alone ("Washington" near "George Washington" is usually the city).
_REFERRING_LABELS = frozenset({"PERSON", "ORG", "PRODUCT", "WORK_OF_ART", "NORP", "EVENT", "LAW"})


def _merge_short_names(groups: dict[str, _Group], text: str, datelines: Sequence[Span] = ()) -> None:
    """Fold a one-word name into the only longer name it refers back to, taking its label and key.

    News names someone in full once, then by surname ("Vaclav Havel" ... "Havel") or first name;
    a company in full, then by its first word ("Newmont Mining" ... "Newmont"), which a people's
    adjective is not ("Indonesian" ... "Indonesian Navy").
    """
    labels = {k: _label(g) for k, g in groups.items()}
    longer = [k for k in groups if " " in k]
    places, tagged = _span_indexes(groups)
    # The longer names by their first and last words (a text may hold thousands of names).
    people_by_last: dict[str, list[str]] = defaultdict(list)
    people_by_first: dict[str, list[str]] = defaultdict(list)
    companies_by_first: dict[str, list[str]] = defaultdict(list)
    for k in longer:
        words = k.split()
        if labels[k] == "PERSON":
            people_by_last[words[-1]].append(k)
            people_by_first[words[0]].append(k)
        elif labels[k] == "ORG":
            companies_by_first[words[0]].append(k)
    order = {k: i for i, k in enumerate(longer)}

    surnames = set(people_by_last)

    def place(key: str) -> bool:
        # A place label on a word no gazetteer knows ("Bolden" near "Charles Bolden") is no reason
        # to keep it apart, unless the text says it as a place ("in Frankfurt", a dateline's
        # "FRANKFURT", beside "Frankfurt Newsroom"). Nor is a gazetteer's place that is the surname
        # of a person the text names in full ("Valeska Paris" ... "Paris said"): one name means
        # one thing in one report, unless it says it as the place.
        spans = groups[key].spans
        said = _said_as_place(text, spans, places, tagged) or any(
            (s, e, "GPE") in datelines for s, e in spans
        )
        if key in surnames:
            return said
        return is_place(key) or (labels[key] in PLACE_LABELS and said)

    referring = [k for k in groups if " " not in k and (labels[k] in _REFERRING_LABELS or not place(k))]
    for short in referring:
        people = set(people_by_last.get(short, ()))
        if labels[short] == "PERSON":
            people.update(people_by_first.get(short, ()))
        owners = sorted(people, key=order.__getitem__) or (
            # ... not a people's adjective before an organisation ("Indonesian" ... "Indonesian Navy")
            companies_by_first.get(short, []) if labels[short] != "NORP" else []
        )
        if len(owners) == 1:
            _fold(groups, short, owners[0], keep_target_label=True)
        elif owners and labels[owners[0]] == "PERSON" and groups[short].labels["PERSON"]:
            # Two people it may refer to ("Kristen Wilkins", "Kristin Wilkins"), and the model
            # took it for a person somewhere: which one is unknown, but it is a person. ("Ford"
            # after Henry and Bill Ford, never called a person, may be the company.)
            groups[short].labels = Counter({"PERSON": len(groups[short].spans)})


_ANY_WORD = re.compile(r"\w+")


class _Words:
    """Where each word of a text begins, by its lower case (built once per text, when asked)."""

    def __init__(self, text: str) -> None:
        self.text, self.lowered = text, text.lower()
        self.at: dict[str, list[int]] = defaultdict(list)
        if len(self.lowered) == len(text):  # (a few characters lower to two: then read by regex)
            for m in _ANY_WORD.finditer(self.lowered):
                self.at[m.group()].append(m.start())

    def found(self, name: str) -> Iterator[int]:
        """Yield where the text holds the name, in any case, as whole words."""
        first = _ANY_WORD.match(target := name.lower())
        if not self.at or first is None or len(target) != len(name):
            for m in re.finditer(rf"(?<!\w){re.escape(name)}(?!\w)", self.text, re.I):
                yield m.start()
            return
        end = 0
        for start in self.at.get(first.group(), ()):
            if start < end:  # (none overlapping, as a regular expression finds them)
                continue
            after = start + len(target)
            if self.lowered.startswith(target, start) and not (
                after < len(self.text) and _word_char(self.text[after])
            ):
                end = after
                yield start


def _word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _as_written(name: str, words: _Words) -> str:
    """Return a name in capitals as the text writes it elsewhere as a name not in capitals, most
    often ("Madrid", "McDonald", "Santiago de Chile"), else as it is ("NATO", a headline's only
    name: capitalising it would guess "Mcdonald"). A sentence's first word is capitalised
    whatever it is ("Who pays is unclear" says nothing of "WHO")."""
    text = words.text
    forms: Counter[str] = Counter()
    for start in words.found(name):
        form = text[start : start + len(name)]
        if form[0].isupper() and not form.isupper() and not _opens_sentence(text, start):
            forms[form] += 1
    return forms.most_common(1)[0][0] if forms else name


def _opens_sentence(text: str, start: int) -> bool:
    """Whether the word at `start` opens a line, a sentence or a clause in quotes or brackets."""
    i = start - 1
    while i >= 0 and text[i].isspace() and text[i] != "\n":
        i -= 1
    return i < 0 or text[i] == "\n" or text[i] in _SENTENCE_OPENERS


def _written_as_name(form: str, lower_words: set[str]) -> bool:
    """Whether a name's form may be found again where the model did not tag it: capitalised, and,
    if one word, not one the text also writes in lower case ("Prosecutors" starting a sentence,
    "prosecutors" elsewhere)."""
    return form[:1].isupper() and len(form) > 1 and (" " in form or form.lower() not in lower_words)


def _not_a_word(form: str, zipf: float) -> bool:
    """Whether a name's form is several words, or one word less frequent in English than `zipf`
    (at 5.0 "State" and "House" are words)."""
    return " " in form or zipf_frequency(form.lower(), "en") < zipf


# What ends a name without being its surname ("Martin Luther King Jr.").
_NAME_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv"})


def _surname(name: str) -> str | None:
    """Return the last word of a full name that is not a suffix (None for a one-word name)."""
    words = [w for w in name.split() if w.lower().rstrip(".") not in _NAME_SUFFIXES]
    return words[-1].rstrip(",") if len(words) > 1 else None


# A one-word name this frequent in English is also a word ("Hill", "West", "Bush"): in capitals,
# where case cannot tell the two apart, it is not looked for.
_SHOUTED_NAME_ZIPF = 4.5


def _propagate(groups: dict[str, _Group], text: str) -> None:
    """Add the untagged recurrences of a tagged name (and of a person's surname) to its entity.

    Models tag a name in one sentence and miss it in the next ("Montalvo said ..."); within one
    article a name means one thing (one sense per discourse), so where it recurs it is the same
    entity. A form two entities could claim is left alone. A line in capitals (a wire headline)
    repeats the report's names in capitals ("SAMPRAS BEATS IVANISEVIC" over "Pete Sampras beat
    ..."): there a name is found in capitals, if it is not a word as well (capitals hide the case
    that tells "Hill" from "hill") or the report tagged it as the place it names.
    """
    lower_words = set(re.findall(r"\b[a-z][\w'’-]*", text))
    owner: dict[str, str | None] = {}
    for key, group in groups.items():
        forms = set(group.names)
        if _label(group) == "PERSON":
            forms.update(filter(None, map(_surname, group.names)))
        for form in forms:
            if _written_as_name(form, lower_words):
                owner[form] = key if owner.get(form, key) == key else None
    named = {form: key for form, key in owner.items() if key is not None}
    taken = sorted(span for group in groups.values() for span in group.spans)
    starts = [start for start, _ in taken]
    found = {form: key for form, key in named.items() if _not_a_word(form, _ORDINARY_ZIPF)}
    for start, end, form in _occurrences(text, found, _NOT_IN_WORD_AFTER):
        if _untaken(taken, starts, start, end) and not _in_longer_name(text, start, end):
            groups[found[form]].spans.append((start, end))
    shouted = {
        form.upper(): key
        for form, key in named.items()
        if form.upper() != form
        and (
            _not_a_word(form, _SHOUTED_NAME_ZIPF)
            or (_label(groups[key]) in PLACE_LABELS and is_place(form.lower()))
        )
    }
    if not shouted:
        return
    line_start = 0
    for line in text.split("\n"):
        if in_capitals(line):
            for start, end, form in _occurrences(line, shouted, _NOT_IN_CAPS_WORD_AFTER):
                start, end = line_start + start, line_start + end
                if _untaken(taken, starts, start, end):
                    groups[shouted[form]].spans.append((start, end))
        line_start += len(line) + 1


# What may not follow a name found again: more of a word (or "'s"-like endings of two letters).
_NOT_IN_WORD_AFTER = re.compile(r"(?![\w&-]|['’]\w{2})")
_NOT_IN_CAPS_WORD_AFTER = re.compile(r"(?![\w&'’-])")
# What may not come before a name found again (besides more of a word).
_BEFORE_NO_NAME = "&'’.-"
_NOT_IN_WORD_BEFORE = rf"(?<![\w{re.escape(_BEFORE_NO_NAME)}])"
# Up to this many names are looked for with one regular expression; its time grows with them
# (times the text's length), so more are looked up word by word.
_FEW_FORMS = 64


def _occurrences(text: str, forms: Collection[str], after: re.Pattern[str]) -> Iterator[tuple[int, int, str]]:
    """Yield where the text writes one of the forms, not within a longer word and followed as
    `after` allows: leftmost first, the longest form at a place, none overlapping."""
    if not forms:
        return
    firsts = [_ANY_WORD.match(form) for form in forms]
    if len(forms) <= _FEW_FORMS or not all(firsts):
        pattern = re.compile(
            _NOT_IN_WORD_BEFORE
            + "(?:"
            + "|".join(map(re.escape, sorted(forms, key=len, reverse=True)))
            + ")"
            + after.pattern
        )
        for match in pattern.finditer(text):
            yield match.start(), match.end(), match.group()
        return
    by_first: dict[str, list[str]] = defaultdict(list)
    for form, first in zip(forms, firsts, strict=True):
        by_first[first.group()].append(form)  # type: ignore[union-attr]  # (all matched)
    for same in by_first.values():
        same.sort(key=len, reverse=True)
    end = 0
    for word in _ANY_WORD.finditer(text):
        start = word.start()
        if start < end or (start and text[start - 1] in _BEFORE_NO_NAME):
            continue
        for form in by_first.get(word.group(), ()):
            if text.startswith(form, start) and after.match(text, start + len(form)):
                end = start + len(form)
                yield start, end, form
                break


def _untaken(taken: list[tuple[int, int]], starts: list[int], start: int, end: int) -> bool:
    """Whether a span is neither inside nor across a mention already tagged (`taken`, sorted)."""
    i = bisect_right(starts, start)
    return not ((i and taken[i - 1][1] > start) or (i < len(taken) and taken[i][0] < end))


_WORD_BEFORE = re.compile(r"([^\W\d_][\w.'’-]*)\s+$")
_CAPITAL_AFTER = re.compile(r"\s+[^\W\d_a-z]")


# A capitalised word this frequent before a name starts a sentence ("The", "But", "After").
_FUNCTION_ZIPF = 6.0


def _in_longer_name(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is next to another capitalised word: part of a longer name the
    model did not tag ("Internet Explorer", "Trump Tower"). A title ("Mr."), a word that ends a
    sentence or a function word starting one is not a name."""
    before = _WORD_BEFORE.search(text, max(0, start - 30), start)
    if before:
        word = before.group(1)
        if (
            word[0].isupper()
            and not word.endswith(".")
            and not _HONORIFIC.fullmatch(word + " ")
            and zipf_frequency(word.lower(), "en") < _FUNCTION_ZIPF
        ):
            return True
    return bool(_CAPITAL_AFTER.match(text, end))


# Labels a place may carry (PLACE_LABELS); an organisation or nationality named like a city
# ("Barcelona" the club) keeps its label, but a person, product or work named like a place is
# the model's error.
_NOT_RELABELLED = PLACE_LABELS | {"ORG", "NORP"}


# A name right after one of these is where something happens: "in Dnipro" is the city, whatever
# the model says, where "Dnipro won" may be the club. So is a name listed with a place: "Odesa
# and Dnipro were hit".
_LOCATIVE = frozenset({"in", "near", "outside", "around", "across", "into", "at"})
_SEPARATOR = r"\s*(?:,|and|or)\s*"
_LISTED = re.compile(f"^{_SEPARATOR}$")


# The one or two capitalised words listed right before or after a name ("Odesa and Dnipro").
_NEIGHBOUR = r"([^\W\d_a-z][\w'’-]*(?: [^\W\d_a-z][\w'’-]*)?)"
_LISTED_BEFORE = re.compile(f"{_NEIGHBOUR}{_SEPARATOR}$")
_LISTED_AFTER = re.compile(f"{_SEPARATOR}{_NEIGHBOUR}")


# How far apart two names listed together lie at most ("Odesa, and Dnipro"), and how long a name is
# at most: what is looked up around a name (a text of 200,000 characters may hold thousands of
# mentions, and each compared with every other took minutes).
_MAX_GAP = 40
_LONGEST_NAME = 200


class _SpanIndex:
    """Spans sorted by start and by end, to find those near an offset without reading them all."""

    def __init__(self, spans: Iterable[tuple[int, int]]) -> None:
        self.by_start = sorted(spans)
        self.starts = [s for s, _ in self.by_start]
        self.by_end = sorted(self.by_start, key=lambda span: span[1])
        self.ends = [e for _, e in self.by_end]

    def starting(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """The spans that start at lo..hi."""
        return self.by_start[bisect_left(self.starts, lo) : bisect_right(self.starts, hi)]

    def ending(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """The spans that end at lo..hi."""
        return self.by_end[bisect_left(self.ends, lo) : bisect_right(self.ends, hi)]

    def overlaps(self, start: int, end: int) -> bool:
        return any(e > start for _, e in self.starting(start - _LONGEST_NAME, end - 1))


def _span_indexes(groups: Mapping[str, _Group]) -> tuple[_SpanIndex, _SpanIndex]:
    """Return the indexes of the spans of places, and of every name tagged."""
    places = _SpanIndex(span for g in groups.values() if _label(g) in PLACE_LABELS for span in g.spans)
    return places, _SpanIndex(span for g in groups.values() for span in g.spans)


def _listed_with_known_place(text: str, start: int, end: int, tagged: _SpanIndex) -> bool:
    """Whether a name is listed with a name the gazetteers know as a place that the model did
    not tag ("Odesa and Dnipro were hit", Odesa missed). A tagged neighbour has its own label:
    "Liverpool and Leeds drew", two clubs, are not places."""
    before = _LISTED_BEFORE.search(text, max(0, start - 40), start)
    after = _LISTED_AFTER.match(text, end)
    for found in (before, after):
        # The neighbour as a whole: "Manchester United" is no place, though Manchester is one.
        if found and is_place(entity_key(found.group(1))):
            n_start, n_end = found.span(1)
            if not tagged.overlaps(n_start, n_end):
                return True
    return False


def _said_as_place(text: str, spans: list[tuple[int, int]], places: _SpanIndex, tagged: _SpanIndex) -> bool:
    for start, end in spans:
        before = text[max(0, start - 12) : start].split()
        if before and before[-1].lower() in _LOCATIVE:
            return True
        if any(_LISTED.match(text[p_end:start]) for _, p_end in places.ending(start - _MAX_GAP, start)):
            return True
        if any(_LISTED.match(text[end:p_start]) for p_start, _ in places.starting(end, end + _MAX_GAP)):
            return True
        if _listed_with_known_place(text, start, end, tagged):
            return True
    return False


def _settle_places(groups: dict[str, _Group], text: str) -> None:
    """Give every country one key and the label GPE, and places the model mislabelled a place label."""
    undecided = []  # organisations and nationalities named like a place
    for key in list(groups):
        group = groups[key]
        canonical = country_key(key)
        if canonical is not None:
            group.labels = Counter({"GPE": len(group.spans)})
            if canonical != key:
                _fold(groups, key, canonical, keep_target_label=False)
        elif _label(group) not in PLACE_LABELS and is_place(key):
            if _label(group) in _NOT_RELABELLED:
                undecided.append(group)
            else:
                group.labels = Counter({"GPE": len(group.spans)})
        elif not is_place(key) and len(group.labels) > 1:
            # A name no gazetteer knows as a place, that the model calls a place in as many
            # sentences as something else ("Scientology", 5 and 5): the tie goes to the other
            # label, whatever the order of the mentions. (A town too small for the gazetteer,
            # called a place more often than not, stays a place.)
            (top, n), *_ = group.labels.most_common()
            rival = max(
                ((m, label) for label, m in group.labels.items() if label not in PLACE_LABELS),
                default=None,
            )
            if top in PLACE_LABELS and rival is not None and rival[0] == n:
                group.labels = Counter({rival[1]: n})
    # Decided after the rest, so that a place the model took for a person ("Odesa and Dnipro were
    # hit") counts as the place the other is listed with.
    places, tagged = _span_indexes(groups)
    for group in undecided:
        if _said_as_place(text, group.spans, places, tagged):
            group.labels = Counter({"GPE": len(group.spans)})


# A number after a person's or a place's name is a score, a minute or an age that the model read
# into it ("Bob Dole 37", "Litmanen 45", "Feyenoord 2"); a product's or an organisation's may be
# its own ("Apollo 11", "Channel 4").
_TRAILING_NUMBERS = re.compile(r"(?:\s+\d+(?:[-–:.]\d+)*)+$")
_NUMBERLESS_LABELS = frozenset({"PERSON", "GPE", "LOC"})


def _without_trailing_numbers(text: str, raw_ents: Iterable[Span]) -> Iterator[Span]:
    for start, end, label in raw_ents:
        if label in _NUMBERLESS_LABELS:
            found = _TRAILING_NUMBERS.search(text, start, end)
            if found and found.start() > start:
                end = found.start()
        yield start, end, label


def build_entities(text: str, raw_ents: Sequence[Span], title: str | None = None) -> list[Entity]:
    """Return canonical entities from raw (start, end, label) spans over `text`, most salient first."""
    groups: dict[str, _Group] = {}
    companies: set[str] = set()  # keys of names written with a legal form
    cased = any(c.isupper() for c in text)
    datelines = dateline_places(text)
    for start, end, label in _without_trailing_numbers(
        text, line_pieces(text, without_slug(text, with_layout(text, raw_ents, datelines)))
    ):
        if label not in KEPT_LABELS:
            continue
        name = clean_mention(text[start:end], label)
        if cased and not any(c.isupper() for c in name):
            continue  # no capital in a cased text: a common word ("the state"), not a name
        if _STANCE.match(name) or _ADDRESS.search(text[max(0, start - 1) : end]):
            continue
        company = without_legal_form(name)
        key = entity_key(company)
        if len(key) < 2 or not any(c.isalpha() for c in key):
            continue
        g = groups.setdefault(key, _Group(Counter(), Counter(), []))
        g.names[name] += 1
        g.labels[label] += 1
        g.spans.append((start, end))
        if company != name:
            companies.add(key)
    for key in companies:  # a legal form makes every mention of its name the company's
        groups[key].labels = Counter({"ORG": len(groups[key].spans)})
    _settle_places(groups, text)
    _merge_short_names(groups, text, datelines)
    _propagate(groups, text)
    if not groups:
        return []
    title_key = f" {entity_key(title)} " if title else ""
    max_count = max(len(g.spans) for g in groups.values())
    length = max(len(text), 1)
    entities = []
    words: _Words | None = None
    for key, g in groups.items():
        spans = sorted(g.spans)
        first = spans[0][0]
        # Frequency dominates; an early first mention and a headline mention each add weight.
        salience = (
            0.6 * len(spans) / max_count + 0.25 * (1 - first / length) + 0.15 * (f" {key} " in title_key)
        )
        label = g.labels.most_common(1)[0][0]
        # The display name is the longest surface form seen most often (e.g. 'Vladimir Putin'), as
        # the report writes it in its prose rather than in a headline or dateline in capitals.
        name = max(g.names.items(), key=lambda kv: (len(kv[0].split()), not kv[0].isupper(), kv[1]))[0]
        if name.isupper():  # tagged only in capitals ("MADRID", "MCDONALD"): as the prose writes it
            words = words or _Words(text)
            name = _as_written(name, words)
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
                place_id=place_id(key, label) if label in ("GPE", "LOC") else None,
            )
        )
    entities.sort(key=lambda e: (-e.salience, e.first_offset))
    return entities


_WORD = re.compile(r"[^\W\d_]+")
_CAPS_WORD = re.compile(r"[^\W\d_a-z]{2,}")
# A shouted word this long that is also a common word ("COMPLETELY") is emphasis, not a name.
_SHOUTED_MIN_LETTERS = 5
_COMMON_ZIPF = 4.0
_RARE_ZIPF = 3.5
# Short words at least this frequent ("the", "win", "says") are words, not acronyms.
_ORDINARY_ZIPF = 5.0
_PLACE_WORD_ZIPF = 4.5


def _recased(word: str, in_caps: bool, written: Mapping[str, str]) -> str:
    """Return an all-caps word as a cased text would have it (same length).

    `in_caps` says the word is in a passage or line in capitals, where every word is in capitals;
    otherwise it is a single shouted word, recased only if it is a common word or a place.
    `written` is how the text's own cased lines write the word (`_written_forms`).
    """
    low = word.lower()
    name = word[0] + word[1:].lower()
    if len(word) <= 3 and country_key(low) is not None:  # "US", "UK", "UAE" are written so
        return word
    form = written.get(low)
    if form is not None:  # "ENGLAND" where the report says "England", "SCOREBOARD" where "scoreboard"
        return name if form == "name" else low
    zipf = zipf_frequency(low, "en")
    # A country, or a place that is not also a common word ("MADRID", not "SURPRISE", Arizona).
    if country_key(low) is not None or (is_place(low) and zipf < _PLACE_WORD_ZIPF):
        return name
    if not in_caps:
        return low if len(word) >= _SHOUTED_MIN_LETTERS and zipf >= _COMMON_ZIPF else word
    if len(word) <= 4 and zipf < _ORDINARY_ZIPF:  # an acronym ("US", "FBI", "NASA"), not "THE" or "WIN"
        return word
    return name if zipf < _RARE_ZIPF else low  # "HAVEL" is a name, "LUCKY" a word


# This many all-caps words in a row are a passage in capitals (a shouted quote inside a line),
# read like a headline; fewer are acronyms or a shouted word.
_CAPS_RUN_WORDS = 3


def _caps_runs(words: list[re.Match[str]]) -> list[bool]:
    """Return, for each word, whether it is in a run of _CAPS_RUN_WORDS or more all-caps words."""
    out = [False] * len(words)
    start = 0
    while start < len(words):
        end = start
        while end < len(words) and words[end].group().isupper():
            end += 1
        if sum(len(w.group()) > 1 for w in words[start:end]) >= _CAPS_RUN_WORDS:
            out[start:end] = [True] * (end - start)
        start = end + 1
    return out


# A word in a cased line, and what may end the sentence or clause before it.
_CASED_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_SENTENCE_OPENERS = frozenset('.!?:;"“‘([—–-')


def _written_forms(lines: Sequence[str]) -> dict[str, str]:
    """Return how the cased lines write each word inside a sentence: {"england": "name"} for a word
    always capitalised there, {"scoreboard": "word"} for one always in lower case (a word both ways,
    or only at a sentence's start, is left out)."""
    names: set[str] = set()
    words: set[str] = set()
    for line in lines:
        for m in _CASED_WORD.finditer(line):
            w = m.group()
            if w.islower():
                words.add(w)
            elif w[0].isupper() and (len(w) == 1 or w[1:].islower()) and not _opens_sentence(line, m.start()):
                names.add(w.lower())
    return dict.fromkeys(names - words, "name") | dict.fromkeys(words - names, "word")


def _recased_line(line: str, written: Mapping[str, str]) -> str:
    words = list(_WORD.finditer(line))
    runs = [True] * len(words) if in_capitals(line) else _caps_runs(words)
    pieces, last = [], 0
    for word, in_caps in zip(words, runs, strict=True):
        text = word.group()
        if text.isupper() and (in_caps or len(text) >= _SHOUTED_MIN_LETTERS):
            pieces += [line[last : word.start()], _recased(text, in_caps, written)]
            last = word.end()
    new = "".join([*pieces, line[last:]])
    return new if len(new) == len(line) else line


# spaCy's tokenizer splits prefixes and suffixes off a token one at a time, re-reading the rest: its
# time grows with the square of a long run of them ("x" and 9,990 ")" took 20 s; "_" and "'s"
# repeated likewise). In a run of 64 characters or more without white space that is a third or
# more such characters, one of them in every 32 becomes a space, in place (the model's offsets
# stay the text's; letters and digits are never touched, and a URL or a long compound, mostly
# letters, is left as it is).
_LONG_TOKEN = re.compile(r"\S{64,}")
_TOKEN_PIECE = 32


def _broken(run: str) -> str:
    if 3 * sum(not c.isalnum() for c in run) < len(run):
        return run
    chars, since = list(run), 0
    for k, c in enumerate(chars):
        since += 1
        if since >= _TOKEN_PIECE and not c.isalnum():
            chars[k], since = " ", 0
    return "".join(chars)


def tokenizable(text: str) -> str:
    """Return the text with every long run of largely punctuation broken by spaces (`_broken`), at
    the same offsets."""
    return _LONG_TOKEN.sub(lambda run: _broken(run[0]), text)


def cased_for_ner(text: str) -> str:
    """Return the text with all-caps lines (headlines, datelines), passages and shouted words recased.

    NER models learn names from case; "MADRID" or a headline in capitals reads to them as
    nothing in particular. A word is written as the text's cased lines write it inside a
    sentence, where they do; otherwise as its frequency in English suggests. The result has the
    same length, so the model's offsets are the original text's.
    """
    lines = text.split("\n")
    shouting = [bool(_CAPS_WORD.search(line)) for line in lines]
    if not any(shouting):
        return text
    # The cased lines: prose, acronyms and a shouted word in it or not ("the US said"), not the
    # lines in capitals.
    written = _written_forms(
        [ln for ln in lines if 2 * sum(c.isupper() for c in ln) < sum(c.isalpha() for c in ln)]
    )
    return "\n".join(
        _recased_line(line, written) if caps else line for line, caps in zip(lines, shouting, strict=True)
    )


# A sentence's end: a stop after a lower-case word or a number (not after an initial, as in
# "John F. Kennedy", nor inside "U.S."), with any closing quotes, before white space.
_SENTENCE_END = re.compile(r"(?<=[a-z0-9%])[.!?][\"'\u201d\u2019)\]]*(?=\s)")


def cap_text(text: str, max_chars: int) -> str:
    """Return the first `max_chars` of text, cut at a paragraph boundary, else at a sentence's end.

    A cut inside a sentence can fall inside a name, and the model then tags half of it
    ("Vladimir" of "Vladimir Putin" as a place); a word boundary is the last resort, for a run
    of half the cap without a sentence end.
    """
    if len(text) <= max_chars:
        return text
    half = max_chars // 2
    cut = text.rfind("\n", 0, max_chars)
    if cut < half:
        ends = [m.end() for m in _SENTENCE_END.finditer(text, half, max_chars)]
        cut = ends[-1] if ends else text.rfind(" ", 0, max_chars)
    return text[: cut if cut > 0 else max_chars]


def load_ner_pipeline(name: str) -> Any:
    """Load a spaCy pipeline with only what its NER component needs.

    The other components go (NON_NER_COMPONENTS), and so does the shared `tok2vec` when nothing
    left listens to it: the CNN models' NER has a token encoder of its own, so their shared one
    would cost a quarter of the NER time for vectors nobody reads (the entities are the same).
    A pipeline whose NER does listen to it (a transformer's, say) keeps it.
    """
    import spacy  # deferred: loading spaCy costs a second and most tests never need it

    nlp = spacy.load(model_location(name), exclude=list(NON_NER_COMPONENTS))
    shared: Any = nlp.get_pipe("tok2vec") if "tok2vec" in nlp.pipe_names else None
    if shared is not None and not shared.listening_components:
        nlp.remove_pipe("tok2vec")
    return nlp


def _declared_labels(nlp: Any) -> list[str]:
    return sorted({label for labels in nlp.pipe_labels.values() for label in labels})


def pipeline_identity(nlp: Any) -> str:
    """Return a short name of a loaded pipeline that changes with its weights, labels and spaCy's
    version, not only with its metadata (which a custom-trained model may leave at spaCy's
    defaults)."""
    weights = hashlib.blake2b(digest_size=8)
    for name, component in nlp.pipeline:
        weights.update(name.encode() + b"\0")
        to_bytes = getattr(getattr(component, "model", None), "to_bytes", None)
        weights.update(to_bytes() if callable(to_bytes) else type(component).__qualname__.encode())
    weights.update("\0".join(_declared_labels(nlp)).encode())
    meta = nlp.meta
    name = f"{nlp.lang}_{meta.get('name', '')}-{meta.get('version', '')}"
    return f"{name}:spacy-{metadata.version('spacy')}:{weights.hexdigest()}"


# A language identification less sure than this (short texts, names: "Short text about Lisbon and
# Maria Okafor" is Nigerian Pidgin at 0.42) does not keep the model from reading the text.
SURE_LANGUAGE = 0.5


def _other_language(article: CleanArticle, model_language: str) -> bool:
    found = article.language
    return found is not None and found.code != model_language and found.confidence >= SURE_LANGUAGE


class EntityTagger:
    """Batched NER with a loaded spaCy pipeline; languages other than the model's are skipped."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        max_chars: int = NER_MAX_CHARS,
        batch_size: int = 32,
        recent_texts: int = RECENT_INPUTS,
        share: bool = False,
    ) -> None:
        self.model_name = model
        self.max_chars = max_chars
        self.batch_size = batch_size
        self.nlp: Any = load_ner_pipeline(model)
        self.language = str(self.nlp.lang)
        # The model's spans of the texts it tagged lately (see recent.py); build_entities, which
        # also reads the headline, runs for every article. With `share`, other workers take them.
        self.recent: Recent[bytes] = Recent(recent_texts, share)
        # Other workers take these spans only from a tagger with the same weights and labels.
        self.step = f"ner.{SPANS_VERSION}:{pipeline_identity(self.nlp) if share else 'unshared'}"
        self.reused = 0  # articles whose text's spans were known (lately, or earlier in the batch)
        # Label numbers in packed spans: the same in every worker that runs this model. A label
        # not declared by the pipeline's components is numbered here only, and never shared.
        declared = _declared_labels(self.nlp)
        self._labels: dict[str, int] = {label: n for n, label in enumerate(declared)}
        self._declared = len(declared)

    def _packed(self, ents: Any) -> tuple[bytes, bool]:
        """Return spans as int32 (start, end, label number) triples: 12 bytes a span, where a tuple
        costs ~100 (a name-dense text at the character cap has over 1,500); and whether every
        label is one the pipeline declares (what other workers number alike)."""
        values = array("i")
        for e in ents:
            values.extend((e.start_char, e.end_char, self._labels.setdefault(e.label_, len(self._labels))))
        return values.tobytes(), all(n < self._declared for n in values[2::3])

    def accepts(self, packed: bytes) -> bool:
        """Return whether another worker's packed spans are well formed for this model: in order,
        apart, within the text the model reads, with labels it declares."""
        if len(packed) % 12 or len(packed) > 12 * self.max_chars:
            return False
        starts, ends, labels = np.frombuffer(packed, dtype=np.int32).reshape(-1, 3).T
        return bool(
            (starts >= 0).all()
            and (starts < ends).all()
            and (ends <= self.max_chars).all()
            and (starts[1:] >= ends[:-1]).all()
            and ((labels >= 0) & (labels < self._declared)).all()
        )

    @staticmethod
    def _fits(packed: bytes, text: str) -> bool:
        """Return whether spans end within the text (an adopted result always does, unless the
        worker that sent it had another text under the same digest)."""
        return len(packed) < 12 or memoryview(packed).cast("i")[-2] <= len(text)

    def _unpacked(self, packed: bytes) -> list[Span]:
        names = list(self._labels)
        values = memoryview(packed).cast("i")
        return [(values[k], values[k + 1], names[values[k + 2]]) for k in range(0, len(values), 3)]

    def tag_batch(self, articles: Sequence[CleanArticle]) -> list[EntityResult]:
        """Return one EntityResult per article, in order."""
        results: list[EntityResult | None] = [None] * len(articles)
        keys: dict[int, bytes] = {}  # article -> the key of the capped text the model reads
        spans: dict[bytes, bytes] = {}  # the model's spans of each distinct text (`_packed`)
        todo: dict[bytes, str] = {}  # texts the model has not tagged lately
        for i, article in enumerate(articles):
            if _other_language(article, self.language):
                results[i] = EntityResult((), "skipped_language", self.model_name)
            elif not article.text.strip():
                results[i] = EntityResult((), "empty", self.model_name)
            else:
                text = cap_text(article.text, self.max_chars)
                key = digest(text)
                keys[i] = key
                if key in spans or key in todo:
                    self.reused += 1  # the same text earlier in this batch
                    continue
                known = self.recent.get(key)
                if known is None or not self._fits(known, text):
                    todo[key] = text
                else:
                    spans[key] = known
                    self.reused += 1
        # spaCy keeps every new string it reads (each name, number, typo) in its vocabulary for
        # the life of the process unless read in a memory zone: without one a worker's memory
        # grows with every article of a long stream. Nothing of a Doc outlives the zone: only
        # offsets and label numbers are kept.
        with self.nlp.memory_zone():
            docs = self.nlp.pipe(
                (tokenizable(cased_for_ner(t)) for t in todo.values()), batch_size=self.batch_size
            )
            for key, doc in zip(todo, docs, strict=True):
                spans[key], shareable = self._packed(doc.ents)
                self.recent.put(key, spans[key], shareable)
        for i, key in keys.items():
            raw = self._unpacked(spans[key])
            # Over the whole text: the names the model found in the lead are found again past the
            # cap (`_propagate`), at the cost of a regular expression, not of the model.
            results[i] = EntityResult(
                tuple(build_entities(articles[i].text, raw, articles[i].title)), "ok", self.model_name
            )
        return [r for r in results if r is not None]
