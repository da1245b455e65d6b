"""A worker whose Kafka group membership fails for good exits (to be restarted) instead of idling.

The failure is made as it happened in this project's tests: a worker is killed, and another one,
of other topics but under the same group and static member id, joins before the broker has
forgotten the first. The broker hands it the first one's partitions, aiokafka's group
coordination fails ("assignment for unsubscribed topic") and, left alone, the worker would stay up
with no partitions, consuming nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from newsflow.topics import create_topics
from newsflow.worker.app import EXIT_GROUP_FAILED
from tests.integration.kafka_helpers import start_worker, unique_kafka, wait_for_group


@pytest.mark.timeout(300)
def test_a_worker_whose_group_membership_fails_exits_to_be_restarted(tmp_path: Path):
    first, other = unique_kafka(partitions=2), unique_kafka(partitions=2)
    for kafka in (first, other):
        asyncio.run(create_topics(kafka))
    # A long session: the broker keeps the killed worker's static membership while the next starts.
    env = {"NEWSFLOW_WORKER_INSTANCE_ID": "worker-1", "NEWSFLOW_WORKER_SESSION_TIMEOUT_SECONDS": "60"}
    killed = start_worker(first, tmp_path / "first.log", "membership", env)
    try:
        wait_for_group(first, "membership", 1)
    finally:
        killed.kill()
        killed.wait()
    log = tmp_path / "second.log"
    second = start_worker(other, log, "membership", env)
    try:
        code = second.wait(timeout=180)
    finally:
        if second.poll() is None:
            second.kill()
    text = log.read_text(errors="replace")
    assert code == EXIT_GROUP_FAILED, text[-3000:]
    assert "left its group for good" in text
