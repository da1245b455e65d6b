"""Sharing NER spans and embeddings between workers (worker/agents.py, `SharedResults`) is a cache:
the clean stage never waits for it, whatever the broker does with its sends."""

# ruff: noqa: ARG002, ARG005 - the fakes take the arguments of what they stand in for
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from newsflow.worker.agents import CleanAgent, SharedResults
from newsflow.worker.metrics import create_metrics


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


class _Topic:
    """A topic whose sends hang (a missing topic, a partition without a leader), or fail."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sends = 0

    async def send(self, key: bytes, value: bytes) -> asyncio.Future[Any]:
        self.sends += 1
        if self.fail:
            raise ConnectionError("no broker")
        await asyncio.Event().wait()
        raise AssertionError("never")


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


def _agent(topic: _Topic, per_batch: int, outbox: int) -> tuple[CleanAgent, _Forwarder, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = create_metrics(registry)
    enricher: Any = _Enricher(per_batch)
    shared = SharedResults(topic, lambda apply: _Replica(), enricher, metrics, outbox=outbox)
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


def test_batches_go_on_while_the_sends_of_shared_results_hang_and_what_does_not_fit_is_dropped():
    topic = _Topic()
    agent, forwarder, registry = _agent(topic, per_batch=3, outbox=4)
    assert agent.shared is not None

    async def run() -> None:
        async with agent.shared.running():  # type: ignore[union-attr]
            for n in range(5):
                await asyncio.wait_for(agent.batch([_event(n)]), 5)
                await asyncio.sleep(0)  # the sender takes one result, and hangs on it

    asyncio.run(run())
    assert len(forwarder.forwarded) == 5  # every batch forwarded
    assert topic.sends == 1
    # 15 results: one hanging in its send, four in the outbox, the rest dropped and counted.
    assert _counts(registry) == {"sent": 0.0, "failed": 0.0, "dropped": 10.0}


def test_a_failed_send_is_counted_and_the_next_results_are_sent_still():
    topic = _Topic(fail=True)
    agent, forwarder, registry = _agent(topic, per_batch=2, outbox=16)

    async def run() -> None:
        async with agent.shared.running():  # type: ignore[union-attr]
            for n in range(3):
                await agent.batch([_event(n)])
            for _ in range(10):
                await asyncio.sleep(0)

    asyncio.run(run())
    assert len(forwarder.forwarded) == 3
    assert topic.sends == 6
    assert _counts(registry) == {"sent": 0.0, "failed": 6.0, "dropped": 0.0}
