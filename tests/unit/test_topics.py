"""Waiting for the broker, without one: what counts as 'not answering yet'."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import NodeNotReadyError, RequestTimedOutError, UnknownTopicOrPartitionError

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
