"""The dedup writer's stage: one outcome per article, whatever is delivered twice, and a desk
rebuilt from its own state decides as the original would."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from newsflow.pipeline import jsonio
from newsflow.pipeline.dedup import DedupOptions
from newsflow.pipeline.desk import (
    BOILERPLATE,
    DEAD_LETTER,
    ENRICHED,
    STATE,
    STORIES,
    DedupDesk,
    article_message,
    load_boilerplate,
    rejected_message,
)
from newsflow.pipeline.embed import default_encoder
from newsflow.pipeline.enrich import Enriched
from newsflow.pipeline.entities import EntityTagger
from newsflow.pipeline.features import StoryFeatures, article_features
from newsflow.pipeline.records import EntityResult, Origin, Rejection, dead_letter_record
from newsflow.pipeline.schema import schema_errors
from newsflow.pipeline.textclean import BoilerplateModel, OutletLines, fingerprints
from tests.unit.test_dedup import BRIDGE, BRIDGE_OTHER_OUTLET, ELECTION, _orthonormal_pair, _report, article

ORIGIN = Origin("newsflow.articles.raw", 0, 1)


@pytest.fixture(scope="module")
def tagger() -> EntityTagger:
    return EntityTagger()


def message(
    tagger: EntityTagger,
    article_id: str,
    text: str,
    outlet: str,
    when: str = "2025-03-14T09:00:00Z",
    replays: int = 0,
    lines: tuple[str, ...] = (),
    produced: float | None = None,
) -> bytes:
    a = article(article_id, text, outlet, when)
    (entities,) = tagger.tag_batch([a])
    features = article_features(a, entities, default_encoder())
    return article_message(Enriched(a, entities, features, lines), replays, ORIGIN, produced)


def rejected(article_id: str, replays: int = 0, received: float = 1_741_943_000.0) -> bytes:
    headers = {"article-id": article_id, "replay-count": str(replays)}
    dead = dead_letter_record(
        Rejection("extract", "empty", "nothing"), b"", article_id.encode(), headers, origin=ORIGIN
    )
    return rejected_message(article_id, dead, received)


def destinations(decision) -> list[str]:  # type: ignore[no-untyped-def]
    return [o.destination for o in decision.outputs]


def test_an_article_comes_out_once_with_its_story_and_state(tagger):
    desk = DedupDesk()
    first = desk.decide(message(tagger, "a1", BRIDGE, "harbourtimes"), ORIGIN)
    assert first.outcome == "new_story"
    assert destinations(first) == [ENRICHED, STORIES, STATE]
    assert schema_errors("enriched-article", jsonio.loads(first.outputs[0].value)) == []
    assert schema_errors("story", jsonio.loads(first.outputs[1].value)) == []
    second = desk.decide(message(tagger, "b1", BRIDGE_OTHER_OUTLET, "valleypost"), ORIGIN)
    assert second.outcome == "joined_story"
    assert second.record["story_id"] == first.record["story_id"]
    # delivered again (a restarted clean stage): nothing to write
    assert desk.decide(message(tagger, "a1", BRIDGE, "harbourtimes"), ORIGIN).outcome == "duplicate"


def test_a_decision_carries_when_the_producer_sent_the_article_not_its_crawl_time(tagger):
    # The end-to-end latency is measured from the raw message's Kafka timestamp: a WARC record's
    # received_at is when it was crawled, maybe days before.
    desk = DedupDesk()
    sent = message(
        tagger, "a1", BRIDGE, "harbourtimes", when="2020-01-01T00:00:00Z", produced=1_764_900_000.25
    )
    assert desk.decide(sent, ORIGIN).produced == 1_764_900_000.25
    assert desk.decide(message(tagger, "b1", BRIDGE, "valleypost"), ORIGIN).produced is None
    bogus = jsonio.dumps(
        {
            **jsonio.loads(
                message(tagger, "c1", BRIDGE, "x"),
            ),
            "produced": "soon",
        }
    )
    assert desk.decide(bogus, ORIGIN).produced is None


def test_an_article_is_enriched_or_dead_lettered_never_both(tagger):
    desk = DedupDesk()
    assert desk.decide(message(tagger, "a1", BRIDGE, "harbourtimes"), ORIGIN).outcome == "new_story"
    assert desk.decide(rejected("a1"), ORIGIN).outcome == "duplicate"
    dead = desk.decide(rejected("r1"), ORIGIN)
    assert dead.outcome == "dead_letter" and destinations(dead) == [DEAD_LETTER, STATE]
    assert desk.decide(message(tagger, "r1", ELECTION, "valleypost"), ORIGIN).outcome == "duplicate"
    assert desk.decide(rejected("r1"), ORIGIN).outcome == "duplicate"


def test_a_replay_is_decided_again_once(tagger):
    desk = DedupDesk()
    assert desk.decide(rejected("r1"), ORIGIN).outcome == "dead_letter"
    replayed = message(tagger, "r1", ELECTION, "valleypost", replays=1)
    assert desk.decide(replayed, ORIGIN).outcome == "new_story"
    assert desk.decide(replayed, ORIGIN).outcome == "duplicate"  # replayed twice: one output


def test_a_desk_rebuilt_from_its_state_remembers_and_decides_the_same(tagger):
    options = DedupOptions()
    desk = DedupDesk(options)
    state = []
    for m in (message(tagger, "a1", BRIDGE, "harbourtimes"), rejected("r1")):
        state += [(o.key, o.value) for o in desk.decide(m, ORIGIN).outputs if o.destination == STATE]
    rebuilt = DedupDesk.from_state(state, options)
    assert rebuilt.decide(rejected("r1"), ORIGIN).outcome == "duplicate"
    assert rebuilt.decide(message(tagger, "a1", BRIDGE, "harbourtimes"), ORIGIN).outcome == "duplicate"
    late = message(tagger, "b1", BRIDGE_OTHER_OUTLET, "valleypost")
    assert rebuilt.decide(late, ORIGIN).record["story_id"] == desk.decide(late, ORIGIN).record["story_id"]


def test_expiry_writes_tombstones_and_a_rebuilt_desk_forgets(tagger):
    desk = DedupDesk(DedupOptions(window_hours=72))
    state = []
    for m in (
        message(tagger, "a1", BRIDGE, "harbourtimes", "2025-03-01T09:00:00Z"),
        rejected("r1", received=1_740_819_600.0),  # 2025-03-01
        message(tagger, "c1", ELECTION, "valleypost", "2025-03-14T09:00:00Z"),
    ):
        state += [(o.key, o.value) for o in desk.decide(m, ORIGIN).outputs if o.destination == STATE]
    tombstones = {k for k, v in state if v is None}
    assert tombstones == {b"a/a1", b"r/0/r1"}
    rebuilt = DedupDesk.from_state(state)
    assert list(rebuilt.index.articles) == ["c1"] and not rebuilt.rejected


def test_a_story_the_window_closes_gets_a_final_closed_record(tagger):
    desk = DedupDesk(DedupOptions(window_hours=72))
    first = desk.decide(message(tagger, "a1", BRIDGE, "harbourtimes", "2025-03-01T09:00:00Z"), ORIGIN)
    (opened,) = [jsonio.loads(o.value) for o in first.outputs if o.destination == STORIES]
    assert opened["status"] == "open" and opened["closed_at"] is None
    later = desk.decide(message(tagger, "c1", ELECTION, "valleypost", "2025-03-14T09:00:00Z"), ORIGIN)
    stories = {o.key: jsonio.loads(o.value) for o in later.outputs if o.destination == STORIES}
    closed = stories[opened["story_id"].encode()]
    assert closed["status"] == "closed" and closed["members"] == ["a1"] and closed["closed_at"]
    assert schema_errors("story", closed) == [] and schema_errors("story", opened) == []


def test_a_closed_story_is_deleted_from_the_stories_topic_after_its_retention(tagger):
    import pickle

    from newsflow.pipeline import cloudevents

    options = DedupOptions(window_hours=72, closed_retention_hours=168)
    desk = DedupDesk(options)
    first = desk.decide(message(tagger, "a1", BRIDGE, "harbourtimes", "2025-03-01T09:00:00Z"), ORIGIN)
    story_id = first.record["story_id"].encode()
    # 14 March: the window closes the story (a closed record, no tombstone yet).
    closing = desk.decide(message(tagger, "c1", ELECTION, "valleypost", "2025-03-14T09:00:00Z"), ORIGIN)
    assert [o.value is None for o in closing.outputs if o.key == story_id] == [False]
    state = [(o.key, o.value) for d in (first, closing) for o in d.outputs if o.destination == STATE]
    snapshot = pickle.dumps(desk.snapshot())
    # A week after it closed, a tombstone deletes it, and its memory in the state topic.
    late = message(tagger, "e1", BRIDGE_OTHER_OUTLET, "valleypost", "2025-03-21T10:00:00Z")
    for d in (
        desk,
        DedupDesk.from_state(state, options),
        DedupDesk.from_snapshot(pickle.loads(snapshot), options),
    ):
        outputs = d.decide(late, ORIGIN).outputs
        assert (STORIES, story_id, None) in [(o.destination, o.key, o.value) for o in outputs]
        assert (STATE, b"c/" + story_id, None) in [(o.destination, o.key, o.value) for o in outputs]
        assert story_id.decode() not in d.closed
        # The delete is an event too, for a sink that routes by type (no data: no schema).
        (deleted,) = [
            cloudevents.as_dict(o.headers) for o in outputs if o.destination == STORIES and o.value is None
        ]
        assert (deleted["type"], deleted["id"], deleted["subject"]) == (
            "dev.newsflow.story.deleted",
            f"{story_id.decode()}/deleted",
            story_id.decode(),
        )
        assert "dataschema" not in deleted and "datacontenttype" not in deleted
    # 0 keeps closed stories for good, those remembered under an earlier setting too.
    kept = DedupDesk.from_state(state, DedupOptions(window_hours=72, closed_retention_hours=0))
    assert kept.closed and not [
        o for o in kept.decide(late, ORIGIN).outputs if o.destination == STORIES and o.value is None
    ]
    keep = DedupDesk(DedupOptions(window_hours=72, closed_retention_hours=0))
    outputs = [
        o
        for when in ("2025-03-01T09:00:00Z", "2025-03-14T09:00:00Z", "2025-04-30T09:00:00Z")
        for o in keep.decide(message(tagger, f"k{when[5:10]}", BRIDGE, "harbourtimes", when), ORIGIN).outputs
    ]
    assert not [o for o in outputs if o.destination == STORIES and o.value is None]


def test_an_event_time_far_ahead_cannot_close_the_window(tagger):
    desk = DedupDesk(DedupOptions(window_hours=72))
    first = desk.decide(message(tagger, "a1", BRIDGE, "harbourtimes"), ORIGIN)
    # Features that claim the event happened in 2099 (received now, like the others).
    future = jsonio.loads(message(tagger, "f1", ELECTION, "wire"))
    future["features"]["timestamp"] = 4_070_908_800.0
    assert desk.decide(jsonio.dumps(future), ORIGIN).outcome == "new_story"
    # The clock is the time of receipt: nothing expired, the next report still joins its story.
    assert "a1" in desk.index.articles
    later = desk.decide(message(tagger, "b1", BRIDGE_OTHER_OUTLET, "valleypost"), ORIGIN)
    assert later.record["story_id"] == first.record["story_id"]


def test_a_message_that_is_not_ours_is_dead_lettered_under_its_key():
    desk = DedupDesk()
    decision = desk.decide(b"{not json", ORIGIN, b"k1")
    assert decision.outcome == "dead_letter" and decision.record["key"] == "k1"
    assert decision.record["stage"] == "dedup" and decision.record["reason"] == "bad_features"
    assert desk.decide(b"{not json", ORIGIN, b"k1").outcome == "duplicate"


def test_a_dead_letter_of_a_desk_with_no_article_yet_outlives_the_first_articles_expiry(tagger):
    # Remembered at the desk's clock, 0 before its first article: that article's expiry forgot
    # it, and the same message delivered again was dead-lettered a second time.
    desk = DedupDesk()
    assert desk.decide(b"{not json", ORIGIN, b"k1").outcome == "dead_letter"
    assert desk.decide(message(tagger, "a1", BRIDGE, "harbourtimes"), ORIGIN).outcome == "new_story"
    assert desk.decide(b"{not json", ORIGIN, b"k1").outcome == "duplicate"


def test_any_malformed_features_message_is_a_dead_letter_not_a_crash(tagger):
    desk = DedupDesk()
    body = jsonio.loads(message(tagger, "m1", BRIDGE, "harbourtimes"))
    body["features"]["terms"] = []  # a list where an object belongs
    decision = desk.decide(jsonio.dumps(body), ORIGIN, b"m1")
    assert decision.outcome == "dead_letter" and decision.record["reason"] == "bad_features"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda fields: fields.update(extraction=None),
        lambda fields: fields.update(extraction=["ok"]),
        lambda fields: fields.pop("source"),
        lambda fields: fields["source"].update(outlet=7),
        lambda fields: fields.pop("article_id"),
    ],
    ids=["extraction null", "extraction a list", "no source", "outlet a number", "no article_id"],
)
def test_record_fields_the_writer_cannot_read_are_a_dead_letter_before_anything_is_indexed(tagger, mutate):
    # Read after the index had taken the article, such fields raised out of `decide`: the writer
    # took that for a failed write and rebuilt and retried the same batch for ever.
    desk = DedupDesk()
    body = jsonio.loads(message(tagger, "m1", BRIDGE, "harbourtimes"))
    mutate(body["fields"])
    decision = desk.decide(jsonio.dumps(body), ORIGIN, b"m1")
    assert decision.outcome == "dead_letter" and decision.record["reason"] == "bad_features"
    assert "m1" not in desk.index.articles and not desk.index.stories
    assert desk.decide(message(tagger, "m2", BRIDGE, "harbourtimes"), ORIGIN).outcome == "new_story"


@pytest.mark.parametrize("where", ["the index's split", "the story's record"])
def test_a_desk_that_raises_part_way_costs_the_article_a_dead_letter_and_the_desk_a_rebuild(
    tagger, monkeypatch, where
):
    desk = DedupDesk()
    desk.decide(message(tagger, "a1", BRIDGE, "harbourtimes"), ORIGIN)

    def broken(*_args: object) -> None:
        raise RuntimeError(f"{where} went wrong")

    # Raised after the index took the article in: it was then taken for a repeat, and dropped
    # (or, out of the records it is written with, raised out of `decide` for ever).
    if where == "the index's split":
        monkeypatch.setattr(desk.index, "_split_if_two_events", broken)
    else:
        monkeypatch.setattr("newsflow.pipeline.desk.story_record", broken)
    decision = desk.decide(message(tagger, "b1", BRIDGE_OTHER_OUTLET, "valleypost"), ORIGIN)
    assert decision.outcome == "dead_letter" and decision.record["reason"] == "internal_error"
    assert [o.destination for o in decision.outputs if o.destination != STATE] == [DEAD_LETTER]
    assert desk.damaged  # the writer rebuilds it from what was written


@pytest.mark.parametrize(
    ("name", "value"), [("reason", None), ("stage", None), ("failed_at", None), ("headers", ["outlet", "x"])]
)
def test_a_forwarded_dead_letter_that_names_no_reason_is_one_of_the_desks_own_before_it_is_remembered(
    name, value
):
    body = jsonio.loads(rejected("r9"))
    body["dead_letter"][name] = value
    desk = DedupDesk()
    decision = desk.decide(jsonio.dumps(body), ORIGIN, b"r9")
    assert decision.outcome == "dead_letter" and decision.reason == "bad_features"
    assert decision.record is not None and decision.record["stage"] == "dedup"
    # Remembered as the desk's own dead letter only: the forwarded one was never half-taken.
    assert list(desk.rejected) == [("r9", 0)] and len(decision.outputs) == 2


def test_the_desks_own_dead_letters_carry_their_replay_count():
    desk = DedupDesk()
    replayed = jsonio.dumps(
        {"kind": "article", "article_id": "x1", "replay_count": 2, "record": {}, "features": {}}
    )
    decision = desk.decide(replayed, ORIGIN, b"x1")
    assert decision.outcome == "dead_letter" and decision.record["replay_count"] == 2
    # so that a third replay of the same input is decided again, not taken for a repeat
    assert desk.written("x1", 2) and not desk.written("x1", 3)


def test_a_rebuilt_desk_takes_the_latest_record_of_a_key(tagger):
    first = DedupDesk()
    state = [(o.key, o.value) for o in first.decide(rejected("r1"), ORIGIN).outputs if o.destination == STATE]
    key, value = state[0]
    later = jsonio.dumps({"received": 1.0})
    rebuilt = DedupDesk.from_state([(key, value), (key, later)])
    assert rebuilt.rejected == {("r1", 0): 1.0}


def test_the_desk_learns_an_outlets_boilerplate_from_articles_written_once(tagger):
    footer = "The Harbour Times is owned by Coastal Media Group."
    desk = DedupDesk()
    texts = [BRIDGE, ELECTION, BRIDGE_OTHER_OUTLET, "Ferry fares rise in May. " * 20, "Tides ran high. " * 30]
    for n, text in enumerate(texts):
        lines = fingerprints([f"Body line {n}.", footer])
        msg = message(tagger, f"h{n}", text, "harbourtimes", lines=lines)
        desk.decide(msg, ORIGIN)
        desk.decide(msg, ORIGIN)  # delivered twice: learned from once
    (out,) = desk.learned()
    assert out.destination == BOILERPLATE and out.key == b"harbourtimes"
    state = jsonio.loads(out.value)
    assert state["docs"] == len(texts)
    assert desk.learned() == []  # nothing new since
    # A clean stage that follows the topic now drops the footer, and only the footer.
    replica = BoilerplateModel()
    load_boilerplate(replica, out.key, out.value)
    rebuilt = DedupDesk.from_state([], boilerplate=[(out.key, out.value)])
    for model in (replica, rebuilt.boilerplate):
        text, dropped = model.clean("harbourtimes", f"A new report.\n{footer}", learn=False)
        assert (text, dropped) == ("A new report.", 1)


def test_articles_without_lines_teach_nothing_and_forgotten_outlets_are_deleted(tagger):
    desk = DedupDesk()
    desk.boilerplate.max_outlets = 1
    desk.decide(message(tagger, "e1", BRIDGE, "emptypages"), ORIGIN)  # no lines: an empty page
    assert desk.learned() == [] and "emptypages" not in desk.boilerplate.outlets
    desk.decide(message(tagger, "a1", ELECTION, "first", lines=fingerprints(["x"])), ORIGIN)
    desk.decide(message(tagger, "b1", BRIDGE_OTHER_OUTLET, "second", lines=fingerprints(["y"])), ORIGIN)
    outputs = {(o.key, o.value is None) for o in desk.learned()}
    assert outputs == {(b"first", True), (b"second", False)}  # "first" forgotten: a tombstone


def test_a_known_outlets_state_is_written_every_few_articles_not_every_batch(tagger):
    desk = DedupDesk()
    desk.boilerplate.outlets["old"] = OutletLines(docs=1000, lines={})
    written = 0
    for n in range(40):
        text = f"Report {n} on the harbour works. " * 10
        desk.decide(message(tagger, f"o{n}", text, "old", lines=fingerprints([f"l{n}"])), ORIGIN)
        written += len(desk.learned())
    assert written == 1


def test_pages_without_article_text_are_enriched_once_without_a_story(tagger):
    desk = DedupDesk()
    stub = message(tagger, "stub", "Share this story. Follow us for more updates.", "harbourtimes")
    first = desk.decide(stub, ORIGIN)
    assert first.outcome == "no_story"
    (record,) = [jsonio.loads(o.value) for o in first.outputs if o.destination == ENRICHED]
    assert record["extraction"]["status"] == "empty" and record["story_id"] is None
    assert schema_errors("enriched-article", record) == []
    assert not desk.index.stories and not any(o.destination == STORIES for o in first.outputs)
    assert desk.decide(stub, ORIGIN).outcome == "duplicate"
    # a rebuilt desk remembers it too
    state = [(o.key, o.value) for o in first.outputs if o.destination == STATE]
    assert DedupDesk.from_state(state).decide(stub, ORIGIN).outcome == "duplicate"


def _state_of(desk: DedupDesk, messages: list[bytes]) -> list[tuple[bytes, bytes | None]]:
    state = []
    for m in messages:
        state += [(o.key, o.value) for o in desk.decide(m, ORIGIN).outputs if o.destination == STATE]
    return state


def test_a_desk_from_a_snapshot_and_the_records_after_it_is_the_desk_replayed_from_scratch(tagger):
    import pickle

    options = DedupOptions(window_hours=72)
    desk = DedupDesk(options)
    before = _state_of(
        desk,
        [
            message(tagger, "a1", BRIDGE, "harbourtimes", "2025-03-01T09:00:00Z"),
            rejected("r1", received=1_740_819_600.0),  # 2025-03-01
        ],
    )
    snapshot = pickle.dumps(desk.snapshot())  # as the writer stores it
    after = _state_of(
        desk,
        [
            # closes the 1 March story and dead letter (tombstones after the snapshot)...
            message(tagger, "c1", ELECTION, "valleypost", "2025-03-14T09:00:00Z"),
            # ...and opens a story that a later report must join
            message(tagger, "b1", BRIDGE, "harbourtimes", "2025-03-14T10:00:00Z"),
            rejected("r2", received=1_741_950_000.0),
        ],
    )
    assert {k for k, v in after if v is None} == {b"a/a1", b"r/0/r1"}

    restored = DedupDesk.from_snapshot(pickle.loads(snapshot), options)
    assert restored.replay(after) == len(after)
    scratch = DedupDesk.from_state(before + after, options)
    for rebuilt in (restored, scratch):
        assert sorted(rebuilt.index.articles) == ["b1", "c1"]
        assert set(rebuilt.rejected) == {("r2", 0)}
        assert rebuilt.decide(message(tagger, "b1", BRIDGE, "harbourtimes"), ORIGIN).outcome == "duplicate"
    late = message(tagger, "d1", BRIDGE_OTHER_OUTLET, "valleypost", "2025-03-14T11:00:00Z")
    expected = desk.decide(late, ORIGIN).record["story_id"]
    assert restored.decide(late, ORIGIN).record["story_id"] == expected
    assert scratch.decide(late, ORIGIN).record["story_id"] == expected
    # The closed story is not closed a second time by the restored desk.
    assert restored.index.expired_stories == []


def test_a_snapshot_taken_under_other_options_is_refused(tagger):
    desk = DedupDesk(DedupOptions())
    _state_of(desk, [message(tagger, "a1", BRIDGE, "harbourtimes")])
    with pytest.raises(ValueError, match="other dedup options"):
        DedupDesk.from_snapshot(desk.snapshot(), DedupOptions(story_threshold=0.5))
    with pytest.raises(ValueError, match="version"):
        DedupDesk.from_snapshot({**desk.snapshot(), "version": 0}, DedupOptions())


def test_output_records_carry_cloudevents_headers_a_generic_consumer_can_route_by(tagger):
    from newsflow.pipeline import cloudevents

    desk = DedupDesk()
    first = desk.decide(message(tagger, "a1", BRIDGE, "harbourtimes"), ORIGIN)
    second = desk.decide(message(tagger, "b1", BRIDGE_OTHER_OUTLET, "valleypost"), ORIGIN)
    dead = desk.decide(rejected("r1"), ORIGIN)
    by_destination = {}
    for decision in (first, second, dead):
        for o in decision.outputs:
            by_destination.setdefault(o.destination, []).append(cloudevents.as_dict(o.headers))
    enriched, stories, dead_letters = (
        by_destination[ENRICHED],
        by_destination[STORIES],
        by_destination[DEAD_LETTER],
    )
    assert not any(by_destination[STATE])  # internal records carry none
    for attrs in enriched + stories + dead_letters:
        assert attrs["specversion"] == "1.0" and attrs["datacontenttype"] == "application/json"
        assert attrs["time"].endswith("Z")
    assert [(a["type"], a["id"], a["source"]) for a in enriched] == [
        ("dev.newsflow.article.enriched", "a1", "harbourtimes"),
        ("dev.newsflow.article.enriched", "b1", "valleypost"),
    ]
    assert enriched[0]["dataschema"] == "https://newsflow.dev/schemas/enriched-article/v1"
    story_id = first.record["story_id"]
    assert enriched[1]["subject"] == story_id
    # one event id per story version: a consumer can tell an update from a redelivery
    assert [a["id"] for a in stories] == [f"{story_id}/1", f"{story_id}/2"]
    assert {a["type"] for a in stories} == {"dev.newsflow.story.updated"}
    assert stories[0]["dataschema"] == "https://newsflow.dev/schemas/story/v1"
    (dl,) = dead_letters
    assert dl["type"] == "dev.newsflow.article.dead_lettered" and dl["id"] == "r1/0"
    assert dl["subject"] == "extract/empty" and dl["dataschema"].endswith("/dead-letter/v1")


def test_an_outlet_name_is_a_uri_reference_as_the_cloudevents_source():
    from newsflow.pipeline.cloudevents import ARTICLE_ENRICHED, as_dict, headers

    def source(outlet: str) -> str:
        return as_dict(headers(ARTICLE_ENRICHED, "a1", outlet, "2025-03-01T09:00:00Z", "enriched-article"))[
            "source"
        ]

    assert source("bbc.co.uk") == "bbc.co.uk" and source("") == "newsflow"
    assert source("My Outlet") == "My%20Outlet"
    assert source("Le Monde diplomatique #3 100%") == "Le%20Monde%20diplomatique%20%233%20100%25"
    assert source("Süddeutsche") == "S%C3%BCddeutsche"
    # RFC 3986: nothing but unreserved characters, sub-delimiters, ":", "@", "/" and %XX escapes
    uri_reference = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-F]{2})*")
    assert all(uri_reference.fullmatch(source(o)) for o in ("a b", "x\ny", "é", "a?b", "[v6]", "1 < 2"))
    # No scheme, no authority: a relative reference whose first segment is the name's start.
    assert source("My Outlet:x") == "My%20Outlet%3Ax" and source("//evil/x") == "%2F/evil/x"


def test_an_article_sent_again_after_the_window_never_reopens_a_closed_story_still_on_the_topic(tagger):
    """What the desk remembers ends with the window: the same article sent again later is a new
    arrival (README). If it had opened a story that is closed but still on the stories topic, its
    new story takes another id: a consumer keeps a story's highest version, and a second 's-a1' at
    version 1 after 's-a1' closed at version 2 would be ignored. After the tombstone the id is
    free again."""
    options = DedupOptions(window_hours=72, closed_retention_hours=168)
    desk = DedupDesk(options)
    first = desk.decide(message(tagger, "a1", BRIDGE, "harbourtimes", "2025-03-01T09:00:00Z"), ORIGIN)
    assert first.record["story_id"] == "s-a1"
    closing = desk.decide(message(tagger, "c1", ELECTION, "valleypost", "2025-03-14T09:00:00Z"), ORIGIN)
    assert "s-a1" in desk.closed and not desk.written("a1", 0)
    again = desk.decide(message(tagger, "a1", BRIDGE, "harbourtimes", "2025-03-15T09:00:00Z"), ORIGIN)
    story_id = again.record["story_id"]
    assert story_id.startswith("s-a1-") and story_id in desk.index.stories
    assert not [o for o in again.outputs if o.destination == STORIES and o.key == b"s-a1"]
    # The same, for a desk rebuilt from its state or its snapshot.
    import pickle

    state = [(o.key, o.value) for d in (first, closing, again) for o in d.outputs if o.destination == STATE]
    for rebuilt in (
        DedupDesk.from_state(state, options),
        DedupDesk.from_snapshot(pickle.loads(pickle.dumps(desk.snapshot())), options),
    ):
        assert rebuilt.index.retired is rebuilt.closed and "s-a1" in rebuilt.closed
    # A week after s-a1 closed, its tombstone frees the id.
    later = desk.decide(message(tagger, "e1", ELECTION, "valleypost", "2025-03-30T09:00:00Z"), ORIGIN)
    assert (STORIES, b"s-a1", None) in [(o.destination, o.key, o.value) for o in later.outputs]
    last = desk.decide(message(tagger, "a1", BRIDGE, "harbourtimes", "2025-04-20T09:00:00Z"), ORIGIN)
    assert last.record["story_id"] == "s-a1"
    # A retention of 0 keeps closed stories on the topic for good, and their ids out of use.
    keep = DedupDesk(DedupOptions(window_hours=72, closed_retention_hours=0))
    for i, when in enumerate(("2025-03-01T09:00:00Z", "2025-04-20T09:00:00Z")):
        keep.decide(message(tagger, f"c{i}", ELECTION, "valleypost", when.replace("T09:", "T08:")), ORIGIN)
        decided = keep.decide(message(tagger, "a1", BRIDGE, "harbourtimes", when), ORIGIN)
    assert "s-a1" in keep.closed and decided.record["story_id"].startswith("s-a1-")


def test_a_story_split_off_again_never_takes_the_id_of_one_still_on_the_topic():
    from newsflow.pipeline.dedup import SPLIT_PREFIX, StoryIndex

    f = replace(_report("a1", 1, np.ones(384, dtype=np.float32) / np.sqrt(384), []), received=1_741_000_000.0)
    index = StoryIndex()
    assert index.new_story_id(SPLIT_PREFIX, f) == "split-a1"
    index.retired = {"split-a1", "s-a1"}
    assert index.new_story_id(SPLIT_PREFIX, f) == "split-a1-1741000000"
    assert index.new_story_id("s-", f) == "s-a1-1741000000"


def test_a_closed_story_is_a_closed_event_with_the_next_version(tagger):
    from newsflow.pipeline import cloudevents

    desk = DedupDesk(DedupOptions(window_hours=72))
    first = desk.decide(message(tagger, "a1", BRIDGE, "harbourtimes", "2025-03-01T09:00:00Z"), ORIGIN)
    later = desk.decide(message(tagger, "c1", ELECTION, "valleypost", "2025-03-14T09:00:00Z"), ORIGIN)
    story_id = first.record["story_id"].encode()
    (closed,) = [o for o in later.outputs if o.destination == STORIES and o.key == story_id]
    attrs = cloudevents.as_dict(closed.headers)
    assert attrs["type"] == "dev.newsflow.story.closed" and attrs["id"] == f"{story_id.decode()}/2"
    assert jsonio.loads(closed.value)["version"] == 2


def _synthetic_message(features: StoryFeatures) -> bytes:
    """The features-topic message of an article whose features are given (embedding, names)."""
    a = article(features.article_id, BRIDGE, "harbourtimes")
    return article_message(Enriched(a, EntityResult((), "skipped_language", "none"), features), 0, ORIGIN)


def test_two_stories_a_report_links_are_merged_with_lineage_records_a_rebuilt_desk_repeats(tagger):
    v, w = _orthonormal_pair(3)
    u = 0.4 * v + np.sqrt(1 - 0.4**2) * w  # a second report of the event, too unlike the first to join
    bridge = (v + u) / np.linalg.norm(v + u)  # a third, close to both
    desk = DedupDesk()
    state = _state_of(
        desk,
        [
            _synthetic_message(_report("a0", 0, v, ["Harbour Bridge", "Maria Jensen"])),
            _synthetic_message(_report("b0", 1, u, ["Harbour Bridge", "Tom Berg"])),
        ],
    )
    assert len(desk.index.stories) == 2
    decision = desk.decide(_synthetic_message(_report("c0", 2, bridge, ["Harbour Bridge"])), ORIGIN)
    state += [(o.key, o.value) for o in decision.outputs if o.destination == STATE]
    assert decision.merged == 1
    (survivor_id,) = desk.index.stories
    absorbed_id = ({"s-a0", "s-b0"} - {survivor_id}).pop()
    assert decision.record["story_id"] == survivor_id
    # The decision's own records, then the absorbed story's last record and the merge's state.
    assert destinations(decision) == [ENRICHED, STORIES, STATE, STORIES, STATE, STATE]
    now, last = (jsonio.loads(o.value) for o in decision.outputs if o.destination == STORIES)
    assert last["story_id"] == absorbed_id and last["status"] == "closed"
    assert last["merged_into"] == survivor_id
    assert now["story_id"] == survivor_id and now["merged_from"] == [absorbed_id]
    assert sorted(now["members"]) == ["a0", "b0", "c0"] and now["member_count"] == 3
    assert schema_errors("story", last) == [] and schema_errors("story", now) == []
    assert decision.outputs[4].key == f"m/{absorbed_id}".encode()

    # A desk rebuilt from the state topic holds the one story, whichever way it is rebuilt.
    import pickle

    for rebuilt in (
        DedupDesk.from_state(state),
        DedupDesk.from_snapshot(pickle.loads(pickle.dumps(desk.snapshot()))),
    ):
        assert list(rebuilt.index.stories) == [survivor_id]
        # Members in the same order, and the same bounded centroids, as the live desk's.
        live, again = desk.index.stories[survivor_id], rebuilt.index.stories[survivor_id]
        assert again.members == live.members and sorted(live.members) == ["a0", "b0", "c0"]
        assert list(again.entities.pairs()) == list(live.entities.pairs())
        assert again.merged_from == live.merged_from == (absorbed_id,)
        assert rebuilt.index.articles["b0"].assignment.story_id == survivor_id
        assert rebuilt.index.merged == []
        assert (
            rebuilt.decide(_synthetic_message(_report("c0", 2, bridge, ["Harbour Bridge"])), ORIGIN).outcome
            == "duplicate"
        )

    # Once the absorbed story's report has left the survivor (a split) and closed, compaction keeps
    # the merge's record but not the report's: the rebuilt survivor still has the lineage, and
    # closes the merge's record with it.
    absorbed_member = absorbed_id.removeprefix("s-").encode()
    compacted = [(k, v) for k, v in state if k != b"a/" + absorbed_member]
    rebuilt = DedupDesk.from_state(compacted).index
    assert absorbed_member.decode() not in rebuilt.stories[survivor_id].members
    assert rebuilt.stories[survivor_id].merged_from == (absorbed_id,)

    # When the window closes the merged story, the merge's state goes with it.
    later = replace(_report("z0", 9, w, ["Valley Post"]), timestamp=1_741_000_000 + 5 * 86_400)
    closing = desk.decide(_synthetic_message(later), ORIGIN)
    tombstones = {o.key for o in closing.outputs if o.destination == STATE and o.value is None}
    assert {b"a/a0", b"a/b0", b"a/c0", f"m/{absorbed_id}".encode()} <= tombstones


def test_a_split_comes_out_as_both_stories_records_with_lineage_and_a_rebuilt_desk_repeats_it():
    import pickle

    from tests.unit.test_dedup import NAMES, _theme_and_two_events

    one, two = _theme_and_two_events(5)
    desk = DedupDesk()
    reports = [_report(a, i, v, NAMES) for i, (a, v) in enumerate([("a0", one), ("a1", one), ("b0", two)])]
    state = _state_of(desk, [_synthetic_message(f) for f in reports[:2]])
    third = desk.decide(_synthetic_message(reports[2]), ORIGIN)
    state += [(o.key, o.value) for o in third.outputs if o.destination == STATE]
    (before,) = (jsonio.loads(o.value) for o in third.outputs if o.destination == STORIES)
    assert before["story_id"] == "s-a0" and before["version"] == 3
    decision = desk.decide(_synthetic_message(_report("b1", 3, two, NAMES)), ORIGIN)
    state += [(o.key, o.value) for o in decision.outputs if o.destination == STATE]
    new_id = "split-b1"
    assert decision.split == 1 and decision.record["story_id"] == new_id
    # The decision's own records (its story: the new one), the story it left, the split's state
    # (the new story's members and shape, the shape and lineage of the story it left).
    assert destinations(decision) == [ENRICHED, STORIES, STATE, STORIES, STATE, STATE]
    new, kept = (jsonio.loads(o.value) for o in decision.outputs if o.destination == STORIES)
    assert new["story_id"] == new_id and new["split_from"] == "s-a0" and new["members"] == ["b0", "b1"]
    assert kept["story_id"] == "s-a0" and kept["split_into"] == [new_id] and kept["members"] == ["a0", "a1"]
    # The story it left had a record of version 3: its next one is higher.
    assert kept["version"] > before["version"] and kept["status"] == "open"
    assert schema_errors("story", new) == [] and schema_errors("story", kept) == []
    assert [o.key for o in decision.outputs[4:]] == [f"p/{new_id}".encode(), b"v/s-a0"]

    for rebuilt in (
        DedupDesk.from_state(state),
        DedupDesk.from_snapshot(pickle.loads(pickle.dumps(desk.snapshot()))),
    ):
        assert sorted(rebuilt.index.stories) == ["s-a0", new_id]
        for story_id in ("s-a0", new_id):
            live, again = desk.index.stories[story_id], rebuilt.index.stories[story_id]
            assert again.members == live.members and again.revisions == live.revisions
            assert (again.split_from, again.split_into) == (live.split_from, live.split_into)
            assert np.array_equal(again.vector_sum, live.vector_sum)
        assert rebuilt.index.articles["b0"].assignment.story_id == new_id
        assert rebuilt.index.splits == []
        # Each part takes its own event's next report, as the live desk's would.
        for seed, vector, story_id in ((8, one, "s-a0"), (9, two, new_id)):
            probe = _synthetic_message(_report(f"p{seed}", seed, vector, NAMES))
            assert rebuilt.decide(probe, ORIGIN).record["story_id"] == story_id

    # When the window closes the split story, the split's state goes with it.
    later = replace(_report("z0", 9, -one, ["Valley Post"]), timestamp=1_741_000_000 + 5 * 86_400)
    closing = desk.decide(_synthetic_message(later), ORIGIN)
    tombstones = {o.key for o in closing.outputs if o.destination == STATE and o.value is None}
    assert {b"a/a0", b"a/b0", b"a/b1", f"p/{new_id}".encode(), b"v/s-a0"} <= tombstones


def _index_view(desk: DedupDesk) -> dict[str, tuple]:  # type: ignore[type-arg]
    return {
        story_id: (
            tuple(s.members),
            tuple(s.entities.pairs()),
            tuple(s.terms.pairs()),
            desk.index.story_keys_of(s),
            s.revisions,
            s.split_from,
            s.split_into,
            s.merged_from,
            s.embedded,
            (s.aged_out, s.opening, s.first_seen, s.last_seen, s.headline, s.outlets),
        )
        for story_id, s in sorted(desk.index.stories.items())
    }


def _same_embeddings(a: DedupDesk, b: DedupDesk) -> bool:
    """Whether the two desks' stories have the same embedding sums (to float rounding: a merge
    adds two partial sums where a rebuild may add the members one by one)."""
    for story_id, story in a.index.stories.items():
        mine, theirs = story.vector_sum, b.index.stories[story_id].vector_sum
        if (mine is None) != (theirs is None) or (
            mine is not None and not np.allclose(mine, theirs, atol=1e-5)
        ):
            return False
    return True


@pytest.mark.parametrize("closes_first", ["the split-off story", "the story it left"])
def test_a_desk_rebuilt_after_one_side_of_a_split_closed_is_the_live_desk(closes_first):
    """Either side of a split may outlive the other: the state topic, compacted, still rebuilds
    the survivor as the live writer holds it (its members, names, words, keys, lineage and the
    version its next record carries)."""
    from newsflow.pipeline.records import latest
    from tests.unit.test_dedup import NAMES, _theme_and_two_events

    one, two = _theme_and_two_events(5)

    def at(f: StoryFeatures, hours: float) -> StoryFeatures:
        return replace(f, timestamp=f.timestamp + hours * 3600, received=f.timestamp + hours * 3600)

    desk = DedupDesk()
    # a0, a1 on one event; b0, b1 on another: b1 splits them, and "b2" a day on joins the new story.
    reports = [_report(a, i, v, NAMES) for i, (a, v) in enumerate([("a0", one), ("a1", one), ("b0", two)])]
    reports += [_report("b1", 3, two, NAMES)]
    survivor, vector = ("s-a0", one) if closes_first == "the split-off story" else ("split-b1", two)
    reports.append(at(_report("x2", 4, vector, NAMES), 40))
    # Then, 80 hours on, an unrelated report: the window (72 h) closes the side that stayed quiet.
    reports.append(at(_report("z0", 9, -one - two, ["Valley Post"]), 80))
    state = _state_of(desk, [_synthetic_message(f) for f in reports])
    assert survivor in desk.index.stories and len(desk.index.stories) == 2  # it and z0's story

    rebuilt = DedupDesk.from_state(list(latest(state).items()))
    assert _index_view(rebuilt) == _index_view(desk) and _same_embeddings(rebuilt, desk)
    # The next report of the surviving event: the same story, with the same next version.
    probe = _synthetic_message(at(_report("x3", 6, vector, NAMES), 81))
    records = [
        [jsonio.loads(o.value) for o in d.decide(probe, ORIGIN).outputs if o.destination == STORIES][0]
        for d in (desk, rebuilt)
    ]
    assert records[0]["story_id"] == records[1]["story_id"] == survivor
    assert records[0]["version"] == records[1]["version"]
    assert records[0].get("split_into") == records[1].get("split_into")


def _themed_stream(
    seed: int, n: int = 60, resend: float = 0.0, late_hours: float = 0.0
) -> list[StoryFeatures]:
    """Reports of 8 events on 3 themes over 200 hours (so stories split and close), some copies,
    some without an embedding; with `resend`, that share sent again under their first id later,
    and with `late_hours`, some received up to that long before their time."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((384, 11)))
    themes, events = basis.T[:3], basis.T[3:]
    theme_of, day_of = rng.integers(0, 3, 8), np.sort(rng.uniform(0, 200, 8))
    names = [
        ["Harbour Bridge", "Maria Jensen"],
        ["Harbour Bridge", "Olaf Berg"],
        ["Valley Post", "Maria Jensen"],
    ]
    drawn = []
    for _ in range(n):
        e = int(rng.integers(0, 8))
        v = themes[theme_of[e]] * rng.uniform(0.6, 1.2) + events[e] * rng.uniform(0.5, 1.2)
        v = v + rng.standard_normal(384) * 0.03
        if rng.random() < 0.08:  # a report on nothing else
            v = rng.standard_normal(384)
        t = 1_741_000_000 + (day_of[e] + rng.uniform(0, 30)) * 3600
        named = names[int(theme_of[e]) if rng.random() < 0.85 else int(rng.integers(0, 3))]
        drawn.append((t, v / np.linalg.norm(v), named))
    drawn.sort(key=lambda x: x[0])
    out: list[StoryFeatures] = []
    for i, (t, v, named) in enumerate(drawn):
        f = replace(_report(f"x{i}", i, v, named), timestamp=t, received=t)
        if rng.random() < 0.1 and out:  # a copy of an earlier report
            f = replace(out[int(rng.integers(0, len(out)))], article_id=f"x{i}", timestamp=t, received=t)
        if rng.random() < 0.05:
            f = replace(f, embedding=b"")
        if resend and rng.random() < resend and out:  # an earlier article sent again, as it was
            f = replace(out[int(rng.integers(0, len(out)))], timestamp=t, received=t)
        if late_hours and rng.random() < 0.08:  # a dead letter replayed, an archive out of order
            f = replace(f, received=f.received - float(rng.uniform(0, late_hours)) * 3600)
        out.append(f)
    return out


