from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from newsflow.pipeline.dedup import (
    NAMES_DIFFER_FACTOR,
    STALE_FACTOR,
    DedupOptions,
    Story,
    StoryIndex,
    semantic_scores,
    story_similarity,
)
from newsflow.pipeline.embed import DIM, default_encoder, quantize
from newsflow.pipeline.entities import EntityTagger, entity_key
from newsflow.pipeline.extract import extract_article
from newsflow.pipeline.features import (
    NUM_PERM,
    StoryFeatures,
    article_features,
    estimated_containment,
    quotations,
)
from newsflow.pipeline.headline import MAX_HEADLINE_CHARS, untitled_headline
from newsflow.pipeline.records import CleanArticle, EntityResult, RawArticle, Source, StoryAssignment

BRIDGE = (
    "The Old Harbour Bridge reopened to traffic on Friday, ending a repair that closed the city's oldest "
    "crossing for more than two years and cost nearly twice the estimate.\n"
    "Mayor Ellen Brooks cut the ribbon in front of commuters, engineers and residents of the harbour district.\n"
    '"This bridge has joined the two halves of our city for a hundred and twelve years," Brooks said.\n'
    "Inspectors found corrosion in the deck supports in 2022 and a second damaged pier in 2023.\n"
    "Traders on Quay Street said the closure had cost them much of their passing trade."
)
BRIDGE_OTHER_OUTLET = (
    "Commuters crossed the harbour bridge again on Friday after Mayor Ellen Brooks reopened it.\n"
    '"This bridge has joined the two halves of our city for a hundred and twelve years," the mayor told the crowd.\n'
    "The repair of the Old Harbour Bridge ran a year late after a damaged pier was found, the council said."
)
ELECTION = (
    "Voters in the northern province elect a new regional parliament on Sunday, with the governing party "
    "trailing the opposition in every poll.\n"
    "Turnout was expected to be high after a campaign dominated by rising energy prices and housing.\n"
    "Polling stations open at seven in the morning and close at eight in the evening."
)


def article(article_id: str, text: str, outlet: str, when: str = "2025-03-14T09:00:00Z") -> CleanArticle:
    raw = RawArticle(article_id, text.encode(), Source(f"{article_id}.txt", outlet, "text/plain", when))
    result = extract_article(raw)
    assert isinstance(result, CleanArticle)
    return result


@pytest.fixture(scope="module")
def tagger() -> EntityTagger:
    return EntityTagger()


def features(tagger: EntityTagger, a: CleanArticle) -> StoryFeatures:
    (entities,) = tagger.tag_batch([a])
    return article_features(a, entities, default_encoder())


def test_second_outlet_joins_existing_story(tagger):
    index = StoryIndex()
    first = index.assign(features(tagger, article("a1", BRIDGE, "harbourtimes")))
    second = index.assign(features(tagger, article("b1", BRIDGE_OTHER_OUTLET, "valleypost")))
    assert first.is_new_story and not second.is_new_story
    assert second.story_id == first.story_id
    assert second.duplicate_of is None
    assert index.stories[first.story_id].outlets == ("harbourtimes", "valleypost")


def test_unrelated_article_starts_its_own_story(tagger):
    index = StoryIndex()
    bridge = index.assign(features(tagger, article("a1", BRIDGE, "harbourtimes")))
    election = index.assign(features(tagger, article("c1", ELECTION, "valleypost")))
    assert election.is_new_story and election.story_id != bridge.story_id


@pytest.mark.parametrize(
    "variant",
    [
        "Wire copy. " + BRIDGE + "\nFollow us for more local news.",  # other boilerplate
        "\n".join(BRIDGE.split("\n")[:3]),  # truncated
        "\n".join(BRIDGE.split("\n")[::-1]),  # paragraphs reordered
        BRIDGE.replace("Friday", "Saturday").replace("twice", "three times"),  # light edits
    ],
    ids=["boilerplate", "truncated", "reordered", "edited"],
)
def test_republished_copy_points_to_the_first_seen_article(tagger, variant):
    index = StoryIndex()
    original = index.assign(features(tagger, article("a1", BRIDGE, "harbourtimes")))
    copy = index.assign(features(tagger, article("w1", variant, "wire")))
    assert copy.duplicate_of == "a1"
    assert copy.story_id == original.story_id
    assert copy.duplicate_similarity is not None and copy.duplicate_similarity >= 0.7


def test_copy_of_a_copy_points_to_the_original(tagger):
    index = StoryIndex()
    index.assign(features(tagger, article("a1", BRIDGE, "harbourtimes")))
    index.assign(features(tagger, article("w1", "Wire. " + BRIDGE, "wire")))
    again = index.assign(features(tagger, article("w2", "Reprint. " + BRIDGE + "\nEnd.", "other")))
    assert again.duplicate_of == "a1"


