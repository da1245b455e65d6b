"""newsflow-tail on the real broker: from the beginning with filters, and from now on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from newsflow.settings import KafkaSettings
from tests.integration.kafka_helpers import kafka_env, send_raw


def _record(article_id: str, outlet: str) -> bytes:
    return json.dumps(
        {
            "article_id": article_id,
            "source": {"outlet": outlet, "received_at": "2026-12-01T08:00:00.000Z"},
            "title": f"Report {article_id}",
            "language": {"code": "en", "confidence": 1.0},
            "entities": [{"key": "united states", "name": "United States"}],
            "story_id": f"s-{article_id}",
        }
    ).encode()


def _tail(kafka: KafkaSettings, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "newsflow.tail", *args],
        env={**os.environ, **kafka_env(kafka)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_tail_from_the_beginning_with_a_filter_then_from_now(kafka: KafkaSettings):
    send_raw(
        kafka,
        [(k.encode(), _record(k, o), []) for k, o in [("a", "wire"), ("b", "metro"), ("c", "wire")]],
        topic=kafka.topic_enriched,
    )
    old = _tail(kafka, "--from", "beginning", "--outlet", "wire", "--json", "--max", "2")
    out, err = old.communicate(timeout=60)
    assert old.returncode == 0, err
    assert sorted(json.loads(line)["article_id"] for line in out.splitlines()) == ["a", "c"]

    new = _tail(kafka, "--entity", "united states", "--max", "1")
    time.sleep(6)  # started and at the end of the topic
    send_raw(kafka, [(b"d", _record("d", "metro"), [])], topic=kafka.topic_enriched)
    out, err = new.communicate(timeout=60)
    assert new.returncode == 0, err
    (printed,) = out.splitlines()
    assert "metro" in printed and "Report d" in printed and "s-d" in printed


def test_a_bad_from_is_a_one_line_usage_error(kafka: KafkaSettings):
    bad = _tail(kafka, "--from", "yesterday-ish")
    _, err = bad.communicate(timeout=60)
    assert bad.returncode == 2 and "not 'now', 'beginning'" in err
