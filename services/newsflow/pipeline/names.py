"""Name keys: the one spelling of a name that entities are joined on (light: no model, no data)."""

from __future__ import annotations

import re
import unicodedata

_POSSESSIVE = re.compile(r"(?:['’]s|['’])$")
# A company's legal form after its name ("Barrick Gold Corp", "Sony Corp.", "Nomura Securities Co
# Ltd", "Apple, Inc.", "Merck & Co"): proof that the name is a company's, and no part of its key
# ("Barrick Gold" in a headline is the same company). Written as companies write them: two
# capitals alone are a state or an office as often ("Denver, CO", "New York AG", "Adelaide, SA").
_LEGAL_FORMS = r"Inc|INC|Corp|CORP|Ltd|LTD|Co|Plc|PLC|LLC|GmbH|SpA|S\.p\.A|N\.V|Bhd"
_LEGAL_FORM = re.compile(rf"(?<=\S)(?:,?\s+(?:&\s+)?(?:{_LEGAL_FORMS})\.?)+$")
# What a person may type for one: any case ("barrick gold corp").
_TYPED_LEGAL_FORM = re.compile(_LEGAL_FORM.pattern, re.I)


def entity_key(name: str) -> str:
    """Return the join key of a name: accents folded, case folded, dots dropped, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", name)
    folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    folded = folded.replace(".", "").replace("’", "'")
    return " ".join(re.sub(r"[^\w' &-]+", " ", folded).split())


def strip_possessive(text: str) -> str:
    """Return text without a possessive ending: "Germany's" and "Germany" name one thing."""
    return _POSSESSIVE.sub("", text)


def without_legal_form(name: str, typed: bool = False) -> str:
    """Return a company's name without the legal form after it ("Sony Corp." -> "Sony"); `typed`:
    the name as a person typed it, in any case."""
    return (_TYPED_LEGAL_FORM if typed else _LEGAL_FORM).sub("", name)