def test_independent_report_is_not_a_copy(tagger):
    a = features(tagger, article("a1", BRIDGE, "harbourtimes"))
    b = features(tagger, article("b1", BRIDGE_OTHER_OUTLET, "valleypost"))
    assert estimated_containment(a, b) < 0.5


def test_redelivered_article_gets_the_same_answer(tagger):
    index = StoryIndex()
    f = features(tagger, article("a1", BRIDGE, "harbourtimes"))
    assert index.assign(f) == index.assign(f)
    assert len(index) == 1 and len(index.stories) == 1


def test_stories_outside_the_window_are_not_joined_and_expire(tagger):
    index = StoryIndex(DedupOptions(window_hours=72))
    old = index.assign(features(tagger, article("a1", BRIDGE, "harbourtimes", "2025-03-01T09:00:00Z")))
    late = index.assign(
        features(tagger, article("b1", BRIDGE_OTHER_OUTLET, "valleypost", "2025-03-14T09:00:00Z"))
    )
    assert late.story_id != old.story_id
    assert old.story_id not in index.stories and "a1" not in index.articles
    assert index.expired_articles == ["a1"]


def test_a_story_with_several_members_of_one_day_expires_once(tagger):
    index = StoryIndex(DedupOptions(window_hours=72))
    for i in range(3):  # same story, same timestamp: three entries in the age heap
        index.assign(
            features(tagger, article(f"a{i}", BRIDGE + f"\nUpdate {i}.", f"o{i}", "2025-03-01T09:00:00Z"))
        )
    index.assign(features(tagger, article("c1", ELECTION, "valleypost", "2025-03-14T09:00:00Z")))
    assert sorted(index.expired_articles) == ["a0", "a1", "a2"]
    assert len(index.stories) == 1


def test_restore_rebuilds_an_index_that_decides_the_same(tagger):
    arts = [
        article("a1", BRIDGE, "harbourtimes"),
        article("c1", ELECTION, "valleypost"),
        article("w1", "Wire. " + BRIDGE, "wire"),
    ]
    live = StoryIndex()
    decided = [(f, live.assign(f)) for f in (features(tagger, a) for a in arts)]
    rebuilt = StoryIndex()
    for f, decision in decided:
        rebuilt.restore(StoryFeatures.from_dict(f.as_dict()), decision)
    newcomer = features(tagger, article("b1", BRIDGE_OTHER_OUTLET, "valleypost"))
    assert rebuilt.assign(newcomer) == live.assign(newcomer)


def test_features_round_trip_through_json_dicts(tagger):
    f = features(tagger, article("a1", BRIDGE, "harbourtimes"))
    assert StoryFeatures.from_dict(f.as_dict()) == f


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("signature", "AAAAAAEAAAA=", "signature has 2 values"),  # valid base64, two uint32s
        ("embedding", "AQID", "embedding has 3 bytes"),
    ],
)
def test_features_of_the_wrong_shape_are_rejected_when_read(tagger, field, value, message):
    # Caught where the worker can still dead-letter the message, not later inside the index.
    payload = {**features(tagger, article("a1", BRIDGE, "harbourtimes")).as_dict(), field: value}
    with pytest.raises(ValueError, match=message):
        StoryFeatures.from_dict(payload)


def test_seeds_are_one_story_and_not_copies(tagger, seed_raws):
    arts = [extract_article(r) for r in seed_raws]
    assert all(isinstance(a, CleanArticle) for a in arts)
    index = StoryIndex()
    first, second = (index.assign(features(tagger, a)) for a in arts)  # type: ignore[arg-type]
    assert second.story_id == first.story_id
    assert first.duplicate_of is None and second.duplicate_of is None


def _overrun(person: str, city: str, org: str, project: str, amount: int) -> str:
    return (
        f"{person}, the head of the {org}, said on Tuesday that the {project} in {city} will cost "
        f"{amount} million euros more than planned.\n"
        f"The {org} blamed rising prices and a dispute with contractors for the overrun.\n"
        f"Critics in {city} said warnings about the {project} had been ignored for years."
    )


def test_same_theme_about_other_actors_is_another_story(tagger):
    tartu = features(
        tagger,
        article("a1", _overrun("Mari Tamm", "Tartu", "Baltic Transit Agency", "tram extension", 140), "o1"),
    )
    gdansk = features(
        tagger,
        article(
            "b1", _overrun("Piotr Nowak", "Gdansk", "Vistula Port Authority", "harbour tunnel", 210), "o2"
        ),
    )
    index = StoryIndex()
    assert index.assign(gdansk).story_id != index.assign(tartu).story_id
    # Told alike, the two are close in meaning; it is the lack of a shared name that keeps them apart.
    lenient = StoryIndex(DedupOptions(names_to_differ=0))
    assert lenient.assign(gdansk).story_id == lenient.assign(tartu).story_id