def _compacted(entries: list[tuple[bytes, bytes | None]]) -> list[tuple[bytes, bytes | None]]:
    """Return what log compaction may leave of a topic's records: the last of each key (tombstones
    included, until their retention ends), in the order written."""
    last = {key: i for i, (key, _) in enumerate(entries)}
    return [entry for i, entry in enumerate(entries) if last[entry[0]] == i]


# Streams of `n` reports cut to the first `keep`, at the default thresholds (merges are rare
# there) and at thresholds where a story merges into one that then merges into a third, whose own
# members later leave it in a split and close (seed 7); and with windows of 6 to 24 hours, where
# stories of 30 hours that go on getting reports let their old members go (`StoryIndex.age_out`)
# between splits and merges, two at a time or (200 reports) eight, as shipped; and with articles
# sent again (after they left the index: a compacted tail holds their new record, not the
# tombstone between) and received late, where closed stories' ids come free after a day.
@pytest.mark.parametrize(
    ("seed", "n", "keep", "merge", "split", "window", "age_out_at_least", "resend"),
    [
        (0, 60, 60, 0.6, 0.6, 72, 8, 0),
        (26, 60, 60, 0.6, 0.6, 72, 8, 0),
        (9, 60, 60, 0.6, 0.6, 72, 8, 0),
        (169, 60, 60, 0.6, 0.6, 72, 8, 0),
        (7, 70, 44, 0.3, 0.7, 72, 8, 0),
        (0, 80, 80, 0.6, 0.6, 12, 2, 0),
        (7, 80, 80, 0.3, 0.7, 12, 2, 0),
        (26, 80, 80, 0.6, 0.6, 6, 2, 0),
        (4, 200, 200, 0.3, 0.7, 24, 8, 0),
        (0, 200, 200, 0.45, 0.65, 12, 8, 0),
        (5, 200, 200, 0.6, 0.6, 6, 8, 0),
        (3, 200, 200, 0.45, 0.65, 12, 8, 0.06),
        (11, 200, 200, 0.6, 0.6, 6, 2, 0.06),
        (2, 200, 200, 0.3, 0.7, 24, 2, 0.06),
    ],
)
def test_a_desk_rebuilt_from_its_state_after_splits_merges_and_closes_is_the_live_desk(
    seed, n, keep, merge, split, window, age_out_at_least, resend, monkeypatch
):
    """Stories split, split again, merge, close on either side, let old members go; the compacted
    state topic, and snapshots plus the records after them (as written or compacted), each rebuild
    the live desk exactly. Meanwhile no story's records go backwards (version, outlets) or go on
    after it closed."""
    import pickle

    from newsflow.pipeline import dedup
    from newsflow.pipeline.records import latest

    monkeypatch.setattr(dedup, "AGE_OUT_AT_LEAST", age_out_at_least)
    options = DedupOptions(
        merge_threshold=merge,
        split_threshold=split,
        window_hours=window,
        closed_retention_hours=24 if resend else DedupOptions().closed_retention_hours,
    )
    desk, state, snapshots = DedupDesk(options), [], []
    published: dict[str, dict] = {}  # type: ignore[type-arg]
    stream = _themed_stream(seed, n, resend=resend, late_hours=2 * window if resend else 0.0)
    for i, f in enumerate(stream[:keep]):
        for o in desk.decide(_synthetic_message(f), ORIGIN).outputs:
            if o.destination == STATE:
                state.append((o.key, o.value))
            elif o.destination == STORIES and o.value is None:  # deleted: its id may start again
                published.pop(o.key.decode())
            elif o.destination == STORIES:
                record, before = jsonio.loads(o.value), published.get(jsonio.loads(o.value)["story_id"])
                if before is not None:
                    assert before["status"] == "open" and record["version"] > before["version"]
                    assert set(before["outlets"]) <= set(record["outlets"]) or record.get("split_into")
                published[record["story_id"]] = record
        if i % 10 == 5:
            snapshots.append((pickle.dumps(desk.snapshot()), len(state)))
    assert any(s.split_from for s in desk.index.stories.values()) or any(
        key.startswith(b"p/") for key, _ in state
    ), "the stream should split stories"
    if window < 72:
        assert any(key.startswith(b"t/") for key, _ in state), "the stream should let members age out"
    # A story's aged-out record lives as long as it does, or the story that took it in.
    held = {m for s in desk.index.stories.values() for m in (s.story_id, *s.merged_from)}
    assert {key[2:].decode() for key in latest(state) if key.startswith(b"t/")} <= held
    from_snapshots = []
    for snapshot, at in snapshots:
        for tail in (state[at:], _compacted(state[at:])):
            from_snapshots.append(DedupDesk.from_snapshot(pickle.loads(snapshot), options))
            from_snapshots[-1].replay(tail)
    for rebuilt in (
        DedupDesk.from_state(state, options),
        DedupDesk.from_state(list(latest(state).items()), options),
        *from_snapshots,
    ):
        assert _index_view(rebuilt) == _index_view(desk) and _same_embeddings(rebuilt, desk)
        assert {a: x.assignment for a, x in rebuilt.index.articles.items()} == {
            a: x.assignment for a, x in desk.index.articles.items()
        }
        assert rebuilt.index.postings == desk.index.postings
        assert rebuilt.index.waiting() == []  # every member that left its story reached its split


