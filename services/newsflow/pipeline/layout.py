"""Names that a text's layout tells, where the NER model reads it badly: datelines, results tables
and lists, headline slugs, and the lines a name cannot run across.

Spans are (start, end, label) over the text, spaCy's labels; `with_layout` returns the model's
spans with these in place of the model's that overlap them, `without_slug` cuts a headline's slug
from them and `line_pieces` cuts them at line breaks. `entities.build_entities` applies all three
before it groups mentions.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from wordfreq import zipf_frequency

from newsflow.pipeline.names import entity_key
from newsflow.pipeline.places import countries_around, country_key, is_place

# What the model tags: (start, end, label) over the text it was given.
Span = tuple[int, int, str]

# The model's labels of a place.
PLACE_LABELS = frozenset({"GPE", "LOC", "FAC"})
# A word this frequent in English is a word before it is a name ("Updated", "Net", "Profit",
# "Image"); a name made of such words alone is left to the model.
_WORD_ZIPF = 4.5


def _all_common_words(name: str) -> bool:
    return all(zipf_frequency(w, "en") >= _WORD_ZIPF for w in re.findall(r"[^\W\d_]+", name.lower()))


# --- Lines ---------------------------------------------------------------------------------------

_LINE = re.compile(r"\S(?:[^\n]*\S)?")
# A text whose lines mostly stop mid-sentence is hard-wrapped (plain text at 72 columns): there a
# line break is a space, except next to a line this short (a heading, a caption's label, a name
# on its own line). Elsewhere each line is a paragraph, heading or caption.
_SHORT_LINE_WORDS = 4
_SENTENCE_END = re.compile(r"[.!?:;\"'”’)\]]$")


def _line_at(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text[start : end if end >= 0 else len(text)]


def _hard_wrapped(text: str) -> bool:
    """Whether most long lines stop mid-sentence and a quarter of the lines or more go on with a
    lower-case word (a list of headlines stops without a stop too, but each of its lines starts
    with a capital)."""
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    long = [ln for ln in lines if len(ln.split()) > _SHORT_LINE_WORDS]
    return (
        len(long) >= 4
        and 2 * sum(not _SENTENCE_END.search(ln) for ln in long) > len(long)
        and 4 * sum(ln[0].islower() for ln in lines[1:]) >= len(lines) - 1 > 0
    )


def line_pieces(text: str, spans: Iterable[Span]) -> Iterator[Span]:
    """Yield the spans, those that run across a line break cut at it, each part with the label
    but a common word after the first ("Image", "Writing").

    The model reads through line breaks: "Ahmed Mohamed" and the caption "Image : Twitter" below
    it came out one PERSON, and so did a heading "Election Results" and the name after it. In a
    hard-wrapped text only breaks next to a short line cut ("talks with Benjamin\nNetanyahu").
    """
    wrapped: bool | None = None
    for start, end, label in spans:
        if text.find("\n", start, end) < 0:
            yield start, end, label
            continue
        if wrapped is None:
            wrapped = _hard_wrapped(text)
        breaks = [i for i in range(start, end) if text[i] == "\n"]
        if wrapped and not any(
            min(len(_line_at(text, i - 1).split()), len(_line_at(text, i + 1).split())) <= _SHORT_LINE_WORDS
            for i in breaks
        ):
            yield start, end, label
            continue
        for n, line in enumerate(_LINE.finditer(text, start, end)):
            piece = line.group()
            # After the first part, a common word alone is a caption's label or a paragraph's
            # first word ("Image", "Writing"), not a name.
            if n == 0 or " " in piece or is_place(entity_key(piece)) or not _all_common_words(piece):
                yield line.start(), line.end(), label


# A wire headline in capitals opens with its desk's slug: "SOCCER - ...", "MOTOR RACING - ...".
_SLUG_DASH = " - "


def without_slug(text: str, spans: Iterable[Span]) -> Iterator[Span]:
    """Yield the spans, one that runs from a headline's slug into its first name cut after the
    slug's dash ("BASEBALL - YANKEES" read as one organisation is "YANKEES"). A headline here is a
    line in capitals; the slug, what comes before the line's first " - "."""
    for start, end, label in spans:
        line_start = text.rfind("\n", 0, start) + 1
        dash = text.find(_SLUG_DASH, line_start, end)
        if start < dash and text.find("\n", line_start, dash) < 0 and in_capitals(_line_at(text, start)):
            start = dash + len(_SLUG_DASH)
        yield start, end, label