def test_a_paraphrase_with_few_shared_words_joins_by_meaning(tagger):
    paraphrase = (
        "Drivers are using the city's oldest crossing again: the harbour bridge reopened on Friday after "
        "more than two years of repairs.\n"
        "Mayor Ellen Brooks led the ceremony. The work ran far over its estimate after engineers "
        "discovered rusted supports and a cracked pier."
    )
    index = StoryIndex()
    first = index.assign(features(tagger, article("a1", BRIDGE, "harbourtimes")))
    second = index.assign(features(tagger, article("b2", paraphrase, "valleypost")))
    assert second.story_id == first.story_id and second.duplicate_of is None


def test_articles_without_entities_still_group_by_meaning():
    a = article("a1", BRIDGE, "harbourtimes")
    b = article("b1", BRIDGE_OTHER_OUTLET, "valleypost")
    empty = EntityResult((), "skipped_language", "none")
    index = StoryIndex()
    first = index.assign(article_features(a, empty, default_encoder()))
    second = index.assign(article_features(replace(b), empty, default_encoder()))
    assert second.story_id == first.story_id


def _synthetic(article_id: str, entities: dict[str, float], seed: int) -> StoryFeatures:
    return StoryFeatures(
        article_id=article_id,
        outlet="wire",
        timestamp=1_741_000_000 + seed,
        title=article_id,
        terms={f"word{seed}": 1.0},
        entities=entities,
        quotes=frozenset(),
        signature=tuple(range(seed * 1000, seed * 1000 + NUM_PERM)),
        shingle_count=100,
    )


def test_a_common_key_leads_only_to_its_most_recent_stories():
    index = StoryIndex(DedupOptions(max_stories_per_key=2))
    # Three unrelated stories that all mention one common name, each with a rare name of its own.
    for i in range(3):
        index.restore(
            _synthetic(f"a{i}", {"Washington": 1.0, f"Rare{i}": 1.0}, i),
            StoryAssignment(f"s{i}", None, None, None, True),
        )
    assert list(index.postings["washington"]) == ["s1", "s2"]
    # Joining a story again makes it the most recent for its keys.
    index.restore(
        _synthetic("b0", {"Washington": 1.0, "Rare0": 1.0}, 3), StoryAssignment("s0", None, None, 0.9, False)
    )
    assert list(index.postings["washington"]) == ["s2", "s0"]
    # The story dropped from the common key is still reached through its rare one.
    candidates = index._candidates(_synthetic("c1", {"Washington": 1.0, "Rare1": 1.0}, 4))
    assert candidates[0].story_id == "s1"


@pytest.mark.parametrize("max_story_entities", [60, 2])
def test_expiry_leaves_no_story_in_the_postings(max_story_entities):
    # One-report stories keep no copy of their keys (their centroid tells them); a story of two
    # reports does, and so does one whose centroid is cut shorter than its report's names (2).
    index = StoryIndex(DedupOptions(max_story_entities=max_story_entities))
    names = {"Alpha Corp": 1.0, "Bravo Inc": 0.9, "Charlie Ltd": 0.8, "Delta Group": 0.7}
    index.restore(_synthetic("a0", names, 0), StoryAssignment("s0", None, None, None, True))
    index.restore(_synthetic("a1", {"Echo": 1.0}, 1), StoryAssignment("s1", None, None, None, True))
    index.restore(_synthetic("a2", {"Foxtrot": 1.0}, 2), StoryAssignment("s1", None, None, 0.9, False))
    assert set(index.story_keys) == ({"s1"} if max_story_entities == 60 else {"s0", "s1"})
    assert {sid for ids in index.postings.values() for sid in ids} == {"s0", "s1"}
    assert sorted(index.expire(2_000_000_000)) == ["s0", "s1"]
    assert index.postings == {} and index.story_keys == {}


