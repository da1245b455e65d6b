"""The dedup writer readies itself when it is given the features partition (`prepare_soon`), not at
its first batch: what it readies must be this ownership's, whatever rebalances and stops come
meanwhile. A fake producer whose start waits for the test (no Kafka: these are the writer's own
bookkeeping races; tests/integration covers delivery on the real broker)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from newsflow.pipeline.dedup import DedupOptions
from newsflow.settings import KafkaSettings
from newsflow.worker import writer as writer_module
from newsflow.worker.writer import TransactionalWriter


class FakeProducer:
    made: list[FakeProducer] = []

    def __init__(self, **_: Any) -> None:
        self.started, self.release, self.stopped = asyncio.Event(), asyncio.Event(), False
        FakeProducer.made.append(self)

    async def start(self) -> None:
        self.started.set()
        await self.release.wait()

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def writer(monkeypatch: pytest.MonkeyPatch) -> TransactionalWriter:
    FakeProducer.made = []

    async def stop_quietly(producer: FakeProducer, seconds: float = 0) -> None:  # noqa: ARG001
        producer.stopped = True

    monkeypatch.setattr(writer_module, "AIOKafkaProducer", FakeProducer)
    monkeypatch.setattr(writer_module, "stop_quietly", stop_quietly)
    w = TransactionalWriter(KafkaSettings(), "g", DedupOptions())
    w.rebuilds = 0  # type: ignore[attr-defined]

    async def ends() -> dict[tuple[str, int], int]:
        return {}

    w._ends = ends  # type: ignore[method-assign]
    w.reported = []  # type: ignore[attr-defined]
    w.on_rebuilt = lambda _desk, _seconds: w.reported.append("gauges")  # type: ignore[attr-defined]
    return w


def _rebuild_on(w: TransactionalWriter, gate: asyncio.Event) -> None:
    async def rebuild() -> tuple[Any, str]:
        w.rebuilds += 1  # type: ignore[attr-defined]
        await gate.wait()
        return w.desk, "fake"

    w._rebuild = rebuild  # type: ignore[method-assign]


def test_a_revocation_while_the_producer_starts_voids_it(writer: TransactionalWriter):
    owner = [True]

    async def run() -> None:
        gate = asyncio.Event()
        gate.set()
        _rebuild_on(writer, gate)
        writer.prepare_soon(lambda: False, lambda: owner[0])
        await asyncio.sleep(0)
        (first,) = FakeProducer.made
        await first.started.wait()
        owner[0] = False
        writer.mark_stale()  # the partition goes to another worker while the producer starts
        first.release.set()
        await writer._preparing  # type: ignore[misc]

    asyncio.run(run())
    # Not this ownership's producer: stopped, no rebuild, no gauges reported by a non-owner.
    assert FakeProducer.made[0].stopped and writer._producer is None
    assert (writer.rebuilds, writer.reported, writer._stale) == (0, [], True)  # type: ignore[attr-defined]


def test_a_stop_while_the_producer_starts_leaves_no_producer_running(writer: TransactionalWriter):
    async def run() -> None:
        gate = asyncio.Event()
        gate.set()
        _rebuild_on(writer, gate)
        writer.prepare_soon(lambda: False, lambda: True)
        await asyncio.sleep(0)
        (first,) = FakeProducer.made
        await first.started.wait()
        await writer.stop()  # the agent's finally, while the start waits on the broker
        first.release.set()
        await asyncio.sleep(0.01)

    asyncio.run(run())
    assert FakeProducer.made[0].stopped and writer._producer is None
    assert writer._preparing is not None and writer._preparing.done()


def test_revoked_and_given_back_during_the_rebuild_it_readies_again_for_the_new_ownership(
    writer: TransactionalWriter,
):
    async def run() -> None:
        gate = asyncio.Event()
        _rebuild_on(writer, gate)
        writer.prepare_soon(lambda: False, lambda: True)
        await asyncio.sleep(0)
        FakeProducer.made[0].release.set()
        await asyncio.sleep(0.01)  # rebuilding now
        writer.mark_stale()  # a rebalance revokes it ...
        writer.prepare_soon(lambda: False, lambda: True)  # ... and gives it back: the one running goes on
        gate.set()
        for _ in range(50):
            for producer in FakeProducer.made:
                producer.release.set()
            await asyncio.sleep(0.01)
            if writer._preparing is not None and writer._preparing.done():
                break

    asyncio.run(run())
    first, second = FakeProducer.made
    assert first.stopped and writer._producer is second and not second.stopped
    assert (writer.rebuilds, writer.reported, writer._stale) == (2, ["gauges"], False)  # type: ignore[attr-defined]


def test_a_stopped_writer_writes_nothing_more_and_starts_no_producer(writer: TransactionalWriter):
    # Faust may run an agent again after its first run stopped the writer: it must not retry for
    # ever against a writer that refuses every producer it starts.
    async def run() -> list[Any]:
        await writer.stop()
        return await asyncio.wait_for(writer.write_batch([object()], lambda: False, lambda: True), 5)

    assert asyncio.run(run()) == []
    assert FakeProducer.made == []


def test_a_batch_waiting_on_a_rebuild_that_is_revoked_meanwhile_starts_nothing(writer: TransactionalWriter):
    # The partition's rebuild (`prepare`) holds the writer while the agent's first batch waits for
    # it; a rebalance gives the partition to another worker meanwhile. The batch must not start a
    # producer (it would fence the new owner) nor rebuild: it is the new owner's to read again.
    owner = [True]

    async def run() -> list[Any]:
        async with writer._readying:  # the rebuild
            task = asyncio.create_task(writer.write_batch([object()], lambda: False, lambda: owner[0]))
            await asyncio.sleep(0.01)  # waiting for the lock
            owner[0] = False
            writer.mark_stale()
        return await asyncio.wait_for(task, 5)

    assert asyncio.run(run()) == []
    assert FakeProducer.made == [] and writer.rebuilds == 0  # type: ignore[attr-defined]
