"""`make run`'s wait for its articles (`localrun.collect`) on the real broker: it waits as long as
articles keep coming out, and gives back what did when the rest does not."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

from newsflow.localrun import collect
from newsflow.pipeline import jsonio
from newsflow.settings import KafkaSettings
from tests.integration.kafka_helpers import send_raw


def _enriched(kafka: KafkaSettings, article_id: str) -> None:
    send_raw(
        kafka, [(article_id.encode(), jsonio.dumps({"article_id": article_id}), [])], kafka.topic_enriched
    )


def _idle_process() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def test_the_wait_lasts_as_long_as_articles_keep_coming_out(kafka: KafkaSettings) -> None:
    # Three articles 2.5 s apart, a timeout of 4 s: the run takes longer than the timeout, and
    # never waits that long for the next article.
    worker = _idle_process()
    timers = [threading.Timer(2.5 * i, _enriched, (kafka, f"a{i}")) for i in range(3)]
    try:
        for timer in timers:
            timer.start()
        enriched, dead, stopped = asyncio.run(collect(kafka, {"a0", "a1", "a2"}, 4.0, worker))
    finally:
        for timer in timers:
            timer.join()
        worker.kill()
        worker.wait()
    assert ([r["article_id"] for r in enriched], dead, stopped) == (["a0", "a1", "a2"], [], None)


def test_a_run_waiting_in_vain_gives_back_what_came_out_and_says_why_the_rest_did_not(
    kafka: KafkaSettings,
) -> None:
    _enriched(kafka, "a0")
    worker = _idle_process()
    try:
        enriched, dead, stopped = asyncio.run(collect(kafka, {"a0", "a1"}, 2.0, worker))
    finally:
        worker.kill()
        worker.wait()
    assert [r["article_id"] for r in enriched] == ["a0"] and dead == []
    assert stopped == "1 article(s) did not come out: none came out in the last 2s (NEWSFLOW_RUN_TIMEOUT)"
    # A worker that has exited is not waited for.
    exited = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    exited.wait()
    enriched, _, stopped = asyncio.run(collect(kafka, {"a0", "a1"}, 60.0, exited))
    assert [r["article_id"] for r in enriched] == ["a0"]
    assert stopped == "1 article(s) did not come out: the worker exited with code 3; see its log above"