def in_capitals(line: str) -> bool:
    """Whether a line is written in capitals (nine letters in ten or more, at least four)."""
    letters = [c for c in line if c.isalpha()]
    return len(letters) >= 4 and sum(c.isupper() for c in letters) >= 0.9 * len(letters)


# --- Datelines -----------------------------------------------------------------------------------

_CAPS_WORD = r"[^\W\d_a-z](?:[^\W\d_a-z]|[.'’-])+"
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_AGENCY = r"\( ?(?:Reuters|AP|AFP|UPI|dpa|Xinhua|Bloomberg|PA|ANSA|EFE|Kyodo|Yonhap|Interfax|TASS) ?\)"
# A wire dateline opens a report with where it was filed, in capitals, then the date in the
# wire's own form, or a date and the agency: "FRANKFURT 1996-08-22", "AL-AIN, United Arab Emirates
# 1996-12-06", "PARIS, Dec 5 (Reuters) -". A web page's "UPDATED Dec 5, 2024" has no agency. In
# tokenized text a space comes before the comma and inside the parentheses ("AKRON , Ohio").
_DATELINE = re.compile(
    rf"^(?P<place>{_CAPS_WORD}(?: {_CAPS_WORD}){{0,3}})"
    r"(?: ?, (?P<region>[^\W\d_a-z][\w.'’-]*(?: [^\W\d_a-z][\w.'’-]*){0,3}))?(?: ?,)? "
    rf"(?:\d{{4}}-\d{{2}}-\d{{2}}\b|(?:{_MONTH} \d{{1,2}} )?{_AGENCY})",
    re.M,
)
# An acronym of this many letters or fewer is an organisation's ("FIFA, May 5 (Reuters) - FIFA
# said"), not where the report was filed.
_ACRONYM_LETTERS = 4


def _may_be_place(name: str, acronym: bool) -> bool:
    """Whether a dateline's name may be a place: one a gazetteer knows ("ROME", "NEW YORK"), or
    neither an acronym ("FIFA") nor common words alone ("WASHINGTON POST", "JOHN SMITH",
    "Thursday")."""
    if is_place(entity_key(name)):
        return True
    if acronym and " " not in name and len(name.strip(".'’-")) <= _ACRONYM_LETTERS:
        return False
    return not _all_common_words(name)


def dateline_places(text: str) -> list[Span]:
    """Return the places of the text's datelines: the city, and the region or country after it."""
    found = []
    for m in _DATELINE.finditer(text):
        if not _may_be_place(m.group("place"), acronym=True):
            continue
        found.append((m.start("place"), m.end("place"), "GPE"))
        if m.group("region") and _may_be_place(m.group("region"), acronym=False):
            found.append((m.start("region"), m.end("region"), "GPE"))
    return found


# --- Results tables ------------------------------------------------------------------------------

# A line of a results table or standings: names (teams, parties) each followed by whole numbers,
# and nothing else, with two names ("Arsenal 2 West Ham 0") or three numbers ("Sheffield Wednesday
# 3 3 0 0 6 2 9"): one name and a number is a heading ("Step 2").
_NAME_WORD = r"[^\W\d_a-z][\w.'’&-]*"
# Lower-case words inside a name ("Real Sociedad de Futbol", "Van der Sar").
_PARTICLE = r"de|del|da|do|van|von|der"
_TABLE_NAME = rf"{_NAME_WORD}(?: (?:{_NAME_WORD}|{_PARTICLE}|of|and|&))*"
_TABLE_LINE = re.compile(rf"^(?:{_TABLE_NAME}(?: \d{{1,3}})+ ?)+$", re.M)
_TABLE_NAMES = re.compile(_TABLE_NAME)
_TABLE_NUMBER = re.compile(r"\b\d+\b")
# Two such lines make a table; one alone may be a sentence's fragment.
_MIN_TABLE_LINES = 2


