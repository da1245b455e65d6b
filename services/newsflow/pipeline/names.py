"""Name keys: the one spelling of a name that entities are joined on (light: no model, no data)."""

from __future__ import annotations

import re
import unicodedata

_POSSESSIVE = re.compile(r"(?:['’]s|['’])$")


def entity_key(name: str) -> str:
    """Return the join key of a name: accents folded, case folded, dots dropped, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", name)
    folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    folded = folded.replace(".", "").replace("’", "'")
    return " ".join(re.sub(r"[^\w' &-]+", " ", folded).split())


def strip_possessive(text: str) -> str:
    """Return text without a possessive ending: "Germany's" and "Germany" name one thing."""
    return _POSSESSIVE.sub("", text)