def test_containment_reads_full_and_stored_signatures_alike():
    full = _synthetic("a0", {}, 0)
    index = StoryIndex()
    index.restore(full, StoryAssignment("s0", None, None, None, True))
    kept = index.articles["a0"]
    assert len(kept.signature) == 4 * NUM_PERM  # bytes of uint32 values
    half = replace(full, article_id="b0", signature=full.signature[: NUM_PERM // 2] + (7,) * (NUM_PERM // 2))
    assert estimated_containment(half, kept) == estimated_containment(half, full) == pytest.approx(2 / 3)
    assert estimated_containment(full, kept) == 1.0


def test_short_texts_whose_hashes_share_low_bits_are_not_copies():
    # One shingle each, whose hashes agree in their low 16 bits: under datasketch's affine
    # permutations every value then agrees in those bits, so a signature cut to 16 bits a value
    # would call these a copy.
    a, b = (
        article(aid, f"Market closes at {tag} points", "wire") for aid, tag in (("a", "kqb"), ("b", "qrb"))
    )
    fa, fb = (article_features(x, EntityResult((), "none", "none"), default_encoder()) for x in (a, b))
    low = [np.asarray(f.signature, dtype=np.uint32) & 0xFFFF for f in (fa, fb)]
    assert (low[0] == low[1]).all()  # the case this guards
    index = StoryIndex()
    index.assign(fa)
    assert index.assign(fb).duplicate_of is None


def test_quotations_pair_each_opening_mark_with_its_own_closing_mark():
    text = (
        "The “Caucasian Knot” has reported that since September displaced families have been living in "
        "a “tent city” in the lobby.\n"
        'Their lawyer said "we will not leave until every family has a home" and went inside.\n'
        "‘We don’t know where the children will sleep tonight,’ one mother said.\n"
        '"An opening mark left open at the end of a paragraph\n'
        '"The next paragraph reopens the quotation, as news style does," she added.'
    )
    assert quotations(text) == [
        "we will not leave until every family has a home",
        "We don’t know where the children will sleep tonight,",
        "The next paragraph reopens the quotation, as news style does,",
    ]


def _named(article_id: str, entities: list[str], terms: list[str]) -> StoryFeatures:
    """An article whose embedding is the same as every other's: only the names rule can part them."""
    return replace(
        _synthetic(article_id, dict.fromkeys(map(entity_key, entities), 0.5), 0),
        terms=dict.fromkeys(terms, 0.3),
        embedding=quantize(np.ones(DIM, dtype=np.float32) / np.sqrt(DIM)),
    )


def _story_of(f: StoryFeatures) -> Story:
    story = Story("s", f.timestamp, f.timestamp, f.title)
    story.add(f, DedupOptions())
    return story


@pytest.mark.parametrize(
    ("first", "second", "apart"),
    [
        # Other actors, nothing of one side's names in the other: different events.
        ((["Mari Tamm", "Tartu"], ["tram"]), (["Piotr Nowak", "Gdansk"], ["tunnel"]), True),
        # One report's "Mike Pompeo" is another's "Pompeo".
        ((["Mike Pompeo", "CIA"], ["diplomat"]), (["Pompeo", "Russia Today"], ["interview"]), False),
        # A name tagged in one text is a salient word, left untagged, of the other.
        (
            (["Getty Images", "Business Insider"], ["coronavirus"]),
            (["Coronavirus", "Knox News"], ["pandemic"]),
            False,
        ),
        # A country and one of its states are one place told at two granularities...
        ((["Australia", "HMAS Choules"], ["bushfires"]), (["NSW", "Batemans Bay"], ["blazes"]), False),
        # ...but two states of one country are two places.
        ((["California", "Mari Tamm"], ["tram"]), (["Texas", "Piotr Nowak"], ["tunnel"]), True),
        # Two full names sharing a word are two people, two boards.
        (
            (["Chiara Moreau", "Highland Health Board"], ["tram"]),
            (["Chiara Cardenas", "Grain Board"], ["chiara"]),
            True,
        ),
    ],
)
def test_the_names_rule_compares_the_words_of_names(first, second, apart):
    a, b = _named("a", *first), _named("b", *second)
    # Identical embeddings: the names alone decide. Apart, the score is scaled down, and the
    # article never joins, whatever the threshold.
    expected = NAMES_DIFFER_FACTOR if apart else 1.0
    assert story_similarity(b, _story_of(a)) == pytest.approx(expected, abs=0.01)
    assert story_similarity(a, _story_of(b)) == pytest.approx(expected, abs=0.01)
    # A salient word in common makes the story a candidate (the inverted index); other
    # signatures keep the second from being a copy of the first.
    a, b = (
        replace(f, terms={**f.terms, "ferry": 0.3}, signature=tuple(range(i * 1000, i * 1000 + NUM_PERM)))
        for i, f in enumerate((a, b))
    )
    index = StoryIndex(DedupOptions(story_threshold=0.1))
    first_story = index.assign(a).story_id
    assert (index.assign(b).story_id != first_story) is apart


def test_a_story_whose_reports_have_spread_is_harder_to_join_than_a_coherent_one():
    rng = np.random.default_rng(5)
    v, w = rng.standard_normal(DIM), rng.standard_normal(DIM)
    w -= (w @ v) / (v @ v) * v  # orthogonal to v
    v, w = v / np.linalg.norm(v), w / np.linalg.norm(w)

    def story(*vectors: np.ndarray) -> Story:
        s = Story("s", 0.0, 0.0, "")
        for i, vec in enumerate(vectors):
            s.add(replace(_synthetic(f"m{i}", {}, i), embedding=quantize(vec)), DedupOptions())
        return s

    coherent = story(v, v)
    # Two reports on either side of v: their centroid points at v as exactly as the coherent
    # story's, but they share only that direction (cosine 0.28 with each other).
    u1, u2 = (v + 0.8 * w) / np.hypot(1, 0.8), (v - 0.8 * w) / np.hypot(1, 0.8)
    spread = story(u1, u2)
    close, far = semantic_scores(v, [coherent, spread]).tolist()
    assert close == pytest.approx(1.0, abs=0.01)
    # The centroid's cosine (1) times the square root of the coherence |u1 + u2| / 2.
    assert far == pytest.approx(np.sqrt(np.linalg.norm(u1 + u2) / 2), abs=0.01)
    assert far < 0.9
    # A story of one is compared with its report as it is.
    (single,) = semantic_scores(v, [story(u1)]).tolist()
    assert single == pytest.approx(float(u1 @ v), abs=0.01)
    # A member without an embedding (no words) is not in the centroid, nor in its coherence.
    coherent.add(replace(_synthetic("wordless", {}, 9), embedding=b""), DedupOptions())
    (still,) = semantic_scores(v, [coherent]).tolist()
    assert still == pytest.approx(1.0, abs=0.01)


def test_a_report_days_after_a_story_counts_less_than_one_the_same_day():
    first = _named("a", ["Mari Tamm", "Tartu"], ["tram"])
    story = _story_of(first)  # its reports span one instant, first.timestamp

    def after(hours: float) -> float:
        return story_similarity(
            replace(first, article_id="b", timestamp=first.timestamp + hours * 3600), story
        )

    # Within a day of the story's reports, time does not count; then the score falls linearly to
    # STALE_FACTOR at the window's edge (72 h by default); reports before the story count alike.
    assert after(2) == after(24) == after(-20) == pytest.approx(1.0, abs=0.01)
    assert after(48) == pytest.approx((1 + STALE_FACTOR) / 2, abs=0.01)
    assert after(72) == after(-72) == pytest.approx(STALE_FACTOR, abs=0.01)
    # A window of a day or less has no decay (the story is simply gone past it).
    short = DedupOptions(window_hours=12)
    late = replace(first, article_id="b", timestamp=first.timestamp + 11 * 3600)
    assert story_similarity(late, story, options=short) == pytest.approx(1.0, abs=0.01)


def _orthonormal_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    v, w = rng.standard_normal(DIM), rng.standard_normal(DIM)
    w -= (w @ v) / (v @ v) * v
    return v / np.linalg.norm(v), w / np.linalg.norm(w)


def _report(article_id: str, seed: int, vector: np.ndarray, names: list[str]) -> StoryFeatures:
    return replace(
        _synthetic(article_id, dict.fromkeys(map(entity_key, names), 0.5), seed), embedding=quantize(vector)
    )


def _two_stories(cosine: float, other_names: list[str]) -> tuple[StoryIndex, np.ndarray]:
    """Index a story of two reports along v ("s0") and one of a report at `cosine` from v ("s1"),
    as if the two had arrived before anything linked them."""
    v, w = _orthonormal_pair(11)
    u = cosine * v + np.sqrt(1 - cosine**2) * w
    index = StoryIndex()
    names = ["Harbour Bridge", "Maria Jensen"]
    index.restore(_report("a0", 0, v, names), StoryAssignment("s0", None, None, None, True))
    index.restore(_report("a1", 1, v, names), StoryAssignment("s0", None, None, 0.9, False))
    index.restore(_report("b0", 2, u, other_names), StoryAssignment("s1", None, None, None, True))
    return index, v


def test_a_report_that_joins_two_alike_stories_with_a_shared_name_merges_them():
    index, v = _two_stories(0.8, ["Harbour Bridge", "Tom Berg"])
    s1_keys = set(index._story_keys(index.stories["s1"]))
    decided = index.assign(_report("c0", 3, v, ["Harbour Bridge", "Maria Jensen", "Tom Berg"]))
    # The larger story keeps its id; the other's members, keys and copies lead there now.
    assert decided.story_id == "s0" and not decided.is_new_story
    assert set(index.stories) == {"s0"}
    survivor = index.stories["s0"]
    assert survivor.members == ["a0", "a1", "c0", "b0"]
    assert survivor.merged_from == ("s1",)
    assert survivor.embedded == 4
    assert index.articles["b0"].assignment.story_id == "s0"
    assert all("s1" not in index.postings[k] and "s0" in index.postings[k] for k in s1_keys)
    assert [(story.story_id, into) for story, into, _ in index.merged] == [("s1", "s0")]
    copy = replace(_report("b0-copy", 2, v, []), signature=_synthetic("b0", {}, 2).signature)
    assert index.assign(copy).story_id == "s0"
    # One story now: it expires whole.
    index.expire(2_000_000_000)
    assert index.stories == {} and index.articles == {} and index.postings == {}


@pytest.mark.parametrize(
    ("cosine", "other_names", "options"),
    [
        (0.5, ["Harbour Bridge", "Tom Berg"], DedupOptions()),  # joinable, but not alike as wholes
        (0.8, ["Tom Berg", "Valley Post"], DedupOptions()),  # alike, but no name in common
        (0.8, ["Harbour Bridge", "Tom Berg"], DedupOptions(merge_threshold=0)),  # merges turned off
    ],
)
def test_stories_are_not_merged_without_both_a_shared_name_and_whole_likeness(cosine, other_names, options):
    index, v = _two_stories(cosine, other_names)
    index.options = options
    decided = index.assign(_report("c0", 3, v, ["Harbour Bridge", "Maria Jensen", "Tom Berg", "Valley Post"]))
    assert decided.story_id == "s0"
    assert set(index.stories) == {"s0", "s1"} and index.merged == []
    assert index.articles["b0"].assignment.story_id == "s1"


def test_a_merge_keeps_every_key_within_its_bound_of_stories():
    index = StoryIndex(DedupOptions(max_stories_per_key=2))
    for i, names in enumerate([{"Alpha": 1.0}, {"Alpha": 1.0}, {"Alpha": 1.0}, {"Bravo": 1.0}]):
        index.restore(_synthetic(f"a{i}", names, i), StoryAssignment(f"s{i}", None, None, None, True))
    assert index.postings["alpha"] == ["s1", "s2"]  # s0 fell off the bounded list
    index.merge("s0", "s3")  # s3 now has s0's key too: it is the most recent story for it
    assert index.postings["alpha"] == ["s2", "s3"]
    assert index.postings["bravo"] == ["s3"]


def _theme_and_two_events(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors at cosine 0.5: reports of two events on one theme (half of each is the theme)."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((DIM, 3)))
    theme, first, second = basis.T
    return (theme + first) / np.sqrt(2), (theme + second) / np.sqrt(2)


NAMES = ["Harbour Bridge", "Maria Jensen"]


def test_a_story_whose_members_tell_two_events_is_split_with_the_late_group_leaving():
    one, two = _theme_and_two_events(5)
    index = StoryIndex()
    for i, (vector, article_id) in enumerate([(one, "a0"), (one, "a1"), (two, "b0")]):
        index.assign(replace(_report(article_id, i, vector, NAMES), outlet=f"outlet{i}"))
    # Each report joined (a cosine of 0.5 is above the join threshold): one story of three.
    assert list(index.stories) == ["s-a0"] and index.splits == []
    decided = index.assign(_report("b1", 3, two, NAMES))
    # Four members in two groups at a cosine of 0.5: the group without the first report leaves,
    # and the report that showed it is decided into the new story.
    new_id = "split-b1"
    assert decided.story_id == new_id
    kept, new = index.stories["s-a0"], index.stories[new_id]
    assert kept.members == ["a0", "a1"] and new.members == ["b0", "b1"]
    assert new.split_from == "s-a0" and kept.split_into == (new_id,)
    assert [(n.story_id, k.story_id if k else None) for n, k in index.splits] == [(new_id, "s-a0")]
    assert index.articles["b0"].assignment.story_id == new_id
    # Each part's embedding, times, outlets and headline are its own members'.
    assert new.headline == "b0" and new.outlets == ("outlet2", "wire")
    assert new.first_seen == 1_741_000_002 and kept.last_seen == 1_741_000_001
    assert kept.embedded == new.embedded == 2
    assert float(semantic_scores(two, [new])[0]) == pytest.approx(1.0, abs=0.01)
    assert float(semantic_scores(two, [kept])[0]) == pytest.approx(0.5, abs=0.02)
    # Both are found by the story's keys, and a later report goes to its own event's part.
    assert all(new_id in index.postings[k] for k in index._story_keys(kept))
    assert index.assign(_report("a2", 4, one, NAMES)).story_id == "s-a0"
    assert index.assign(_report("b2", 5, two, NAMES)).story_id == new_id
    # A record's version never goes back: the kept part counts the split as changes.
    assert kept.revisions == 3


@pytest.mark.parametrize(
    ("vectors", "options"),
    [
        ("one story", DedupOptions()),  # all four alike
        ("lone report apart", DedupOptions()),  # one report apart is not a second event
        ("two events", DedupOptions(split_threshold=0)),  # splits turned off
        ("two events", DedupOptions(split_threshold=0.45)),  # the groups are more alike than that
    ],
)
def test_a_story_is_not_split_without_two_groups_that_read_apart(vectors, options):
    one, two = _theme_and_two_events(7)
    order = {
        "one story": [one, one, one, one],
        "lone report apart": [one, one, one, two],
        "two events": [one, one, two, two],
    }[vectors]
    index = StoryIndex(options)
    for i, vector in enumerate(order):
        index.assign(_report(f"a{i}", i, vector, NAMES))
    assert list(index.stories) == ["s-a0"] and index.splits == []
    assert index.stories["s-a0"].members == ["a0", "a1", "a2", "a3"]


def test_a_split_replayed_onto_its_members_alone_drops_the_emptied_story():
    """On a rebuild where the story's other members have left the window, the split moves every
    member it still has: the emptied story leaves no trace in the index."""
    one, two = _theme_and_two_events(5)
    index = StoryIndex()
    for i, article_id in enumerate(["b0", "b1"]):
        index.restore(_report(article_id, i, two, NAMES), StoryAssignment("s-a0", None, None, None, i == 0))
    assert index.split("s-a0", "split-b1", ["b0", "b1"]) is not None
    assert list(index.stories) == ["split-b1"]
    assert all("s-a0" not in ids for ids in index.postings.values())
    # Applied again (a replayed record), it changes nothing.
    assert index.split("s-a0", "split-b1", ["b0", "b1"]) is None


def test_split_checks_thin_out_as_a_story_grows():
    from newsflow.pipeline.dedup import split_due

    due = [n for n in range(1, 70) if split_due(n)]
    assert due[:13] == list(range(4, 17))
    assert due[13:] == [20, 24, 28, 32, 40, 48, 56, 64]


def test_a_shape_record_naming_none_of_a_storys_members_leaves_the_index_as_it_was():
    from newsflow.pipeline.dedup import StoryShape

    one, _ = _theme_and_two_events(5)
    index = StoryIndex()
    for i, article_id in enumerate(["a0", "a1"]):
        index.assign(_report(article_id, i, one, NAMES))
    (story,) = index.stories.values()
    before = ({a: x.assignment for a, x in index.articles.items()}, list(story.members))
    shape = StoryShape.of(story, index.story_keys_of(story))
    index.reshape(story.story_id, shape, 3, ["split-x"], ["x0", "x1"])
    assert ({a: x.assignment for a, x in index.articles.items()}, list(story.members)) == before
    assert index.waiting() == [] and index.stories[story.story_id].revisions == 0


def test_a_story_that_gets_reports_for_weeks_keeps_only_the_windows_in_memory():
    """A running story (a report every hour for three weeks, window 72 h) stays one open story
    whose record counts and lists every member the consumers saw, while the index holds only
    its members of the last window or so (`StoryIndex.age_out`)."""
    from newsflow.pipeline.records import MAX_STORY_MEMBERS, story_record

    v, _ = _orthonormal_pair(3)
    index = StoryIndex(DedupOptions(window_hours=72, split_threshold=0))
    hours = 21 * 24
    versions, indexed, keys = [], [], []
    for h in range(hours):
        t = 1_741_000_000 + h * 3600
        # From a new outlet each day; each report has a word of its own (`_synthetic`).
        f = replace(_report(f"a{h}", h, v, ["Harbour Bridge"]), timestamp=t, received=t, outlet=f"o{h // 24}")
        story = index.stories[index.assign(f).story_id]
        record = story_record(story)
        versions.append(record["version"])
        indexed.append(len(index.articles))
        keys.append(len(index.story_keys_of(story)))
    assert len(index.stories) == 1 and story.story_id == "s-a0"
    assert record["member_count"] == hours and versions == sorted(set(versions))  # one more each time
    assert record["headline"] == "a0" and story.first_seen == 1_741_000_000
    # Its first members, and its latest (up to as many) of those still in the window.
    half = MAX_STORY_MEMBERS // 2
    assert record["members"] == [f"a{h}" for h in range(half)] + story.members[-half:]
    # In memory: the window's 72 reports, and old ones until they are an eighth of the story.
    assert max(indexed) <= 72 * 8 // 7 + 1 and len(index.articles) == len(story.members) >= 72
    assert story.aged_out + len(story.members) == hours
    assert all(f"a{h}" in index.articles for h in range(hours - 72, hours))
    assert "a0" not in index.articles and index.lsh.query(_report("a0", 0, v, []).signature) == set()
    gone = [a for _, leaving in index.aged_out_stories for a in leaving]
    assert len(gone) == story.aged_out and len(set(gone)) == len(gone)
    # The keys it is found by are those of its names and words, bounded, and of its latest reports.
    assert max(keys[-200:]) <= DedupOptions().max_story_entities + 90
    assert record["outlets"] == [f"o{d}" for d in range(21)]  # every outlet that ever reported it


def test_a_report_received_long_ago_joins_a_running_story_without_leaving_it_at_once():
    """A report whose receipt time is older than the window (a dead letter replayed, an archive
    read out of order) joins the story it belongs to; letting old members go never takes the
    member that is joining."""
    v, _ = _orthonormal_pair(3)
    index = StoryIndex(DedupOptions(window_hours=12, split_threshold=0))
    start = 1_741_000_000
    for i in range(10):
        index.assign(
            replace(
                _report(f"a{i}", i, v, ["Harbour Bridge"]), timestamp=start + i * 60, received=start + i * 60
            )
        )
    late_story = index.assign(
        replace(
            _report("a10", 10, v, ["Harbour Bridge"]), timestamp=start + 11 * 3600, received=start + 11 * 3600
        )
    )
    late = replace(_report("late", 30, v, ["Harbour Bridge"]), timestamp=start + 1800, received=start + 1800)
    index.expire(start + 13 * 3600)  # the clock moves on: the first ten are old now
    index.watermark = start + 13 * 3600
    assignment = index.assign(late)
    assert assignment.story_id == late_story.story_id == "s-a0"
    assert "late" in index.articles and index.stories["s-a0"].members[-1] == "late"
    assert index.stories["s-a0"].aged_out == 10 and "a0" not in index.articles


def test_a_story_that_grows_only_by_taking_in_others_lets_old_members_go_too():
    """Each half day an event opens a story of its own, which a later report links to a running
    story that takes it in: the running story never gets a report of its own, and still keeps
    only its window's members."""
    rng = np.random.default_rng(5)
    days = 30
    basis, _ = np.linalg.qr(rng.standard_normal((DIM, days + 1)))
    theme, events = basis.T[0], basis.T[1:]

    def report(article_id: str, day: int, names: list[str], hours: float) -> StoryFeatures:
        x = 2 * theme + events[day] + rng.standard_normal(DIM) * 0.02
        t = 1_741_000_000 + hours * 3600
        seed = 10 * day + int(article_id.rsplit("-", 1)[1])
        return replace(_report(article_id, seed, x / np.linalg.norm(x), names), timestamp=t, received=t)

    index = StoryIndex(DedupOptions(window_hours=24))
    for k in range(4):
        index.assign(report(f"d0-{k}", 0, ["Harbour Bridge", "Maria Jensen"], k))
    merges = 0
    for day in range(1, days):
        names = [f"Place{day} Town", f"Person{day} Surname"]
        index.assign(report(f"d{day}-0", day, names, 12 * day))
        for k in (1, 2):
            index.assign(report(f"d{day}-{k}", day, [*names, "Harbour Bridge"], 12 * day + k))
            merges += len(index.merged)
            index.merged.clear()
    running = index.stories["s-d0-0"]
    assert merges >= days - 2 and running.aged_out > 0
    assert len(running.members) < 3 * 3 * 2 + 8 + 3  # two days of three reports, a group, a day's
    assert len(running.members) + running.aged_out == 4 + 3 * (days - 1) - sum(
        len(s.members) for sid, s in index.stories.items() if sid != "s-d0-0"
    )


def test_an_untitled_article_is_headed_by_its_first_line_when_a_headline_else_by_its_first_words():
    # A plain text's headline ran into its first paragraph, cut mid-phrase.
    body = "The Senate voted on Tuesday to pass the bill after a long night of debate in the chamber."
    assert untitled_headline("Wildfire forces evacuations\n\n" + body) == "Wildfire forces evacuations"
    lead = "The Senate voted on Tuesday to pass the bill after a long …"
    # a dateline, a byline or a lone word is no headline; the lead stands in
    assert untitled_headline("WASHINGTON (Reuters) -\n" + body).startswith(
        "WASHINGTON (Reuters) - The Senate"
    )
    assert untitled_headline("By Jane Doe, Staff Writer\n" + body).startswith("By Jane Doe, Staff Writer The")
    assert untitled_headline("Advertisement\n" + body) == (
        "Advertisement The Senate voted on Tuesday to pass the bill after a …"
    )
    assert untitled_headline(body) == body  # a first line of up to 20 words is whole
    assert untitled_headline(body + " Senators then went home.") == lead
    # bounded like a title, whatever the script
    assert len(untitled_headline("漢" * 400)) == MAX_HEADLINE_CHARS + 2
    assert untitled_headline("") == ""
