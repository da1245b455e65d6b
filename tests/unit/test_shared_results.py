"""Sharing NER spans and embeddings between workers (worker/shared.py, `SharedResults`) is a cache:
the clean stage never waits for it, whatever the broker does with its sends."""

# ruff: noqa: ARG002, ARG005 - the fakes take the arguments of what they stand in for
from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from newsflow.worker.agents import CleanAgent
from newsflow.worker.metrics import create_metrics
from newsflow.worker.shared import SharedResults


class _Enricher:
    """The stage code's part a clean batch calls: each article comes back as it went in, and each
    batch leaves `per_batch` results to share."""

    def __init__(self, per_batch: int) -> None:
        self.per_batch = per_batch
        self.batches = 0

    def clean(self, raw: Any) -> Any:
        return raw

    def finish(self, cleaned: list[Any], received: float) -> list[Any]:
        self.batches += 1
        return cleaned

    def reused(self) -> dict[str, int]:
        return {}

    def fresh_results(self) -> list[tuple[bytes, bytes]]:
        return [(b"step/%d.%d" % (self.batches, n), b"value") for n in range(self.per_batch)]


class _Forwarder:
    def __init__(self) -> None:
        self.forwarded: list[Any] = []

    def message(self, result: Any, event: Any) -> Any:
        return result

    async def forward(self, messages: list[Any], events: Any) -> None:
        self.forwarded.extend(messages)


class _Producer:
    """A producer that cannot start, or whose sends hang (a missing topic, a partition without a
    leader), fail at once, are taken and never answered, or ("half") are taken and every other
    one fails on the broker."""

    def __init__(self, mode: str = "hang") -> None:
        self.mode = mode
        self.sends = 0
        self.started = self.stopped = False
        self.held: list[asyncio.Future[Any]] = []

    async def start(self) -> None:
        if self.mode == "unreachable":
            raise ConnectionError("no broker")
        self.started = True

    async def stop(self) -> None:
        """Answer what it still holds, as a flush would: every other one delivered."""
        self.stopped = True
        for n, held in enumerate(self.held):
            if n % 2:
                held.set_exception(ConnectionError("the broker refused it"))
            else:
                held.set_result(None)

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        self.sends += 1
        if self.mode == "fail":
            raise ConnectionError("no broker")
        if self.mode == "hang":
            await asyncio.Event().wait()
        delivered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.mode == "unanswered":
            self.held.append(delivered)
            return delivered
        if self.mode == "half" and not self.sends % 2:
            delivered.set_exception(ConnectionError("the broker refused it"))
        else:
            delivered.set_result(None)
        return delivered


class _Replica:
    @contextlib.asynccontextmanager
    async def running(self, wait_seconds: float) -> AsyncIterator[None]:
        yield


def _event(n: int) -> Any:
    return SimpleNamespace(
        key=b"outlet.example",
        value=b'{"text": "an article"}',
        headers=[],
        message=SimpleNamespace(topic="raw", partition=0, offset=n, acked=False),
    )


def _counts(registry: CollectorRegistry) -> dict[str, float]:
    return {
        outcome: registry.get_sample_value("newsflow_recent_shared_total", {"outcome": outcome}) or 0.0
        for outcome in ("sent", "failed", "dropped")
    }


def _agent(
    producer: _Producer | Iterator[_Producer], per_batch: int, outbox: int
) -> tuple[CleanAgent, _Forwarder, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = create_metrics(registry)
    enricher: Any = _Enricher(per_batch)
    producers = producer if isinstance(producer, Iterator) else itertools.repeat(producer)
    shared = SharedResults(
        "recent", lambda: next(producers), lambda apply: _Replica(), enricher, metrics, outbox=outbox
    )
    shared.restart_seconds = 0.0
    forwarder = _Forwarder()
    agent = CleanAgent(
        enricher,
        forwarder,
        _Replica(),
        metrics,
        lambda: False,
        (32, 0.01),
        shared=shared,  # type: ignore[arg-type]
    )
    return agent, forwarder, registry


def _run(agent: CleanAgent, batches: int) -> None:
    async def run() -> None:
        async with agent.shared.running():  # type: ignore[union-attr]
            for n in range(batches):
                await asyncio.wait_for(agent.batch([_event(n)]), 5)
                await asyncio.sleep(0)  # the sender's turn
            for _ in range(10):
                await asyncio.sleep(0)

    asyncio.run(run())


def test_batches_go_on_while_the_sends_of_shared_results_hang_and_every_result_lost_is_counted():
    producer = _Producer("hang")
    agent, forwarder, registry = _agent(producer, per_batch=3, outbox=4)
    _run(agent, 5)
    assert len(forwarder.forwarded) == 5  # every batch forwarded
    assert producer.sends == 1 and producer.stopped
    # 15 results: 10 did not fit in the outbox; at the stop, the one hanging in its send and the
    # four still in the outbox are counted too.
    assert _counts(registry) == {"sent": 0.0, "failed": 0.0, "dropped": 15.0}


def test_sends_refused_at_once_or_by_the_broker_are_counted_and_the_next_results_are_sent_still():
    producer = _Producer("fail")
    agent, forwarder, registry = _agent(producer, per_batch=2, outbox=16)
    _run(agent, 3)
    assert len(forwarder.forwarded) == 3
    assert producer.sends == 6
    assert _counts(registry) == {"sent": 0.0, "failed": 6.0, "dropped": 0.0}

    producer = _Producer("half")  # every other send fails on the broker
    agent, forwarder, registry = _agent(producer, per_batch=2, outbox=16)
    _run(agent, 3)
    assert _counts(registry) == {"sent": 3.0, "failed": 3.0, "dropped": 0.0}


def test_results_unsent_or_unanswered_at_a_stop_are_counted_as_dropped_once():
    producer = _Producer("unanswered")
    agent, forwarder, registry = _agent(producer, per_batch=2, outbox=16)
    _run(agent, 3)
    # The stop answered the six sends (three delivered, three refused) after they were counted.
    assert producer.sends == 6 and producer.stopped and all(f.done() for f in producer.held)
    assert _counts(registry) == {"sent": 0.0, "failed": 0.0, "dropped": 6.0}


def test_a_producer_that_cannot_start_is_started_again_and_nothing_is_lost_meanwhile():
    unreachable, working = _Producer("unreachable"), _Producer("delivered")
    agent, forwarder, registry = _agent(iter([unreachable, working]), per_batch=3, outbox=16)
    _run(agent, 5)
    assert len(forwarder.forwarded) == 5 and unreachable.sends == 0 and working.sends == 15
    assert _counts(registry) == {"sent": 15.0, "failed": 0.0, "dropped": 0.0}
