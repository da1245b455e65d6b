"""Waiting for the broker, without one: what counts as 'not answering yet'."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka.errors import (
    InvalidConfigurationError,
    NodeNotReadyError,
    RequestTimedOutError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)

from newsflow import topics
from newsflow.settings import KafkaSettings


class _Admin:
    """An admin client whose metadata requests fail with the given errors, then answer."""

    failures: list[Exception] = []
    calls = 0

    def __init__(self, **_: object) -> None:
        pass

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        type(self).calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return []


async def _no_probe(_: KafkaSettings) -> None:
    pass


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> type[_Admin]:
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", _Admin)
    monkeypatch.setattr(topics, "_probe", _no_probe)
    _Admin.calls = 0
    return _Admin


def test_a_broker_resuming_without_metadata_is_waited_for_not_fatal(admin: type[_Admin]):
    # After a pause the broker may answer with metadata that names no broker (node id None).
    admin.failures = [NodeNotReadyError("node id None"), RequestTimedOutError()]
    asyncio.run(topics.wait_for_broker(KafkaSettings(), timeout=5))
    assert admin.calls == 3


def test_an_error_waiting_will_not_fix_is_raised_at_once(admin: type[_Admin]):
    admin.failures = [UnknownTopicOrPartitionError()]
    with pytest.raises(UnknownTopicOrPartitionError):
        asyncio.run(topics.wait_for_broker(KafkaSettings(), timeout=5))
    assert admin.calls == 1


def test_a_long_wait_for_the_broker_is_said_not_silent(admin: type[_Admin], monkeypatch, caplog):
    monkeypatch.setattr(topics, "NOTE_WAITING_SECONDS", 0.3)
    admin.failures = [RequestTimedOutError() for _ in range(4)]
    with caplog.at_level("WARNING", logger="newsflow.topics"):
        asyncio.run(topics.wait_for_broker(KafkaSettings(), timeout=10))
    notes = [r.getMessage() for r in caplog.records]
    assert notes and all(n.startswith("Kafka at 127.0.0.1:19092 has not answered so far") for n in notes)


class _CreatingAdmin:
    """An admin client whose CreateTopics answers carry the given per-topic error codes in turn."""

    def __init__(self, codes: list[int]) -> None:
        self.codes = codes
        self.calls = 0

    async def create_topics(self, new: list[object]) -> object:  # noqa: ARG002
        self.calls += 1
        return SimpleNamespace(topic_errors=[("t", self.codes.pop(0), "said the broker")])


def test_creating_a_topic_reads_the_brokers_answer_per_topic(monkeypatch):
    monkeypatch.setattr(topics.asyncio, "sleep", _no_sleep)
    spec = topics.TopicSpec("t", 1, {})
    assert asyncio.run(topics._create(_CreatingAdmin([0]), spec)) is True
    # another worker made it first: not counted as created by this one
    assert asyncio.run(topics._create(_CreatingAdmin([TopicAlreadyExistsError.errno]), spec)) is False
    # a timeout is tried again, and the topic made on the next attempt
    retried = _CreatingAdmin([RequestTimedOutError.errno, 0])
    assert asyncio.run(topics._create(retried, spec)) is True and retried.calls == 2
    with pytest.raises(topics.TopicCreationError, match="InvalidConfigurationError: said the broker"):
        asyncio.run(topics._create(_CreatingAdmin([InvalidConfigurationError.errno]), spec))


async def _no_sleep(_: float) -> None:
    pass
