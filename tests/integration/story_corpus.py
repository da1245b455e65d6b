"""A synthetic stream of 200 articles in 40 stories: originals, copies and other outlets' rewrites.

Every story has its own people, place, organisation and subject; within a story, five outlets
publish: the original report, a copy of it with other boilerplate, two independent rewrites
(sharing the facts and one quote) and a truncated copy of the first rewrite.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

FIRST = [
    "Amara",
    "Bruno",
    "Chiara",
    "Dmitri",
    "Elena",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kofi",
    "Lena",
    "Mateo",
    "Nadia",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tamar",
]
LAST = [
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Petrov",
    "Castillo",
    "Nakamura",
    "Haddad",
    "Kowalski",
    "Brennan",
    "Abebe",
    "Fontaine",
    "Sorensen",
    "Varga",
    "Delacroix",
    "Mbeki",
    "Oyelaran",
    "Rasmussen",
    "Takahashi",
    "Vasquez",
    "Zielinski",
    "Achterberg",
    "Bellweather",
    "Cardenas",
    "Dunmore",
    "Eriksdottir",
    "Fairbanks",
    "Gallagher",
    "Holloway",
    "Iwasaki",
    "Jankowski",
    "Kristiansen",
    "Lombardi",
    "Marchetti",
    "Novakovic",
    "Oduya",
    "Pemberton",
    "Quiroga",
    "Ravensworth",
    "Steinmetz",
    "Thorvaldsen",
]
CITIES = [
    "Tromso",
    "Valparaiso",
    "Bratislava",
    "Mombasa",
    "Halifax",
    "Tartu",
    "Cusco",
    "Gdansk",
    "Hobart",
    "Ljubljana",
    "Porto Alegre",
    "Kumasi",
    "Reykjavik",
    "Tbilisi",
    "Antofagasta",
    "Da Nang",
    "Plovdiv",
    "Rotorua",
    "Windhoek",
    "Zaragoza",
    "Aarhus",
    "Bergamo",
    "Cork",
    "Dubrovnik",
    "Esbjerg",
    "Fukuoka",
    "Graz",
    "Hue",
    "Iquique",
    "Jaipur",
    "Kaunas",
    "Lviv",
    "Malmo",
    "Nantes",
    "Oaxaca",
    "Pula",
    "Quimper",
    "Riga",
    "Sibiu",
    "Tampere",
]
SUBJECTS = [
    "desalination plant",
    "tram extension",
    "wind farm",
    "stadium roof",
    "harbour dredging",
    "hospital wing",
    "metro tunnel",
    "solar array",
    "flood barrier",
    "airport runway",
    "bridge tolls",
    "ferry terminal",
    "library archive",
    "vaccine depot",
    "steel mill",
    "fishing quotas",
    "glacier museum",
    "rail freight hub",
    "water tariffs",
    "opera house",
    "cable car",
    "bus depot",
    "salmon farms",
    "copper mine",
    "lithium refinery",
    "coastal road",
    "data centre",
    "grain silos",
    "textile factory",
    "orbital launch pad",
    "zoo expansion",
    "pension fund",
    "toll motorway",
    "chess olympiad",
    "wildfire brigade",
    "marathon route",
    "heat pumps",
    "housing cooperative",
    "vineyard cooperative",
    "telescope array",
]
ORGS = [
    "Nordic Infrastructure Bank",
    "Pacific Port Authority",
    "Danube Energy Group",
    "Coastal Water Trust",
    "Atlantic Rail Consortium",
    "Highland Health Board",
    "Meridian Transit Agency",
    "Sunbelt Power Company",
    "Delta Flood Commission",
    "Skyway Aviation Fund",
    "Harbour Bridge Company",
    "Island Ferries Board",
    "National Archive Council",
    "Continental Vaccine Alliance",
    "Ironworks Holding",
    "Fisheries Council",
    "Ice Heritage Foundation",
    "Freightline Logistics",
    "Municipal Water Board",
    "Royal Opera Foundation",
    "Mountain Lift Company",
    "City Bus Authority",
    "Aquaculture Federation",
    "Andes Copper Corporation",
    "Lithium Partners",
    "Coast Road Agency",
    "Cloudvault Systems",
    "Grain Board",
    "Loomworks Group",
    "Orbital Launch Services",
    "Wildlife Park Trust",
    "Civil Servants Pension Fund",
    "Motorway Concessions",
    "Chess Federation",
    "Forest Fire Service",
    "Athletics Union",
    "Green Heat Alliance",
    "Tenants Cooperative Union",
    "Winegrowers League",
    "Southern Observatory",
]
OUTLETS = ["dailyherald", "wiredesk", "citypost", "morningstar", "reprintnews"]


@dataclass(frozen=True)
class CorpusArticle:
    story: int
    variant: int
    outlet: str
    envelope: dict[str, str]

    @property
    def file_name(self) -> str:
        return f"{self.outlet}/story{self.story:02d}-v{self.variant}.json"


def _story(i: int, rng: random.Random) -> list[CorpusArticle]:
    person = f"{FIRST[i % len(FIRST)]} {LAST[i]}"
    surname = LAST[i]
    city, subject, org = CITIES[i], SUBJECTS[i], ORGS[i]
    amount = rng.randint(12, 950)
    day = f"2025-03-{14 + i % 2:02d}"  # one news cycle: all within the dedup window
    quote = f"We will not let the {subject} in {city} become a monument to delay and waste"
    original = (
        f"{person}, the head of the {org}, said on Tuesday that the {subject} in {city} will cost "
        f"{amount} million euros more than planned.\n"
        f"The {org} blamed rising prices and a dispute with contractors for the overrun, which {surname} "
        f"disclosed at a hearing of the regional assembly in {city}.\n"
        f'"{quote}," {surname} told lawmakers, adding that work on the {subject} would resume within weeks.\n'
        f"Critics in {city} said the {org} had ignored warnings about the {subject} for years."
    )
    rewrite_a = (
        f"Lawmakers in {city} reacted angrily after {person} revealed a {amount} million euro overrun on the "
        f"{subject}.\n"
        f'"{quote}," {surname}, who leads the {org}, said at Tuesday\'s hearing.\n'
        f"Opposition members demanded an audit of the {org} and its handling of the {subject} contracts."
    )
    rewrite_b = (
        f"The {subject} project in {city} is over budget by {amount} million euros, {surname} of the {org} "
        f"confirmed.\n"
        f"Contract disputes and prices pushed up the bill for the {subject}, according to {person}.\n"
        f"Residents of {city} have waited years for the {subject} to be finished."
    )
    boiler = "\nFollow our newsroom on social media for more updates.\nShare this article with your friends."
    texts = [
        original,
        "From the wire: " + original + boiler,
        rewrite_a,
        rewrite_b,
        "\n".join(rewrite_a.split("\n")[:2]),
    ]
    titles = [
        f"{subject.capitalize()} in {city} to cost {amount} million more",
        f"{subject.capitalize()} in {city} to cost {amount} million more",
        f"Anger in {city} over {subject} overrun",
        f"{city} {subject} over budget",
        f"Anger in {city} over {subject} overrun",
    ]
    return [
        CorpusArticle(
            i,
            v,
            OUTLETS[v],
            {
                "url": f"https://{OUTLETS[v]}.example/{i}/{v}",
                "outlet": OUTLETS[v],
                "title": titles[v],
                "published": day,
                "text": texts[v],
            },
        )
        for v in range(5)
    ]


def build_corpus(seed: int = 42, stories: int = 40) -> list[CorpusArticle]:
    rng = random.Random(seed)
    articles = [a for i in range(stories) for a in _story(i, rng)]
    rng.shuffle(articles)  # outlets publish interleaved
    return articles


def write_corpus(root: Path, articles: list[CorpusArticle]) -> dict[str, CorpusArticle]:
    """Write one JSON envelope file per article; return {relative path: article}."""
    out = {}
    for a in articles:
        path = root / a.file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(a.envelope))
        out[a.file_name] = a
    return out
