"""The consumer never records as read a message its stream skipped (worker/transport.py, fix 5).

Real Faust objects (the app, its consumer, a topic its agent reads), no broker: the consumer is
never started, only its acknowledgement bookkeeping is exercised."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from faust.types import TP, Message

from newsflow.worker.transport import App


@pytest.fixture
def app() -> Iterator[Any]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # Faust's services take the current loop
    app = App("transport-test", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False, loop=loop)
    topic = app.topic("raw", value_serializer="raw")

    @app.agent(topic)
    async def _reader(stream: Any) -> Any:  # pragma: no cover - never run
        async for _ in stream:
            yield None

    app.topics._acking_topics.add("raw")  # what starting the agent's stream does
    try:
        yield app
    finally:
        app.consumer._thread.thread_loop.close()  # the consumer's thread made its own, never run
        asyncio.set_event_loop(None)
        loop.close()


def message(app: Any, offset: int, generation: int | None = None) -> Message:
    return Message(
        "raw",
        0,
        offset,
        0.0,
        0,
        [],
        b"k",
        b"v",
        None,
        tp=TP("raw", 0),
        generation_id=app.consumer_generation_id if generation is None else generation,
    )


def acked_offsets(app: Any) -> list[int]:
    return list(app.consumer._acked[TP("raw", 0)])


def test_a_message_acknowledged_while_the_flow_runs_counts_as_read(app):
    app.flow_control.resume()
    assert app.consumer.ack(message(app, 0)) is True
    assert acked_offsets(app) == [0]


def test_a_message_acknowledged_while_the_flow_is_stopped_is_withheld(app):
    app.flow_control.resume()
    app.consumer.ack(message(app, 0))
    app.flow_control.suspend()  # a stop or a rebalance: the stream skips what it takes now
    skipped = message(app, 1)
    assert app.consumer.ack(skipped) is False
    assert skipped.acked  # the stream will not try again
    assert acked_offsets(app) == [0]
    app.flow_control.resume()
    app.consumer.ack(message(app, 2))
    assert app.consumer._new_offset(TP("raw", 0)) == 1  # the commit stops before offset 1


def test_a_message_of_an_earlier_generation_is_withheld(app):
    app.flow_control.resume()
    app.consumer_generation_id = 5
    assert app.consumer.ack(message(app, 0, generation=4)) is False
    assert acked_offsets(app) == []


def test_acknowledgements_of_topics_the_writer_commits_are_not_recorded(app):
    app.self_committed_topics = frozenset({"raw"})
    app.flow_control.resume()
    app.consumer._committed_offset[TP("raw", 0)] = 10  # as after a restart
    for offset in range(10, 20):
        one = message(app, offset)
        assert app.consumer.ack(one) is True and one.acked
    assert acked_offsets(app) == [] and not app.consumer._acked_index[TP("raw", 0)]
