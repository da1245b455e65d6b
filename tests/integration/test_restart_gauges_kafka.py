"""A restarted worker reports the dedup index it holds before any new input comes: it rebuilds the
desk when it is given the features partition, not at its first batch (an operator watching the
index gauges after a deploy saw 0 articles and 0 stories until the next article arrived)."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsflow.settings import KafkaSettings
from tests.conftest import SEEDS
from tests.integration.kafka_helpers import (
    counter,
    free_port,
    produce_files,
    read_records,
    wait_until,
    worker_process,
)


@pytest.mark.timeout(600)
def test_a_restarted_worker_reports_its_index_before_any_new_input(kafka: KafkaSettings, tmp_path: Path):
    def worker(name: str, port: int):  # noqa: ANN202
        env = {"NEWSFLOW_WORKER_METRICS_PORT": str(port), "NEWSFLOW_WORKER_DATA_DIR": str(tmp_path / name)}
        return worker_process(kafka, tmp_path / f"{name}.log", "gauges", env)

    def index(port: int) -> tuple[float, float]:
        return counter(port, "newsflow_dedup_index_articles"), counter(port, "newsflow_dedup_stories_open")

    port = free_port()
    with worker("first", port) as first:
        sent = produce_files(kafka, [SEEDS])
        read_records(kafka, kafka.topic_enriched, want=len(sent), worker=first)
        wait_until(lambda: index(port) == (len(sent), 1), "the first worker reports the seeds' story")
    # A new process (its own data directory: no snapshot on disk), the same consumer group, no input.
    port = free_port()
    with worker("second", port) as second:
        wait_until(lambda: index(port) == (len(sent), 1), "the restarted worker reports the index it rebuilt")
        assert counter(port, "newsflow_dedup_rebuild_seconds") > 0
        assert second.poll() is None