FLASH = "Mayor Ellen Brooks reopened the Old Harbour Bridge to traffic on Friday after a repair of more than two years."
NOT_FOUND = (
    "Page not found. The page you were looking for has moved or no longer exists. Return to the home page."
)


def test_a_short_text_joins_the_story_it_reads_like_but_never_opens_one(tagger):
    desk = DedupDesk()
    lost = desk.decide(message(tagger, "n1", NOT_FOUND, "harbourtimes"), ORIGIN)
    assert lost.outcome == "no_story"
    assert lost.record is not None and lost.record["extraction"]["status"] == "not_article"
    assert lost.record["story_id"] is None and schema_errors("enriched-article", lost.record) == []
    assert not desk.index.stories and not any(o.destination == STORIES for o in lost.outputs)
    early = desk.decide(message(tagger, "f0", FLASH, "wire"), ORIGIN)
    assert early.outcome == "no_story"  # nothing to join yet
    opened = desk.decide(message(tagger, "a1", BRIDGE, "harbourtimes"), ORIGIN)
    assert opened.outcome == "new_story"
    flash = desk.decide(message(tagger, "f1", FLASH, "valleypost"), ORIGIN)
    assert flash.outcome == "joined_story"  # not a copy of f0, which no story holds
    assert flash.record is not None and flash.record["extraction"]["status"] == "not_article"
    assert flash.record["story_id"] == opened.record["story_id"]
    # each comes out once, and a rebuilt desk knows which came out without a story
    state = [
        (o.key, o.value) for d in (lost, early, opened, flash) for o in d.outputs if o.destination == STATE
    ]
    rebuilt = DedupDesk.from_state(state)
    for article_id, text in (("n1", NOT_FOUND), ("f0", FLASH), ("f1", FLASH)):
        assert rebuilt.decide(message(tagger, article_id, text, "wire"), ORIGIN).outcome == "duplicate"
    assert set(rebuilt.index.stories) == {opened.record["story_id"]}


