"""One bad input never stops, slows or corrupts the stream: each kind is accounted for, and the
articles after it come out as they would without it."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from newsflow.settings import KafkaSettings
from tests.conftest import SEEDS
from tests.integration.kafka_helpers import produce_files, read_records, send_raw, worker_process

TEXT = "The council approved the new budget on Tuesday after a long debate about schools and roads. "


def _plain(article_id: str) -> list[tuple[str, bytes]]:
    return [("article-id", article_id.encode()), ("content-type", b"text/plain"), ("outlet", b"poison")]


def _json(article_id: str) -> list[tuple[str, bytes]]:
    return [("article-id", article_id.encode()), ("content-type", b"application/json"), ("outlet", b"poison")]


def test_each_poison_input_is_accounted_for_and_the_stream_goes_on(kafka: KafkaSettings, worker_log: Path):
    seven_mb = b"x" * 7_000_000  # over the 5 MB extraction limit, under the 8 MiB message limit
    at_limit = b"y" * (kafka.max_message_bytes - 2_000)  # no room left for the route's header
    deep = ("<html><body>" + "<div>" * 100_000 + f"<p>{TEXT * 20}</p>" + "</div>" * 100_000).encode()
    utf8_says_utf16 = f'<html><head><meta charset="utf-16"></head><body><article><p>{TEXT * 8} Brücke.</p></article></body></html>'.encode()
    poison = [
        (b"seven-mb", seven_mb, _plain("seven-mb")),
        (b"at-limit", at_limit, _plain("at-limit")),
        (b"deep", deep, [("article-id", b"deep"), ("content-type", b"text/html"), ("outlet", b"poison")]),
        (b"utf16", (TEXT * 10).encode("utf-16-le"), _plain("utf16")),
        (
            b"utf8-utf16",
            utf8_says_utf16,
            [("article-id", b"utf8-utf16"), ("content-type", b"text/html"), ("outlet", b"poison")],
        ),
        (b"bad-types", json.dumps({"html": 5, "text": ["a"]}).encode(), _json("bad-types")),
        (
            b"odd-fields",
            json.dumps({"text": TEXT * 5, "title": 5}).encode(),  # as the producer's bad_line: a dead letter
            _json("odd-fields"),
        ),
        (b"bad-header", TEXT.encode(), [("article-id", b"bad-header"), ("content-type", b"\xff\xfe")]),
        (b"empty", b"", _plain("empty")),
        (
            b"from-2099",
            json.dumps({"text": TEXT * 5, "published": "2099-01-01"}).encode(),
            _json("from-2099"),
        ),
    ]
    with worker_process(kafka, worker_log, "it-poison") as worker:
        send_raw(kafka, poison)
        ids = produce_files(kafka, sorted(SEEDS.glob("*.txt")))
        wanted = {k.decode() for k, _, _ in poison} | set(ids)
        seen: dict[str, dict[str, object]] = {}
        enriched = read_records(kafka, kafka.topic_enriched, want=6, worker=worker)
        dead = read_records(kafka, kafka.topic_dead_letter, want=6, worker=worker)
        assert worker.poll() is None, "the worker died"
    for key, record in enriched:
        assert key not in seen, f"{key} came out twice"
        seen[key] = {"topic": "enriched", **record}
    for key, record in dead:
        assert key not in seen, f"{key} came out twice"
        seen[key] = {"topic": "dead", **record}
    assert set(seen) == wanted

    reasons = {k: r["reason"] for k, r in seen.items() if r["topic"] == "dead"}
    assert reasons == {
        "seven-mb": "too_large",
        "at-limit": "too_large",
        "bad-types": "bad_envelope",
        "odd-fields": "bad_envelope",
        "bad-header": "bad_headers",  # a content-type that is not UTF-8
        "empty": "empty",
    }
    # a dead letter carries a bounded prefix of its input with the whole input's size and hash
    big = seen["seven-mb"]
    assert big["payload_bytes"] == 7_000_000
    assert big["payload_sha256"] == hashlib.sha256(seven_mb).hexdigest()
    assert big["payload_truncated"] is True
    assert 0 < len(base64.b64decode(big["payload_base64"])) < 7_000_000
    assert big["origin"]["topic"] == kafka.topic_raw
    assert seen["at-limit"]["origin"]["topic"] == kafka.topic_raw

    assert seen["deep"]["extraction"] == {
        **seen["deep"]["extraction"],
        "status": "empty",
        "reason": "markup_too_deep",
    }
    assert seen["utf16"]["extraction"]["encoding"] == "utf-16-le" and "council" in seen["utf16"]["text"]
    assert "Brücke" in seen["utf8-utf16"]["text"]
    assert (seen["from-2099"]["published"], seen["from-2099"]["published_raw"]) == (None, "2099-01-01")
    assert seen["from-2099"]["published_status"] == "implausible"
    # after all of that, the seeds still make one story (a date from 2099 no longer closes the window)
    assert seen[ids[0]]["story_id"] == seen[ids[1]]["story_id"]
