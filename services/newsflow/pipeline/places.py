"""Place containment from ISO 3166 (pycountry's data): which country a place name is, or lies in.

News names one place at different granularities: one report of the bushfires says "Australia",
another "NSW". Dedup uses this to see that such reports name the same place, not different ones.
Only countries and their first-level subdivisions (states, provinces, regions) are known, by
their ISO names: English ones for Australia, the US, Canada or India, but local ones in many
countries ("Bayern", not "Bavaria"), which are then missed. The lookup takes entity keys
(`entities.entity_key`) and is loaded on first use (about 0.1 s).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import pycountry

from newsflow.pipeline.entities import entity_key

# A subdivision code's own part ("NSW" in AU-NSW) is how news abbreviates some states; codes of
# one or two letters ("CA", "WA") are also common words and initials elsewhere.
MIN_CODE_LETTERS = 3
# The usual English short names of countries whose ISO 3166 names and common names differ from it.
SHORT_NAMES = {
    "US": ("us", "america"),
    "GB": ("uk", "britain", "great britain"),
    "RU": ("russia",),
    "TR": ("turkey",),
    "CZ": ("czech republic",),
    "PS": ("palestine",),
    "CD": ("drc", "dr congo"),
    "CI": ("ivory coast",),
}


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """Return {key: country codes it names} and {key: codes of the countries it lies in}."""
    countries: dict[str, set[str]] = {name: {code} for code, names in SHORT_NAMES.items() for name in names}
    for c in pycountry.countries:
        for name in (c.name, getattr(c, "official_name", None), getattr(c, "common_name", None), c.alpha_3):
            if name:
                countries.setdefault(entity_key(name), set()).add(c.alpha_2)
    regions: dict[str, set[str]] = {}
    for s in pycountry.subdivisions:
        if s.parent_code is not None:  # second-level units (districts, municipalities) are left out
            continue
        regions.setdefault(entity_key(s.name), set()).add(s.country_code)
        own = s.code.partition("-")[2]
        if len(own) >= MIN_CODE_LETTERS and own.isalpha():
            regions.setdefault(own.casefold(), set()).add(s.country_code)
    return (
        {k: frozenset(v) for k, v in countries.items()},
        {k: frozenset(v) for k, v in regions.items()},
    )


def countries_named(keys: Iterable[str]) -> set[str]:
    """Return the ISO codes of the countries among the keys ("australia" -> AU)."""
    table = _tables()[0]
    return {code for key in keys for code in table.get(key, ())}


def countries_around(keys: Iterable[str]) -> set[str]:
    """Return the ISO codes of the countries the keys' states or regions lie in ("nsw" -> AU)."""
    table = _tables()[1]
    return {code for key in keys for code in table.get(key, ())}