def _table_lines(text: str) -> list[tuple[int, int]]:
    return [
        m.span()
        for m in _TABLE_LINE.finditer(text)
        if len(_TABLE_NAMES.findall(m.group())) >= 2 or len(_TABLE_NUMBER.findall(m.group())) >= 3
    ]


def table_names(text: str, spans: Sequence[Span]) -> list[Span]:
    """Return the names of the text's results tables, labelled.

    The model reads a line of names and numbers badly (of a league's twelve clubs it found one, as
    a person). In a table a name is a competitor or a place: a country is the country (or its
    team: GPE, as news names it), a state or region a place ("Florida 29 Ohio 18", electoral
    votes); the model's place stays a place, unless the model took the name for a person
    ("Blackburn 1 Tottenham 2": a club); where the model saw a person start, a person (a poll:
    "Bill Clinton 49 Bob Dole 37"); anything else it missed, an organisation (a club, a party).
    Other names of common words alone ("Net Profit", "Total") are a row's label, or a name the
    model knows better than the table.
    """
    lines = _table_lines(text)
    if len(lines) < _MIN_TABLE_LINES:
        return []
    found: list[Span] = []
    for line_start, line_end in lines:
        for m in _TABLE_NAMES.finditer(text, line_start, line_end):
            s, e = m.span()
            key = entity_key(m.group())
            model = {label for ms, _, label in spans if s <= ms < e}
            if _country_or_region(m.group()):
                label = "GPE"
            elif _all_common_words(m.group()):
                continue
            elif model & PLACE_LABELS:
                label = min(model & PLACE_LABELS)
            elif "PERSON" in model and not is_place(key):
                label = "PERSON"
            else:
                label = "ORG"
            found.append((s, e, label))
    return found


# --- Results in a sentence's place: scorers, ranked lists -----------------------------------------

# A name here starts where a line, a clause or a parenthesis does and has at most four words, so
# that a longer name ("Brighton and Hove Albion") is left to the model rather than cut, and a
# line of capitalised words costs a pass per clause, not per word. Texts may come tokenized, a
# space before punctuation and inside parentheses ("Contra ( 31st ) ,"): the patterns allow it.
_RESULT_NAME = rf"{_NAME_WORD}(?: (?:{_NAME_WORD}|{_PARTICLE})){{0,3}}"
_CLAUSE_START = r"(?:^|(?<=[,;:)(–-] )|(?<=\()|(?<=\. ))"
# A match result with its scorers, the wire's summary: "Ajax Amsterdam 3 (Kanu 12, Litmanen 45
# pen) NAC Breda 1 (Verbeek 60)". Each side is a team and its score; in parentheses, the players
# who scored and the minutes.
_SCORER = rf"{_RESULT_NAME} \d{{1,3}}(?:st|nd|rd|th)?(?: (?:pen|og|penalty))?"
_SCORED = re.compile(
    rf"{_CLAUSE_START}(?P<team>{_RESULT_NAME}) \d{{1,3}} ?\( ?(?P<scorers>{_SCORER}(?: ?[,;] {_SCORER})*) ?\)",
    re.M,
)
_SCORER_NAME = re.compile(rf"(?P<scorer>{_RESULT_NAME}) \d")
# Most texts have no score or minute by a parenthesis: looking for one first costs a fraction of
# matching the patterns at every clause.
_RESULT_HINT = re.compile(
    r"\d ?\( ?[^\W\d_a-z]|\( ?\d{1,3}(?:st|nd|rd|th)\b|^\d{1,3}\.? [^\W\d_a-z].*\),? \d", re.M
)
# A scorer with the minute as an ordinal in parentheses: "Cosmin Contra (31st)".
_SCORED_AT = re.compile(
    rf"{_CLAUSE_START}(?P<scorer>{_RESULT_NAME}) ?\( ?\d{{1,3}}(?:st|nd|rd|th)(?: (?:minute|min|pen|penalty))? ?\)",
    re.M,
)
# A ranked result: a place, the competitor, in parentheses the country they compete for, and the
# result: "1. Linford Christie (Britain) 10.05", "137 Greg Norman (Australia) 68 69". (A numbered
# list without results is not one: "1. Machu Picchu (Peru)".)
_RANKED = re.compile(
    rf"^\d{{1,3}}\.? (?P<name>{_RESULT_NAME}) ?\( ?(?P<country>{_TABLE_NAME}) ?\),? \d", re.M
)