def test_an_id_free_again_keeps_its_new_storys_state_when_the_story_it_merged_into_closes():
    """s-a0 merges into s-b0 (hour 0), which runs on; s-a0's id comes free after the closed-story
    retention (24 h), and a0 sent again with other news opens s-a0 anew, which runs on and lets
    members age out; when s-b0 closes, its close deletes its own state, not the new s-a0's."""
    import itertools

    from newsflow.pipeline.records import latest

    v, w = _orthonormal_pair(3)
    u = 0.4 * v + np.sqrt(1 - 0.4**2) * w
    seeds = itertools.count(1)  # each report its own words and MinHash values
    other, _ = _orthonormal_pair(8)
    other = other - (other @ v) * v - (other @ w) * w
    other /= np.linalg.norm(other)

    def at(article_id: str, vector: np.ndarray, names: list[str], hours: float) -> bytes:
        t = 1_741_000_000 + hours * 3600
        f = _report(article_id, next(seeds), vector, names)
        return _synthetic_message(replace(f, timestamp=t, received=t))

    options = DedupOptions(window_hours=12, closed_retention_hours=24)
    desk = DedupDesk(options)
    state = _state_of(
        desk,
        [
            at("a0", v, ["Harbour Bridge", "Maria Jensen"], 0),
            at("b0", u, ["Harbour Bridge", "Tom Berg"], 0.1),
            at("c0", (v + u) / np.linalg.norm(v + u), ["Harbour Bridge", "Tom Berg"], 0.2),
        ],
    )
    assert set(desk.index.stories) == {"s-b0"} and desk.index.stories["s-b0"].merged_from == ("s-a0",)
    messages = [at(f"r{i}", v, ["Harbour Bridge", "Maria Jensen"], 1 + i) for i in range(60)]
    messages.append(at("a0", other, ["Valley Post", "Olaf Berg"], 61))  # its story's id is free again
    for i in range(30):
        messages.append(at(f"q{i}", other, ["Valley Post", "Olaf Berg"], 61.5 + i))
        messages.append(at(f"r{60 + i}", v, ["Harbour Bridge", "Maria Jensen"], 62 + i))
    messages += [at(f"q{i}", other, ["Valley Post", "Olaf Berg"], 92 + (i - 30) / 2) for i in range(30, 55)]
    state += _state_of(desk, messages)
    assert set(desk.index.stories) == {"s-a0"} and desk.index.stories["s-a0"].aged_out > 0
    assert b"t/s-a0" in latest(state)
    rebuilt = DedupDesk.from_state(list(latest(state).items()), options)
    probe = at("q99", other, ["Valley Post", "Olaf Berg"], 123)
    versions = [
        [
            jsonio.loads(o.value)["version"]
            for o in d.decide(probe, ORIGIN).outputs
            if o.destination == STORIES
        ]
        for d in (desk, rebuilt)
    ]
    assert versions[0] == versions[1] != []


def test_what_a_failed_decision_expired_does_not_go_out_with_its_dead_letter(tagger, monkeypatch):
    # The article ten days later closes the first story before its records fail: the desk is
    # rebuilt from what was written, and closes that story itself at its next article.
    desk = DedupDesk()
    desk.decide(message(tagger, "a1", BRIDGE, "harbourtimes", "2025-03-01T09:00:00Z"), ORIGIN)

    def broken(*_args: object) -> None:
        raise RuntimeError("a bug after the index took the article in")

    monkeypatch.setattr(desk, "_article_out", broken)
    decision = desk.decide(message(tagger, "b1", ELECTION, "valleypost", "2025-03-10T09:00:00Z"), ORIGIN)
    assert decision.outcome == "dead_letter" and desk.damaged
    assert [(o.destination, o.key) for o in decision.outputs] == [(DEAD_LETTER, b"b1"), (STATE, b"r/0/b1")]
