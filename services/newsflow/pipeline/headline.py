"""The headline shown for an article without a title (a story's, and `newsflow-tail`'s line).

Kept apart from the dedup features (which import the models' libraries), so that a reader of the
output topics can show it without loading them.
"""

from __future__ import annotations

import re

# A text without a title is headed by its first line when that reads as a headline (a
# plain-text report's: a few words, not a dateline or a byline), else by its first words.
HEADLINE_WORDS = (3, 20)
LEAD_HEADLINE_WORDS = 12
MAX_HEADLINE_CHARS = 200
_NOT_A_HEADLINE = re.compile(r"^by\s|[-\u2013\u2014:]$", re.IGNORECASE)


def untitled_headline(text: str) -> str:
    """Return the headline a story shows for an article without a title."""
    first = text.lstrip().split("\n", 1)[0].strip()
    fewest, most = HEADLINE_WORDS
    if fewest <= len(first.split()) <= most and not _NOT_A_HEADLINE.search(first):
        return _bounded(first, False)
    words = text.split(maxsplit=LEAD_HEADLINE_WORDS)
    return _bounded(" ".join(words[:LEAD_HEADLINE_WORDS]), len(words) > LEAD_HEADLINE_WORDS)


def _bounded(headline: str, cut: bool) -> str:
    if len(headline) > MAX_HEADLINE_CHARS:
        headline, cut = headline[:MAX_HEADLINE_CHARS].rstrip(), True
    return headline + " …" if cut else headline
