"""Story grouping through Kafka does not depend on partitions, worker count or restarts.

200 articles in 40 stories (copies and other outlets' rewrites mixed, keyed by article id so one
story's articles land on different partitions of a 4-partition raw topic) must come out in the
same grouping with one worker, with two workers, and when the worker is restarted midway.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from newsflow.settings import KafkaSettings
from tests.integration.kafka_helpers import (
    RECV_TIMEOUT,
    ensure_topics,
    produce_files,
    read_records,
    trace_missing,
    unique_kafka,
    worker_process,
)
from tests.integration.story_corpus import build_corpus, write_corpus

Grouping = frozenset[frozenset[str]]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("corpus")
    return root, write_corpus(root, build_corpus())


def latest_by_path(records: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Last record per article, by its URL (a redelivery after a restart may emit one twice)."""
    return {r["url"]: r for _, r in records}


def grouping(by_path: dict[str, dict[str, Any]]) -> Grouping:
    stories: dict[str, set[str]] = {}
    for path, record in by_path.items():
        stories.setdefault(record["story_id"], set()).add(path)
    return frozenset(frozenset(members) for members in stories.values())


def fresh_kafka() -> KafkaSettings:
    kafka = unique_kafka(partitions=4)
    ensure_topics(kafka)
    return kafka


def wait_all(kafka: KafkaSettings, expected: int, worker: Any) -> dict[str, dict[str, Any]]:
    """Every article's latest record; a rebalance may emit some twice, so count distinct articles."""
    records = read_records(
        kafka,
        kafka.topic_enriched,
        want=expected,
        timeout=2 * RECV_TIMEOUT,
        worker=worker,
        done=lambda got: len(latest_by_path(got)) >= expected,
    )
    return latest_by_path(records)


def assert_complete(kafka: KafkaSettings, app_id: str, run: dict[str, dict[str, Any]], expected: int) -> None:
    """Fail with where the missing articles went (features, dead letters, committed offsets)."""
    if len(run) < expected:
        have = {record["article_id"] for record in run.values()}
        raise AssertionError(f"{len(run)} of {expected} articles out\n{trace_missing(kafka, app_id, have)}")


@contextlib.contextmanager
def workers(kafka: KafkaSettings, tmp_path: Path, app_id: str, count: int) -> Iterator[list[Any]]:
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(
                worker_process(
                    kafka,
                    tmp_path / f"{app_id}-{i}.log",
                    app_id,
                    {"NEWSFLOW_WORKER_DATA_DIR": str(tmp_path / f"data-{app_id}-{i}")},
                )
            )
            for i in range(count)
        ]
        yield procs


# Four worker runs over 200 articles, each bounded by its own wait (wait_all); on a loaded CI
# machine together they can take longer than the suite's 300 s default.
@pytest.mark.timeout(900)
def test_grouping_is_the_same_for_one_worker_two_workers_and_a_restart(corpus, tmp_path: Path):
    root, by_file = corpus
    articles = {a.envelope["url"]: a for a in by_file.values()}
    expected_truth: Grouping = frozenset(
        frozenset(u for u, a in articles.items() if a.story == s)
        for s in {a.story for a in articles.values()}
    )

    single = fresh_kafka()
    with workers(single, tmp_path, "one", 1) as (worker,):
        produce_files(single, [root])
        one = wait_all(single, len(articles), worker)
    assert_complete(single, "one", one, 200)

    double = fresh_kafka()
    with workers(double, tmp_path, "two", 2) as (w1, _w2):
        produce_files(double, [root])
        two = wait_all(double, len(articles), w1)
    assert_complete(double, "two", two, 200)

    restarted = fresh_kafka()
    files = sorted(p for p in root.rglob("*.json"))
    with workers(restarted, tmp_path, "restart", 1) as (worker,):
        produce_files(restarted, files[:100])
        read_records(restarted, restarted.topic_enriched, want=60, worker=worker)
    with workers(restarted, tmp_path, "restart", 1) as (worker,):  # same app id: same group, same tables
        produce_files(restarted, files[100:])
        three = wait_all(restarted, len(articles), worker)
    assert_complete(restarted, "restart", three, 200)

    assert grouping(one) == expected_truth
    assert grouping(two) == grouping(one)
    assert grouping(three) == grouping(one)
    # copies point at the first-seen text of their own story in every run
    for run in (one, two, three):
        copies = {p: r for p, r in run.items() if r["duplicate_of"]}
        assert len(copies) == 80
        by_id = {r["article_id"]: p for p, r in run.items()}
        for path, record in copies.items():
            assert articles[by_id[record["duplicate_of"]]].story == articles[path].story
