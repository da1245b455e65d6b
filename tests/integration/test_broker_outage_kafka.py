"""The broker paused, then stopped and started (its storage kept), while articles stream through one
worker: nothing lost, nothing repeated, and the worker carries on without a restart.

Runs a broker of its own on another port, so that stopping it cannot touch the suite's broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from newsflow.pipeline.records import RawArticle, Source
from newsflow.producer.metrics import create_metrics
from newsflow.producer.publish import Publisher
from newsflow.producer.settings import ProducerSettings
from newsflow.topics import create_topics
from tests.conftest import ROOT
from tests.integration.crash import CommittedReader, start_worker
from tests.integration.kafka_helpers import free_port, kafka_env, produce_files, unique_kafka
from tests.integration.story_corpus import build_corpus, write_corpus

KAFKA_SH = ROOT / "deploy" / "local-kafka" / "kafka.sh"


class Broker:
    def __init__(self, port: int) -> None:
        self.port = port
        self.env = {
            **os.environ,
            "NEWSFLOW_KAFKA_PORT": str(port),
            "NEWSFLOW_KAFKA_CONTROLLER_PORT": str(free_port()),
        }

    def run(self, command: str) -> None:
        subprocess.run([str(KAFKA_SH), command], env=self.env, check=True, capture_output=True)

    def pid(self) -> int:
        home = Path(os.environ.get("NEWSFLOW_KAFKA_HOME", ROOT / ".cache" / "kafka"))
        return int((home / f"run-{self.port}" / "kafka.pid").read_text())


@pytest.fixture
def broker() -> Iterator[Broker]:
    b = Broker(free_port())
    b.run("start")
    try:
        yield b
    finally:
        b.run("reset")


def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def assert_each_out_once(reader: CommittedReader, worker: subprocess.Popen[bytes], sent: list[str]) -> None:
    """Wait until every sent article is out, then check the worker still runs and none came out twice."""
    wait_for(lambda: {k for _, _, k, _ in reader.collected.records} >= set(sent), 240, "every article")
    time.sleep(2)
    assert worker.poll() is None, "the worker exited"
    out = Counter(key for _, _, key, _ in reader.collected.records)
    assert set(out) == set(sent)
    assert max(out.values()) == 1, [k for k, n in out.items() if n > 1]


@pytest.mark.timeout(600)
def test_pause_and_restart_of_the_broker_lose_and_repeat_nothing(broker: Broker, tmp_path: Path):
    kafka = replace(unique_kafka(partitions=2), bootstrap=f"127.0.0.1:{broker.port}")
    asyncio.run(create_topics(kafka))
    corpus = tmp_path / "corpus"
    write_corpus(corpus, build_corpus(stories=12))
    files = sorted(corpus.rglob("*.json"))
    sent: list[str] = []
    with CommittedReader(kafka) as reader:
        worker = start_worker(kafka, tmp_path / "worker.log", "outage", {})
        try:
            sent += produce_files(kafka, files[:20])
            wait_for(lambda: reader.collected.count() >= 10, 120, "first output")
            os.kill(broker.pid(), signal.SIGSTOP)
            # the producer blocks until the broker answers again: send the next files meanwhile
            more = threading.Thread(target=lambda: sent.extend(produce_files(kafka, files[20:40])))
            more.start()
            time.sleep(20)
            os.kill(broker.pid(), signal.SIGCONT)
            more.join(timeout=120)
            wait_for(lambda: reader.collected.count() >= 30, 180, "output after the pause")
            broker.run("stop")
            time.sleep(3)
            broker.run("start")
            sent += produce_files(kafka, files[40:])
            assert_each_out_once(reader, worker, sent)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    assert len(sent) == len(files) == 60


@pytest.mark.timeout(240)
def test_a_send_the_broker_cannot_take_ages_on_the_producers_gauge_and_goes_out_once_it_is_back(
    broker: Broker,
):
    """The idempotent client retries a queued send for as long as the broker is away and fails none: the
    age of the oldest unacknowledged send is what shows the outage (alert NewsflowProducerSendsStuck)."""
    kafka = replace(unique_kafka(partitions=1), bootstrap=f"127.0.0.1:{broker.port}")
    asyncio.run(create_topics(kafka))

    def article(name: str) -> RawArticle:
        return RawArticle(
            name, b"A report.", Source(f"{name}.txt", "wire", "text/plain", "2026-12-08T00:00:00Z")
        )

    async def run() -> None:
        registry = CollectorRegistry()
        publisher = Publisher(kafka, ProducerSettings(), create_metrics(registry))

        def sample(name: str) -> float | None:
            return registry.get_sample_value(f"newsflow_producer_{name}")

        await publisher.start()
        try:
            first = await publisher.publish(article("before"))
            assert first is not None and await first
            assert sample("oldest_unacknowledged_send_seconds") == 0.0
            await asyncio.to_thread(broker.run, "stop")
            during = asyncio.ensure_future(publisher.publish(article("during")))
            await asyncio.sleep(6)
            assert sample("oldest_unacknowledged_send_seconds") >= 5  # type: ignore[operator]
            assert sample("send_errors_total") == 0.0
            await asyncio.to_thread(broker.run, "start")
            delivered = await asyncio.wait_for(during, 120)
            assert delivered is not None and await asyncio.wait_for(delivered, 120)
            assert sample("oldest_unacknowledged_send_seconds") == 0.0
            assert publisher.tally.sent == 2
        finally:
            await publisher.stop()

    asyncio.run(run())


@pytest.mark.timeout(300)
def test_http_ingest_answers_503_while_kafka_is_down_and_200_after(broker: Broker, tmp_path: Path):
    kafka = replace(unique_kafka(partitions=1), bootstrap=f"127.0.0.1:{broker.port}")
    asyncio.run(create_topics(kafka))
    port = free_port()
    env = {**os.environ, **kafka_env(kafka), "NEWSFLOW_PRODUCER_HTTP_PORT": str(port)}
    log = (tmp_path / "producer.log").open("wb")  # a file, not a pipe nobody reads while Kafka is down
    server = subprocess.Popen(
        [sys.executable, "-m", "newsflow.producer", "--serve"], env=env, stdout=log, stderr=log
    )

    def post(n: int) -> int:
        body = json.dumps({"url": f"https://wire.example/{n}", "text": f"Report {n}."}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/articles", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    try:
        wait_for(lambda: _answers(port), 60, "the HTTP ingest")
        assert post(1) == 200
        broker.run("stop")
        assert post(2) == 503
        broker.run("start")
        wait_for(lambda: post(3) == 200, 120, "a 200 once Kafka is back")
        # A stop while Kafka is away, with a request's sends unacknowledged, ends within a
        # container's grace period (it waited for the broker to come back, minutes later).
        broker.run("stop")
        assert post(4) == 503
        stopped = time.monotonic()
        server.terminate()
        server.wait(timeout=30)
        assert time.monotonic() - stopped < 10
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
            return True
    except (urllib.error.URLError, ConnectionError):
        return False


@pytest.mark.timeout(300)
def test_sigterm_while_kafka_is_gone_still_exits_within_10s(broker: Broker, tmp_path: Path):
    kafka = replace(unique_kafka(partitions=1), bootstrap=f"127.0.0.1:{broker.port}")
    asyncio.run(create_topics(kafka))
    corpus = tmp_path / "corpus"
    write_corpus(corpus, build_corpus(stories=2))
    with CommittedReader(kafka) as reader:
        worker = start_worker(kafka, tmp_path / "worker.log", "gone", {})
        produce_files(kafka, sorted(corpus.rglob("*.json")))
        wait_for(lambda: reader.collected.count() >= 10, 120, "output")
    broker.run("stop")
    time.sleep(3)
    asked = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)
    assert time.monotonic() - asked < 10
    assert "exiting now" in (tmp_path / "worker.log").read_text(errors="replace")


@pytest.mark.timeout(600)
def test_articles_unsendable_in_an_outage_longer_than_the_producer_timeout_are_sent_after_it(
    broker: Broker, tmp_path: Path
):
    """The clean agent's sends time out while the broker is gone (a 4 s producer timeout against a
    25 s outage): the batch waits and is sent when the broker is back, neither skipped nor repeated."""
    kafka = replace(unique_kafka(partitions=2), bootstrap=f"127.0.0.1:{broker.port}")
    asyncio.run(create_topics(kafka))
    corpus = tmp_path / "corpus"
    write_corpus(corpus, build_corpus(stories=40))
    files = sorted(corpus.rglob("*.json"))
    log = tmp_path / "worker.log"
    with CommittedReader(kafka) as reader:
        worker = start_worker(kafka, log, "unsendable", {"PRODUCER_REQUEST_TIMEOUT": "4"})
        try:
            sent = produce_files(kafka, files)
            wait_for(lambda: reader.collected.count() >= 1, 120, "first output")
            broker.run("stop")
            wait_for(lambda: "trying again" in log.read_text(errors="replace"), 60, "a failed send")
            time.sleep(10)
            broker.run("start")
            assert_each_out_once(reader, worker, sent)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    # enriched, every one: a send that timed out is sent again, not dead-lettered
    assert {topic for _, topic, _, _ in reader.collected.records} == {kafka.topic_enriched}


def test_the_stories_view_counts_a_broker_gone_after_it_started_following(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Its consumer returns no records, not an error, once the broker is gone: only asking for the
    # end offsets tells (NewsflowStoriesViewNotFollowing alerts on the count).
    from prometheus_client import CollectorRegistry

    from newsflow.web import service
    from newsflow.web.store import StoryStore

    monkeypatch.setattr(service, "CHECK_SECONDS", 1.0)
    monkeypatch.setattr(service, "CHECK_TIMEOUT_SECONDS", 3.0)
    kafka = replace(unique_kafka(partitions=1), bootstrap=f"127.0.0.1:{broker.port}")
    asyncio.run(create_topics(kafka))
    registry = CollectorRegistry()
    follower = service.Follower(kafka, StoryStore(tmp_path / "view.db"), *service.follow_metrics(registry))

    def failures() -> float:
        return registry.get_sample_value("newsflow_web_follow_failures_total") or 0.0

    async def scenario() -> None:
        following = asyncio.ensure_future(follower.run())
        try:
            await asyncio.wait_for(follower.caught_up.wait(), 60)
            await asyncio.sleep(3)
            assert failures() == 0
            await asyncio.to_thread(broker.run, "stop")
            deadline = time.monotonic() + 30
            while failures() == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            assert failures() >= 1
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following

    asyncio.run(scenario())