def _country_or_region(name: str) -> bool:
    key = entity_key(name)
    return bool(country_key(key) or countries_around([key]))


def _a_player(name: str) -> bool:
    """Whether a scorer's name may be a player's: not common words alone, not a place."""
    return not _all_common_words(name) and not is_place(entity_key(name))


def result_names(text: str, spans: Sequence[Span]) -> list[Span]:
    """Return the names of results written in running text, sorted, without overlaps.

    A result with scorers: its teams (countries and regions GPE, as news names a national side,
    else ORG; a team of common words alone, "Top 5 (Apple 12)", is no result) and its scorers
    (PERSON, unless a place: "Group B 4 (Brazil 7)"); a scorer by an ordinal minute (PERSON, unless
    a place: "Finland (1st)"). A ranked list: the countries in parentheses (GPE), and the
    competitors as people where the model took most of those it read for people
    (athletes; a list of companies or cities, "1. Toyota (Japan) 10.5 million", keeps the
    model's reading).
    """
    found: list[Span] = []
    if not _RESULT_HINT.search(text):
        return found
    for m in _SCORED.finditer(text):
        team = m.group("team")
        if _country_or_region(team):
            found.append((*m.span("team"), "GPE"))
        elif _all_common_words(team):
            continue
        else:
            found.append((*m.span("team"), "ORG"))
        for scorer in _SCORER_NAME.finditer(text, m.start("scorers"), m.end("scorers")):
            if _a_player(scorer.group("scorer")):
                found.append((*scorer.span("scorer"), "PERSON"))
    for m in _SCORED_AT.finditer(text):
        if _a_player(m.group("scorer")):
            found.append((*m.span("scorer"), "PERSON"))
    ranked = [m for m in _RANKED.finditer(text) if _country_or_region(m.group("country"))]
    read = [{label for ms, me, label in spans if ms < m.end("name") and m.start("name") < me} for m in ranked]
    # Of the competitors the model read as names, more people than not.
    people = 2 * sum("PERSON" in labels for labels in read) > sum(bool(labels) for labels in read)
    for m in ranked:
        if people and _a_player(m.group("name")):
            found.append((*m.span("name"), "PERSON"))
        found.append((*m.span("country"), "GPE"))
    return _first_of_overlapping(found)


def _first_of_overlapping(spans: Sequence[Span]) -> list[Span]:
    kept: list[Span] = []
    for span in sorted(spans):
        if not kept or kept[-1][1] <= span[0]:
            kept.append(span)
    return kept


def with_layout(text: str, spans: Sequence[Span], datelines: Sequence[Span] = ()) -> list[Span]:
    """Return the model's spans with the datelines' places (`dateline_places`), the tables' names
    and the results' (`result_names`) in place of those of the model's that overlap them."""
    # Where two layouts claim overlapping names, the one that starts first is kept.
    found = _first_of_overlapping([*datelines, *table_names(text, spans), *result_names(text, spans)])
    if not found:
        return list(spans)
    starts = [s for s, _, _ in found]
    kept = []
    for span in spans:
        # The found spans do not overlap one another: only the last one starting before this
        # span's end can overlap it.
        i = bisect_left(starts, span[1]) - 1
        if i < 0 or found[i][1] <= span[0]:
            kept.append(span)
    return sorted(kept + found)
