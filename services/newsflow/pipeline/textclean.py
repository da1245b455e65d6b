"""General boilerplate rules for article text, and per-outlet boilerplate learned from recurrence.

Rules act on whole lines (one paragraph per line), except for notices that scrapers glue onto
neighbouring text and that therefore have to be cut out of the middle of a line.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Set
from dataclasses import dataclass, field
from typing import Any

# Notices that scrapers glue into running text (missing newline, hard-wrapped across lines).
INLINE_NOTICES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "video_notice",
        re.compile(
            r"To\s+view\s+this\s+video\s+please\s+enable\s+JavaScript,?\s+and\s+consider\s+upgrading\s+to\s+a"
            r"\s+web\s+browser\s+that\s+supports\s+HTML5\s+video\.?",
            re.IGNORECASE,
        ),
    ),
    (
        "js_notice",
        re.compile(
            r"(?:Please\s+)?enable\s+JavaScript\s+(?:in\s+your\s+browser\s+)?to\s+view\s+[^.\n]*\.?", re.I
        ),
    ),
)

# A heading that introduces a list of links to other articles; its items follow on short lines.
_LINK_LIST_HEAD = re.compile(
    r"^\s*(?:also\s+read|read\s+also|read\s+more|more\s+from|related(?:\s+(?:stories|articles|news|coverage))?"
    r"|recommended(?:\s+stories)?|you\s+may\s+also\s+like|most\s+read|trending(?:\s+now)?|top\s+stories"
    r"|more\s+on\s+this\s+story|see\s+also|don'?t\s+miss)\s*(?:[:\-–—|]\s*(?P<rest>.*))?$",
    re.IGNORECASE,
)
_LIST_ITEM = re.compile(r"^\s*(?:[-•*·▪►»]|\d+[.)])\s+\S")

# A line that is the whole text of one of the page's links, in five words or more, is a headline
# pointing elsewhere (a related story, a teaser), not the article's prose; shorter link lines (a
# product name, "Staff Reports") belong to articles as often. On the two halves of the dev pages
# (bench/extraction_eval.py), 3 to 5 words do best on half A and 5 or 6 on half B: F1 0.969 ->
# 0.972 and 0.987 -> 0.988 at 5.
MIN_LINK_LINE_WORDS = 5
_WORD_TOKEN = re.compile(r"[^\W_]+")


def link_key(text: str) -> str:
    """Return a text's words, case-folded, one space apart: how a line is matched to a link's text."""
    return " ".join(_WORD_TOKEN.findall(text)).casefold()


LINE_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # Embedded tweet: the tweet text carries its short link, the attribution line a handle and a date.
    ("social_embed", re.compile(r"\bpic\.twitter\.com/\w+", re.I)),
    (
        "social_embed",
        re.compile(r"^\s*[—–-]+\s*[^()\n]{1,80}\(@\w{1,30}\)\s+\w+\s+\d{1,2},\s+\d{4}\s*$"),
    ),
    ("social_embed", re.compile(r"^\s*A\s+post\s+shared\s+by\b.*$", re.I)),
    (
        "share_prompt",
        re.compile(
            r"^\s*(?:share\s+(?:this|on)\b.*|(?:share|tweet|email|print|copy\s+link|comments?)"
            r"(?:\s*[|/,]\s*(?:share|tweet|email|print|copy\s+link|whatsapp|facebook|twitter|linkedin))+\s*)$",
            re.I,
        ),
    ),
    (
        "contact_blurb",
        re.compile(
            r"^\s*(?:get\s+in\s+touch|contact\s+(?:us|our)|email\s+us|write\s+to\s+us|send\s+(?:us\s+)?your)\b"
            r".*(?:@\w[\w.-]*\.\w+|\bat\b.*\.(?:com|co\.uk|org|net)\b).*$",
            re.I,
        ),
    ),
    (
        "newsletter",
        re.compile(
            r"^\s*(?:sign\s+up|subscribe)\b.{0,80}\b(?:newsletter|email|inbox|updates|alerts)\b.{0,120}$"
            r"|^\s*(?:for\s+more\s+(?:stories|news|articles)\s+like\s+this|follow\s+us\s+on|"
            r"download\s+(?:the|our)\s+\w+\s+app|click\s+here\s+to)\b.{0,160}$",
            re.I,
        ),
    ),
    (
        "byline",
        re.compile(
            r"^\s*(?:(?:By|BY|by)\s+[A-Z][\w.'-]+(?:\s+[A-Z][\w.'-]+){0,3}(?:\s*(?:,|and|&)\s*[A-Z][\w.'-]+(?:\s+[A-Z][\w.'-]+){0,3})*"
            r"|(?i:published|updated|last\s+updated|first\s+published)\s*(?:on|:)?\s+\d.{0,40})\s*$"
        ),
    ),
    (
        "ad_marker",
        re.compile(r"^\s*(?:advertisement|sponsored(?:\s+content)?|story\s+continues\s+below)\s*$", re.I),
    ),
    (
        "newsletter",
        re.compile(
            r"^\s*(?:thanks\s+for\s+(?:signing\s+up|subscribing)|keep\s+an\s+eye\s+on\s+your\s+inbox"
            r"|there\s+was\s+an\s+error\s+processing\s+your\s+subscription|[\w'’ -]{1,40}\s+newsletter)\b.{0,100}$",
            re.I,
        ),
    ),
    (
        "copyright",
        re.compile(r"^\s*(?:©|\(c\)\s|copyright\b).{0,160}$|\ball\s+rights\s+reserved\.?\s*$", re.I),
    ),
    # A machine timestamp alone on a line is schema.org or player leftovers, never prose. (Bare
    # URLs are not: articles list sources and websites on lines of their own.)
    ("timestamp", re.compile(r"^\s*\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?\s*$")),
    (
        "caption",
        re.compile(
            r"^\s*(?:photo|image|picture|photograph|credit|caption)s?\s*[:|].{0,200}$"
            r"|^.{0,200}\S[.!?]\s*(?:Reuters|Getty\s+Images|AFP(?:/Getty\s+Images)?|AP\s+Photo\b.*|EPA|Shutterstock)\s*$",
            re.I,
        ),
    ),
)

# Embedded posts quoted in plain text carry no markup to tell them apart from the article, so in
# plain text they are removed; an HTML extractor already decides on them from the page structure.
STRUCTURE_AWARE_SKIP = frozenset({"social_embed"})

# Short lines in a link list are headlines; a long line means the article has resumed.
_MAX_LINK_ITEM_CHARS = 200

# Line rules judge whole lines, and no boilerplate line is longer than this (the longest is an
# embedded tweet: 280 characters, its link and an attribution). A longer line is prose with
# something glued into it, often a whole plain-text article sent without line breaks, which a
# rule must not delete for one link or notice inside it.
_MAX_BOILERPLATE_LINE_CHARS = 400


@dataclass(frozen=True, slots=True)
class CleanResult:
    text: str
    removed: dict[str, int]

    @property
    def removed_total(self) -> int:
        return sum(self.removed.values())


def _count(removed: dict[str, int], rule: str, n: int = 1) -> None:
    removed[rule] = removed.get(rule, 0) + n


def _fold(line: str) -> str:
    return " ".join(line.casefold().split()).strip(" .:!?")


# Terminal escape sequences (colours, cursor moves), then any other control character but a line
# break or a tab: in a record they would act on the terminal of whoever prints it.
_ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def without_controls(text: str) -> str:
    """Return the text without terminal escape sequences and control characters (line breaks,
    carriage returns and tabs stay)."""
    return _CONTROLS.sub("", _ESCAPES.sub("", text)) if _CONTROLS.search(text) else text


def one_line(text: str) -> str:
    """Return a field's value (a title, a name, a URL) as one line: no control characters, each run
    of white space (line breaks too) one space."""
    return " ".join(without_controls(text).split())


def normalize_text(text: str) -> str:
    """Return NFC text with one paragraph per line: unified line breaks (Unicode's line and
    paragraph separators too, which consumers' line splitting may or may not honour), no blank
    lines, no edge spaces, no control characters, no byte-order marks."""
    text = unicodedata.normalize("NFC", without_controls(text))
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    text = text.replace("\u2028", "\n").replace("\u2029", "\n").replace("\ufeff", "")
    return "\n".join(ln.strip() for ln in text.split("\n") if ln.strip())


def _is_link_line(line: str, link_texts: Set[str]) -> bool:
    key = link_key(line)
    return key.count(" ") + 1 >= MIN_LINK_LINE_WORDS and key in link_texts


def apply_rules(
    text: str, from_markup: bool = False, title: str | None = None, link_texts: Set[str] = frozenset()
) -> CleanResult:
    """Return the text with general boilerplate removed, and how many pieces each rule removed.

    `from_markup` says the text comes from an HTML extractor (which already judged embeds);
    lines repeating the `title` (headline, teaser and share-card copies of it) are dropped too, and
    so are lines that are wholly the text of a link of MIN_LINK_LINE_WORDS words or more:
    `link_texts` holds the `link_key` of the page's links. Other repeated lines stay: lists in articles
    legitimately repeat ("Also at Walmart").
    """
    removed: dict[str, int] = {}
    rules = [(n, p) for n, p in LINE_RULES if not (from_markup and n in STRUCTURE_AWARE_SKIP)]
    headline = _fold(title) if title else None
    for name, pattern in INLINE_NOTICES:
        text, n = pattern.subn("\n", text)
        if n:
            _count(removed, name, n)
    kept: list[str] = []
    in_link_list = False
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped:
            in_link_list = False
            kept.append("")
            continue
        head = _LINK_LIST_HEAD.match(stripped)
        if head and len(head.group("rest") or "") <= _MAX_LINK_ITEM_CHARS:
            in_link_list = True
            _count(removed, "link_list")
            continue
        if in_link_list and (
            _LIST_ITEM.match(stripped) or len(stripped) <= 120 and not stripped.endswith(".")
        ):
            _count(removed, "link_list")
            continue
        in_link_list = False
        rule = (
            next((name for name, pattern in rules if pattern.search(stripped)), None)
            if len(stripped) <= _MAX_BOILERPLATE_LINE_CHARS
            else None
        )
        if rule:
            _count(removed, rule)
            continue
        if headline and _fold(stripped) == headline:
            _count(removed, "headline")
            continue
        if link_texts and _is_link_line(stripped, link_texts):
            _count(removed, "link_line")
            continue
        kept.append(stripped)
    return CleanResult(normalize_text("\n".join(kept)), removed)


def line_fingerprint(line: str) -> str:
    """Return a short stable hash of a line with case, digits and spacing folded."""
    folded = re.sub(r"\d+", "0", " ".join(line.lower().split()))
    return hashlib.blake2b(folded.encode(), digest_size=8).hexdigest()


def fingerprints(lines: Iterable[str]) -> tuple[str, ...]:
    """Return the distinct fingerprints of the non-blank lines, sorted (what a model learns from)."""
    return tuple(sorted({line_fingerprint(ln) for ln in lines if ln.strip()}))


@dataclass
class OutletLines:
    docs: int = 0
    lines: dict[str, int] = field(default_factory=dict)


@dataclass
class BoilerplateModel:
    """Per-outlet document frequency of lines; a line seen in many of an outlet's articles is boilerplate.

    A line is dropped once it has appeared in at least `min_docs` articles of the outlet and in at
    least `min_share` of them: recurring footers qualify, a quote that two articles share does not.
    Memory is bounded by `max_lines_per_outlet` (the rarest lines are pruned first) and
    `max_outlets` (the least recently seen outlet is forgotten).
    """

    min_docs: int = 5
    min_share: float = 0.2
    max_lines_per_outlet: int = 4000
    max_outlets: int = 2000
    outlets: dict[str, OutletLines] = field(default_factory=dict)
    # Outlets dropped for `max_outlets` since the owner last emptied this (whoever stores the
    # outlets' states deletes theirs).
    forgotten: list[str] = field(default_factory=list)

    def is_boilerplate(self, outlet: str, fingerprint: str) -> bool:
        state = self.outlets.get(outlet)
        if state is None:
            return False
        df = state.lines.get(fingerprint, 0)
        return df >= self.min_docs and df >= self.min_share * state.docs

    def observe(self, outlet: str, lines: Iterable[str]) -> None:
        """Count each distinct line of one article of `outlet`."""
        self.observe_fingerprints(outlet, fingerprints(lines))

    def observe_fingerprints(self, outlet: str, fps: Iterable[str]) -> None:
        """Count one article of `outlet` given its lines' fingerprints (`fingerprints`)."""
        state = self.outlets.pop(outlet, None) or OutletLines()
        self.outlets[outlet] = state  # re-insert: dict order is the recency order
        state.docs += 1
        for fp in set(fps):
            state.lines[fp] = state.lines.get(fp, 0) + 1
        if len(state.lines) > self.max_lines_per_outlet:
            # Ties broken by the line, not by dict order: a model rebuilt from its stored state
            # (keys in another order) must keep the same lines.
            keep = sorted(state.lines.items(), key=lambda kv: (-kv[1], kv[0]))[
                : self.max_lines_per_outlet // 2
            ]
            state.lines = dict(keep)
        self._forget_beyond_limit()

    def _forget_beyond_limit(self) -> None:
        while len(self.outlets) > self.max_outlets:
            oldest = next(iter(self.outlets))
            del self.outlets[oldest]
            self.forgotten.append(oldest)

    def clean(self, outlet: str, text: str, learn: bool = True) -> tuple[str, int]:
        """Return the text without this outlet's learned boilerplate lines, and how many were dropped."""
        lines = text.split("\n")
        kept = [ln for ln in lines if not (ln.strip() and self.is_boilerplate(outlet, line_fingerprint(ln)))]
        if learn:
            self.observe(outlet, lines)
        return "\n".join(kept), sum(1 for ln in lines if ln.strip()) - sum(1 for ln in kept if ln.strip())

    def outlet_state(self, outlet: str) -> dict[str, Any] | None:
        """Return one outlet's state as a JSON-able dict (for a table keyed by outlet)."""
        state = self.outlets.get(outlet)
        return {"docs": state.docs, "lines": state.lines} if state else None

    def load_outlet_state(self, outlet: str, data: Any) -> None:
        """Load one outlet's state from `outlet_state`'s form; ValueError (model unchanged) if malformed."""
        try:
            state = OutletLines(
                docs=int(data["docs"]), lines={str(k): int(v) for k, v in dict(data["lines"]).items()}
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"unreadable boilerplate state of {outlet!r}: {type(exc).__name__}: {exc}"
            ) from exc
        self.outlets.pop(outlet, None)  # re-inserted: the latest loaded is the most recent
        self.outlets[outlet] = state
        self._forget_beyond_limit()
