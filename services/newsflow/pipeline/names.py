"""Name keys: the one spelling of a name that entities are joined on (light: no model, no data)."""

from __future__ import annotations

import re
import unicodedata

_POSSESSIVE = re.compile(r"(?:['’]s|['’])$")
# A company's legal form after its name ("Barrick Gold Corp", "Sony Corp.", "Nomura Securities Co
# Ltd", "Apple, Inc."): proof that the name is a company's, and no part of its key ("Barrick
# Gold" in a headline is the same company).
_LEGAL_FORM = re.compile(
    r"(?<=\S)(?:,?\s+(?:Inc|Corp|Ltd|Co|Plc|LLC|AG|SA|NV|N\.V|GmbH|SpA|S\.p\.A|BV|AB|Bhd)\.?)+$", re.I
)


def entity_key(name: str) -> str:
    """Return the join key of a name: accents folded, case folded, dots dropped, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", name)
    folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    folded = folded.replace(".", "").replace("’", "'")
    return " ".join(re.sub(r"[^\w' &-]+", " ", folded).split())


def strip_possessive(text: str) -> str:
    """Return text without a possessive ending: "Germany's" and "Germany" name one thing."""
    return _POSSESSIVE.sub("", text)


def without_legal_form(name: str) -> str:
    """Return a company's name without the legal form after it ("Sony Corp." -> "Sony")."""
    return _LEGAL_FORM.sub("", name)
