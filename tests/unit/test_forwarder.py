"""What the clean agent's `Forwarder` does with messages the broker does not take.

The topic is a stand-in with the two answers a Kafka send can give (this tests the agent's
decision, not Kafka: tests/integration/test_broker_outage_kafka.py runs a real broker's outage)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from prometheus_client import CollectorRegistry

from newsflow.worker.agents import Forwarder, transient
from newsflow.worker.metrics import create_metrics


class _Topic:
    """Delivers what is sent, except its first `down_sends` sends (they time out: the broker is
    gone) and a value in `refused` (refused at once, as Faust refuses a message over the size limit)."""

    def __init__(self, down_sends: int = 0, refused: frozenset[bytes] = frozenset()) -> None:
        self.down_sends = down_sends
        self.refused = refused
        self.delivered: list[tuple[bytes, bytes]] = []

    async def send(self, key: bytes, value: bytes) -> Any:
        if value in self.refused:
            raise ValueError("message too large")
        down = self.down_sends > 0
        self.down_sends -= 1

        async def answer() -> None:
            if down:
                raise KafkaTimeoutError("broker gone")
            self.delivered.append((key, value))

        return asyncio.ensure_future(answer())


def _event(offset: int) -> Any:
    message = SimpleNamespace(topic="raw", partition=0, offset=offset, timestamp=0.0, acked=False)
    return SimpleNamespace(key=f"a{offset}".encode(), value=b"<p>page</p>", headers={}, message=message)


def _forward(topic: _Topic, events: list[Any], keep_trying: Any) -> tuple[Forwarder, CollectorRegistry]:
    registry = CollectorRegistry()
    forwarder = Forwarder(topic, create_metrics(registry), 4096, keep_trying, retry_seconds=(0.01, 0.02))
    messages = [(e.key, b"features of " + e.key) for e in events]
    asyncio.run(forwarder.forward(messages, events))
    return forwarder, registry


def _unsendable(registry: CollectorRegistry) -> float:
    value = registry.get_sample_value(
        "newsflow_worker_messages_total", {"stage": "enrich", "outcome": "unsendable"}
    )
    return value or 0.0


def test_messages_unsent_in_an_outage_are_sent_when_the_broker_is_back_not_skipped():
    events = [_event(n) for n in range(3)]
    topic = _Topic(down_sends=6)  # two rounds of the three sends time out
    _, registry = _forward(topic, events, lambda: True)
    # the originals went through, once each and in order; no dead letter stands in for them
    assert topic.delivered == [(e.key, b"features of " + e.key) for e in events]
    assert not any(e.message.acked for e in events)  # left for the agent to acknowledge
    assert _unsendable(registry) == 6
    assert _rejected(registry) == 0


def test_messages_unsent_when_the_flow_stops_are_withheld_to_be_read_again():
    events = [_event(n) for n in range(3)]
    topic = _Topic(down_sends=3)
    _, registry = _forward(topic, events, lambda: False)
    assert topic.delivered == []
    # marked acknowledged without entering the consumer's list: the commit cannot pass them
    assert all(e.message.acked for e in events)
    assert _unsendable(registry) == 3


def test_a_rebalance_during_the_pause_withholds_instead_of_sending_again():
    events = [_event(n) for n in range(2)]
    topic = _Topic(down_sends=2)
    answers = iter([True, False])  # flow on when the round failed, stopped after the pause
    _forward(topic, events, lambda: next(answers))
    assert topic.delivered == []
    assert all(e.message.acked for e in events)


def test_a_message_the_broker_refuses_goes_as_a_dead_letter_without_a_retry():
    events = [_event(0), _event(1)]
    topic = _Topic(refused=frozenset({b"x" * 200}))
    messages = [(events[0].key, b"x" * 200), (events[1].key, b"features")]
    registry = CollectorRegistry()
    forwarder = Forwarder(topic, create_metrics(registry), 4096, lambda: True, retry_seconds=(0.01, 0.02))
    asyncio.run(forwarder.forward(messages, events))
    assert [key for key, _ in topic.delivered] == [b"a1", b"a0"]
    assert b"send failed" in topic.delivered[1][1]
    assert _unsendable(registry) == 0
    assert _rejected(registry) == 1


def test_the_dead_letter_of_a_refused_message_is_sent_again_in_an_outage_not_built_again():
    event = _event(0)
    topic = _Topic(down_sends=1, refused=frozenset({b"x" * 200}))  # the dead letter's first send times out
    registry = CollectorRegistry()
    forwarder = Forwarder(topic, create_metrics(registry), 4096, lambda: True, retry_seconds=(0.01, 0.02))
    asyncio.run(forwarder.forward([(event.key, b"x" * 200)], [event]))
    ((key, value),) = topic.delivered
    assert key == b"a0" and b"send failed" in value
    assert _rejected(registry) == 1  # one input refused once, counted once
    assert _unsendable(registry) == 1


def _rejected(registry: CollectorRegistry) -> float:
    labels = {"stage": "enrich", "outcome": "rejected"}
    return registry.get_sample_value("newsflow_worker_messages_total", labels) or 0.0


def _wrapped(error: BaseException) -> BaseException:
    try:
        raise ProducerSendError(f"Error while sending: {error!r}") from error  # as Faust's producer does
    except ProducerSendError as exc:
        return exc


def test_timeouts_and_lost_connections_are_worth_a_retry_refusals_are_not():
    assert transient(_wrapped(KafkaTimeoutError()))
    assert transient(KafkaConnectionError())
    assert not transient(_wrapped(MessageSizeTooLargeError()))
    assert not transient(ValueError("message too large"))
    assert not transient(None)
