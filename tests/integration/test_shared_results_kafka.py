"""Two workers share what they compute: a text one worker ran through the NER model and the
encoder is not run through them again by the other (pipeline/recent.py, worker/shared.py)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from newsflow.settings import KafkaSettings
from tests.conftest import SEEDS
from tests.integration.kafka_helpers import (
    counter,
    free_port,
    produce_files,
    read_records,
    wait_for_group,
    wait_until,
    worker_process,
)

COPIES = 16


@pytest.mark.timeout(600)
def test_a_wire_text_one_worker_computed_is_not_computed_again_by_the_other(
    kafka: KafkaSettings, tmp_path: Path
):
    text = sorted(SEEDS.glob("*.txt"))[0].read_bytes()
    first, copies = tmp_path / "first" / "wire", tmp_path / "copies"
    first.mkdir(parents=True)
    (first / "story.txt").write_bytes(text)
    for i in range(COPIES):  # carried verbatim by other outlets: other ids, so other partitions
        (copies / f"outlet-{i}").mkdir(parents=True)
        (copies / f"outlet-{i}" / "story.txt").write_bytes(text)
    ports = [free_port(), free_port()]
    with contextlib.ExitStack() as stack:
        w1, _ = (
            stack.enter_context(
                worker_process(
                    kafka,
                    tmp_path / f"worker-{i}.log",
                    "shared",
                    {
                        "NEWSFLOW_WORKER_METRICS_PORT": str(port),
                        "NEWSFLOW_WORKER_DATA_DIR": str(tmp_path / f"d{i}"),
                    },
                )
            )
            for i, port in enumerate(ports)
        )

        def total(name: str, **labels: str) -> float:
            return sum(counter(port, name, **labels) for port in ports)

        # Both in the group, and following the shared results, first: a late joiner would take
        # partitions, and maybe an article the other had computed before it followed (it follows
        # only what comes next).
        wait_for_group(kafka, "shared", 2)
        wait_until(
            lambda: total("newsflow_replica_following", topic=kafka.topic_recent) == 2,
            "both follow the shared results",
        )
        produce_files(kafka, [first.parent])
        read_records(kafka, kafka.topic_enriched, want=1, worker=w1)
        # The spans and the embedding went out once, and the other worker took both.
        wait_until(lambda: total("newsflow_recent_shared", outcome="adopted") >= 2, "the other took them")
        wait_until(
            lambda: total("newsflow_recent_shared", outcome="sent") >= 2, "the spans and embedding went out"
        )
        assert total("newsflow_recent_shared", outcome="sent") == 2
        produce_files(kafka, [copies])
        records = read_records(kafka, kafka.topic_enriched, want=1 + COPIES, worker=w1)
        assert len({key for key, _ in records}) == 1 + COPIES
        # Every copy was answered from what was computed for the first, on either worker: nothing
        # new went through the models, or it would have been shared too (one worker alone would
        # have computed its first copy again).
        assert total("newsflow_recent_shared", outcome="sent") == 2
        for stage in ("entities", "features"):
            assert total("newsflow_stage_reused", stage=stage) >= COPIES, stage
        assert all(counter(port, "newsflow_stage_reused", stage="entities") > 0 for port in ports)
        assert total("newsflow_recent_shared", outcome="refused") == 0
