"""Topic creation on the real broker: partitions and configuration are the project's, also on upgrade."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from prometheus_client import CollectorRegistry

from newsflow.producer.metrics import create_metrics
from newsflow.producer.publish import produce
from newsflow.producer.settings import ProducerSettings
from newsflow.settings import KafkaSettings
from newsflow.topics import (
    DEAD_LETTER_RETENTION_MS,
    BrokerRefused,
    TopicCreationError,
    TopicLayoutError,
    TopicSpec,
    create_topics,
    wait_for_broker,
)
from tests.conftest import SEEDS
from tests.integration.kafka_helpers import unique_kafka


async def _topic_configs(
    kafka: KafkaSettings, topic: str, alter: dict[str, str] | None = None
) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        if alter is not None:
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, alter)])
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        ((_, _, _, _, entries),) = response.resources
        return {name: value for name, value, *_ in entries}
    finally:
        await admin.close()


def _configs_once_applied(kafka: KafkaSettings, topic: str, expect: dict[str, str]) -> dict[str, str]:
    # In KRaft mode the controller acknowledges a config change before the broker that answers
    # DescribeConfigs has applied the metadata record, so a describe right after may read the old
    # value: wait (briefly) until the broker has caught up.
    deadline = time.monotonic() + 10
    while True:
        configs = asyncio.run(_topic_configs(kafka, topic))
        if all(configs.get(k) == v for k, v in expect.items()) or time.monotonic() > deadline:
            return configs
        time.sleep(0.1)


def test_topics_admit_large_articles_and_an_upgrade_reapplies_the_config(kafka: KafkaSettings):
    # The `kafka` fixture has created the topics.
    raw = asyncio.run(_topic_configs(kafka, kafka.topic_raw))
    assert raw["max.message.bytes"] == str(kafka.max_message_bytes) == "8388608"
    assert raw["message.timestamp.type"] == "LogAppendTime"  # the latency is measured from it
    dead = asyncio.run(_topic_configs(kafka, kafka.topic_dead_letter))
    assert dead["retention.ms"] == str(DEAD_LETTER_RETENTION_MS)
    stories = asyncio.run(_topic_configs(kafka, kafka.topic_stories))
    assert stories["cleanup.policy"] == "compact"

    # A topic made by an older version (Kafka's default 1 MiB limit) gets the current config.
    asyncio.run(_topic_configs(kafka, kafka.topic_stories, alter={"max.message.bytes": "1048588"}))
    old = _configs_once_applied(kafka, kafka.topic_stories, {"max.message.bytes": "1048588"})
    assert old["max.message.bytes"] == "1048588" and old["cleanup.policy"] == "delete"
    assert asyncio.run(create_topics(kafka)) == []
    upgraded = _configs_once_applied(
        kafka, kafka.topic_stories, {"max.message.bytes": "8388608", "cleanup.policy": "compact"}
    )
    assert upgraded["max.message.bytes"] == "8388608" and upgraded["cleanup.policy"] == "compact"


def test_a_file_over_the_message_size_fails_alone_and_the_rest_is_sent(kafka: KafkaSettings, tmp_path: Path):
    (tmp_path / "wire").mkdir()
    for seed in SEEDS.iterdir():
        (tmp_path / "wire" / seed.name).write_bytes(seed.read_bytes())
    (tmp_path / "wire" / "huge.txt").write_text("A very long wire story. " * 2000)  # 48 kB
    small = replace(kafka, max_message_bytes=20_000)  # seeds are 4-6 kB
    registry = CollectorRegistry()
    tally = asyncio.run(produce([tmp_path], small, ProducerSettings(), create_metrics(registry)))
    assert (tally.sent, tally.failed, tally.by("skipped")) == (2, 1, {})
    assert registry.get_sample_value("newsflow_producer_send_errors_total") == 1


def test_a_single_writer_topic_with_more_partitions_is_refused_and_other_counts_are_kept(caplog):
    kafka = unique_kafka(partitions=4)

    async def make(name: str, partitions: int) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        finally:
            await admin.close()

    asyncio.run(make(kafka.topic_raw, 2))  # made by an earlier deploy with other settings
    with caplog.at_level("WARNING", logger="newsflow.topics"):
        asyncio.run(create_topics(kafka))
    assert f"topic {kafka.topic_raw} keeps its 2 partitions" in caplog.text
    assert "replicas" not in caplog.text
    # A replication factor raised later is said of the topics made before (one broker: 1 replica).
    with caplog.at_level("WARNING", logger="newsflow.topics"):
        asyncio.run(create_topics(replace(kafka, replication_factor=3)))
    assert f"topic {kafka.topic_raw} has 1 replicas; NEWSFLOW_TOPIC_REPLICATION_FACTOR (3)" in caplog.text

    kafka = unique_kafka()
    asyncio.run(make(kafka.topic_features, 3))
    with pytest.raises(TopicLayoutError, match="needs exactly 1"):
        asyncio.run(create_topics(kafka))


def test_a_topic_the_broker_refuses_to_create_is_an_error_not_a_success():
    kafka = unique_kafka()
    refused = TopicSpec(kafka.topic_raw, 1, {"cleanup.policy": "sometimes"})
    with pytest.raises(TopicCreationError, match=f"refused to create topic {kafka.topic_raw}"):
        asyncio.run(create_topics(kafka, [refused]))


def test_topics_are_created_with_the_replication_factor_set():
    # One broker here: a factor of 2 reaching the broker is refused, which shows the setting is sent.
    kafka = replace(unique_kafka(), replication_factor=2)
    spec = TopicSpec(kafka.topic_raw, 1, {})
    with pytest.raises(TopicCreationError, match="InvalidReplicationFactor"):
        asyncio.run(create_topics(kafka, [spec]))
    assert asyncio.run(create_topics(replace(kafka, replication_factor=1), [spec])) == [kafka.topic_raw]


def test_sasl_against_a_listener_without_it_is_one_clear_refusal(kafka: KafkaSettings):
    """A client set for SASL (NEWSFLOW_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT) on a plaintext
    listener: the broker answers the handshake with an error, which every service reports as one
    line naming the settings to check, not as a traceback or a wait for a broker that is there."""
    sasl = replace(
        kafka,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password="p",
    )
    with pytest.raises(BrokerRefused) as refused:
        asyncio.run(wait_for_broker(sasl, timeout=20))
    message = str(refused.value)
    assert message.startswith(f"Kafka at {kafka.bootstrap} does not take SASL PLAIN there")
    assert "NEWSFLOW_KAFKA_SECURITY_PROTOCOL" in message and "\n" not in message
