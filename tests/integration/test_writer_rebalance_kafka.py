"""The dedup writer when a transaction in flight is disturbed, on the real broker.

- Its partition is revoked: a rebalance calls `TransactionalWriter.mark_stale` from Faust's
  callback while the writer's agent may be inside `write_batch`. Stopping the producer under an
  open transaction left its sends and commit waiting for ever (aiokafka resolves them from the
  sender task that stop() ends): the writer, and with it every output, stopped for good (seen once
  in CI: two workers, a rebalance just after the writer's first rebuild, no record in four minutes).
- A second owner fences it: the partition's new owner starts a producer with the same
  transactional id while the old owner's transaction is open. The open transaction is aborted,
  the old owner's commit fails, and every article comes out once, from the new owner.
- Its commit, or its sends, never answer: the writer gives the transaction up after its bound,
  ends the old producer (whose stop can never finish a flush that waits on a send no one answers),
  and writes the batch again with a new producer (which fences the old), once.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from newsflow.pipeline.desk import DedupDesk
from newsflow.pipeline.options import DedupOptions
from newsflow.worker import writer as writer_module
from newsflow.worker.replica import read_to_end
from newsflow.worker.writer import TransactionalWriter
from tests.integration.kafka_helpers import ensure_topics, unique_kafka


def _event(topic: str, offset: int) -> SimpleNamespace:
    # What the writer reads of a Faust event; a value that is not a features message is
    # dead-lettered, which still makes a transaction with a send and an offset commit.
    message = SimpleNamespace(topic=topic, partition=0, offset=offset)
    return SimpleNamespace(message=message, value=b"not a features message %d" % offset, key=b"k%d" % offset)


def test_a_revocation_during_a_transaction_does_not_stop_the_writer():
    kafka = unique_kafka(partitions=1)
    ensure_topics(kafka)

    async def scenario() -> None:
        writer = TransactionalWriter(kafka, f"writer-test-{kafka.topic_features}", DedupOptions())
        yes, no = (lambda: True), (lambda: False)
        try:
            first = await asyncio.wait_for(writer.write_batch([_event(kafka.topic_features, 0)], no, yes), 60)
            assert len(first) == 1
            for offset in range(1, 6):
                batch = [_event(kafka.topic_features, offset)]
                task = asyncio.create_task(writer.write_batch(batch, no, yes))
                deadline = time.monotonic() + 60
                while not writer.writing:  # until the transaction is open
                    assert not task.done() and time.monotonic() < deadline, offset
                    await asyncio.sleep(0.001)
                replaced = writer._producer
                for _ in range(offset):  # a little further into it each time
                    await asyncio.sleep(0)
                writer.mark_stale()  # the partition was revoked (and given back)
                written = await asyncio.wait_for(task, 30)
                assert len(written) == 1, offset
                assert writer._producer is None and replaced is not None  # dropped after the write
            # The next batch goes through a new producer and a rebuilt desk.
            assert (
                len(
                    await asyncio.wait_for(writer.write_batch([_event(kafka.topic_features, 6)], no, yes), 30)
                )
                == 1
            )
        finally:
            await writer.stop()

    asyncio.run(scenario())


async def _dead_letter_keys(kafka: Any) -> list[bytes]:
    """The keys of the dead letters written (read committed), sorted."""
    return sorted(key for key, _ in await read_to_end(kafka, kafka.topic_dead_letter))


def _yes() -> bool:
    return True


def _no() -> bool:
    return False


def test_a_second_owner_fences_a_transaction_in_flight_and_each_article_is_written_once():
    kafka = unique_kafka(partitions=1)
    ensure_topics(kafka)
    topic = kafka.topic_features

    async def scenario() -> None:
        group = f"writer-test-{topic}"
        # The old owner's own bound far away: only the fencing may end its transaction.
        old = TransactionalWriter(kafka, group, DedupOptions(), transaction_seconds=600)
        new = TransactionalWriter(kafka, group, DedupOptions())
        try:
            assert len(await asyncio.wait_for(old.write_batch([_event(topic, 0)], _no, _yes), 60)) == 1
            # Hold the old owner's next commit until the new owner has written.
            assert old._producer is not None
            commit = old._producer.commit_transaction
            reached, release = asyncio.Event(), asyncio.Event()

            async def held_commit() -> None:
                reached.set()
                await release.wait()
                await commit()

            old._producer.commit_transaction = held_commit  # type: ignore[method-assign]
            owned = [True]
            task = asyncio.create_task(old.write_batch([_event(topic, 1)], _no, lambda: owned[0]))
            await asyncio.wait_for(reached.wait(), 30)  # its records sent, its commit not yet
            owned[0] = False  # the partition moved to the new owner
            assert len(await asyncio.wait_for(new.write_batch([_event(topic, 1)], _no, _yes), 60)) == 1
            release.set()
            assert await asyncio.wait_for(task, 30) == []  # fenced: the batch is the new owner's
            assert await _dead_letter_keys(kafka) == [b"k0", b"k1"]
        finally:
            await old.stop()
            await new.stop()

    asyncio.run(scenario())


def _produce_never_answered(producer: Any) -> None:
    """Make the broker's answer to every produce request of `producer` never come (the request is
    not sent); its other requests (transaction, metadata) go on."""
    client = producer.client
    send = client.send

    async def send_or_hang(node_id: Any, request: Any, **kwargs: Any) -> Any:
        if type(request).__name__.startswith("ProduceRequest"):
            await asyncio.Event().wait()
        return await send(node_id, request, **kwargs)

    client.send = send_or_hang


def _commit_never_answered(producer: Any) -> None:
    async def never() -> None:
        await asyncio.Event().wait()

    producer.commit_transaction = never


@pytest.mark.parametrize("fault", [_commit_never_answered, _produce_never_answered])
def test_a_transaction_that_never_ends_is_given_up_and_the_batch_written_once(fault: Callable[[Any], None]):
    kafka = unique_kafka(partitions=1)
    ensure_topics(kafka)
    topic = kafka.topic_features

    async def scenario() -> None:
        writer = TransactionalWriter(kafka, f"writer-test-{topic}", DedupOptions(), transaction_seconds=2.0)
        try:
            assert len(await asyncio.wait_for(writer.write_batch([_event(topic, 0)], _no, _yes), 60)) == 1
            hung = writer._producer
            assert hung is not None
            fault(hung)
            written = await asyncio.wait_for(writer.write_batch([_event(topic, 1)], _no, _yes), 60)
            assert [d.outcome for d in written] == ["dead_letter"]
            assert await _dead_letter_keys(kafka) == [b"k0", b"k1"]
            # Nothing of the old producer runs on: its sender task ended, its connections closed.
            assert hung._sender.sender_task.done()
            assert not any(conn.connected() for conn in hung.client._conns.values())
        finally:
            await writer.stop()

    asyncio.run(scenario())


def test_a_producer_that_never_starts_is_given_up(monkeypatch: pytest.MonkeyPatch):
    """aiokafka asks for a producer id without end; the first producer's request is never answered."""
    kafka = unique_kafka(partitions=1)
    ensure_topics(kafka)
    topic = kafka.topic_features
    started: list[Any] = []

    class FirstNeverStarts(writer_module.AIOKafkaProducer):  # type: ignore[misc]
        async def start(self) -> None:
            started.append(self)
            if len(started) == 1:
                send = self.client.send

                async def send_or_hang(node_id: Any, request: Any, **kwargs: Any) -> Any:
                    if type(request).__name__.startswith("InitProducerId"):
                        await asyncio.Event().wait()
                    return await send(node_id, request, **kwargs)

                self.client.send = send_or_hang
            await super().start()

    monkeypatch.setattr(writer_module, "AIOKafkaProducer", FirstNeverStarts)

    async def scenario() -> None:
        writer = TransactionalWriter(kafka, f"writer-test-{topic}", DedupOptions(), transaction_seconds=2.0)
        try:
            written = await asyncio.wait_for(writer.write_batch([_event(topic, 0)], _no, _yes), 60)
            assert [d.outcome for d in written] == ["dead_letter"] and len(started) == 2
            assert await _dead_letter_keys(kafka) == [b"k0"]
            assert not any(conn.connected() for conn in started[0].client._conns.values())
        finally:
            await writer.stop()

    asyncio.run(scenario())


def test_a_desk_a_failed_decision_damaged_is_rebuilt_before_the_next_message_is_decided(
    monkeypatch: pytest.MonkeyPatch,
):
    kafka = unique_kafka(partitions=1)
    ensure_topics(kafka)
    topic = kafka.topic_features
    deciders: list[tuple[int, int]] = []  # (offset, id of the desk that decided it)
    decide = DedupDesk.decide

    def watched(desk: DedupDesk, message: bytes, origin: Any, key: bytes | None = None) -> Any:
        decision = decide(desk, message, origin, key)
        deciders.append((origin.offset, id(desk)))
        if origin.offset == 1:
            desk.damaged = True  # as `decide` leaves it when the index raised part-way
        return decision

    monkeypatch.setattr(DedupDesk, "decide", watched)

    async def scenario() -> None:
        writer = TransactionalWriter(kafka, f"writer-test-{topic}", DedupOptions())
        try:
            batch = [_event(topic, offset) for offset in range(3)]
            written = await asyncio.wait_for(writer.write_batch(batch, _no, _yes), 60)
            assert len(written) == 3
            # 0 and 1 by one desk, written; 2 by the desk rebuilt from what they wrote
            assert deciders[0][1] == deciders[1][1] != deciders[2][1] == id(writer.desk)
            assert [offset for offset, _ in deciders] == [0, 1, 2]
            assert not writer.desk.damaged
            assert set(writer.desk.rejected) == {("k0", 0), ("k1", 0), ("k2", 0)}
        finally:
            await writer.stop()

    asyncio.run(scenario())


def _two_writers(kafka: Any) -> tuple[TransactionalWriter, TransactionalWriter]:
    """Two workers' writers of one consumer group: one transactional id, one partition."""
    group = f"writer-test-{kafka.topic_features}"
    return TransactionalWriter(kafka, group, DedupOptions()), TransactionalWriter(
        kafka, group, DedupOptions()
    )


def test_given_back_its_partition_the_writer_keeps_its_desk_unless_another_wrote_meanwhile():
    """Every rebalance revokes the features partition and most give it back: a rebuild each time
    (about 20 s at a million articles) is needed only when another writer wrote since."""
    kafka = unique_kafka(partitions=1)
    ensure_topics(kafka)
    topic = kafka.topic_features

    async def scenario() -> None:
        first, other = _two_writers(kafka)
        try:
            assert len(await asyncio.wait_for(first.write_batch([_event(topic, 0)], _no, _yes), 60)) == 1
            desk = first.desk
            first.mark_stale()  # revoked, and given back: a new producer, the same desk
            assert len(await asyncio.wait_for(first.write_batch([_event(topic, 1)], _no, _yes), 60)) == 1
            assert first.desk is desk and first._producer is not None
            assert set(desk.rejected) == {("k0", 0), ("k1", 0)}

            # Another owner writes meanwhile: given back, the first rebuilds and knows its decision.
            first.mark_stale()
            assert len(await asyncio.wait_for(other.write_batch([_event(topic, 2)], _no, _yes), 60)) == 1
            assert len(await asyncio.wait_for(first.write_batch([_event(topic, 3)], _no, _yes), 60)) == 1
            assert first.desk is not desk
            assert set(first.desk.rejected) == {("k0", 0), ("k1", 0), ("k2", 0), ("k3", 0)}

            # A transaction that failed leaves a desk that is not kept, though nothing was written.
            desk = first.desk
            assert first._producer is not None
            _commit_never_answered(first._producer)
            first.transaction_seconds = 2.0
            assert len(await asyncio.wait_for(first.write_batch([_event(topic, 4)], _no, _yes), 60)) == 1
            assert first.desk is not desk
            assert await _dead_letter_keys(kafka) == [b"k0", b"k1", b"k2", b"k3", b"k4"]
        finally:
            await first.stop()
            await other.stop()

    asyncio.run(scenario())


def test_a_desk_rebuilt_while_another_owner_wrote_is_not_kept():
    """A worker whose group session lapsed hears of its revocation late: another owner may write
    while it rebuilds, and the rebuild may have read the topics before that write. Its desk is not
    vouched for, so given the partition back it rebuilds rather than keep a desk without them."""
    kafka = unique_kafka(partitions=1)
    ensure_topics(kafka)
    topic = kafka.topic_features

    async def scenario() -> None:
        first, other = _two_writers(kafka)
        rebuild = first._rebuild

        async def rebuild_then_another_writes() -> tuple[DedupDesk, str]:
            rebuilt = await rebuild()
            assert len(await other.write_batch([_event(topic, 1)], _no, _yes)) == 1
            return rebuilt

        try:
            assert len(await asyncio.wait_for(first.write_batch([_event(topic, 0)], _no, _yes), 60)) == 1
            first.mark_stale()
            first._desk_ends = None  # as after a failed write: the next ready rebuilds
            first._rebuild = rebuild_then_another_writes  # type: ignore[method-assign]
            await asyncio.wait_for(first._ready(), 60)
            assert set(first.desk.rejected) == {("k0", 0)} and first._desk_ends is None
            first._rebuild = rebuild  # type: ignore[method-assign]
            first.mark_stale()  # its revocation, heard late; then given back
            written = await asyncio.wait_for(first.write_batch([_event(topic, 1)], _no, _yes), 60)
            assert [d.outcome for d in written] == ["duplicate"]
            assert await _dead_letter_keys(kafka) == [b"k0", b"k1"]
        finally:
            await first.stop()
            await other.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize("given_back", [False, True])
def test_a_fenced_writer_starts_no_producer_until_a_rebalance_says_whose_the_partition_is(
    given_back: bool, caplog: pytest.LogCaptureFixture
):
    """A worker paused past its group session (a long GC, SIGSTOP, a frozen VM) still lists the
    features partition in its assignment when it resumes, until it rejoins. Fenced by the worker
    that took the partition over, it must not start a producer of its own at once: that fenced the
    rightful owner, which fenced it back, each rebuilding its desk every time (a tester saw five
    rebuilds in 2.5 s and 13 errors). It waits for the rebalance its rejoining starts."""
    kafka = unique_kafka(partitions=1)
    ensure_topics(kafka)
    topic = kafka.topic_features

    async def scenario() -> None:
        paused, owner = _two_writers(kafka)
        generation, owned = [1], [True]
        paused.generation = lambda: generation[0]
        try:
            assert len(await asyncio.wait_for(paused.write_batch([_event(topic, 0)], _no, _yes), 60)) == 1
            # While it was paused, the group gave the partition to another worker.
            assert len(await asyncio.wait_for(owner.write_batch([_event(topic, 1)], _no, _yes), 60)) == 1
            producer = owner._producer
            # Resumed, it tries its next batch, fenced, and waits.
            task = asyncio.create_task(paused.write_batch([_event(topic, 2)], _no, lambda: owned[0]))
            await asyncio.sleep(3)
            assert not task.done()
            written = await asyncio.wait_for(owner.write_batch([_event(topic, 3)], _no, _yes), 60)
            assert [d.outcome for d in written] == [
                "dead_letter"
            ] and owner._producer is producer  # not fenced
            generation[0], owned[0] = 2, given_back  # it rejoins: a rebalance
            written = await asyncio.wait_for(task, 30)
            assert [d.outcome for d in written] == (["dead_letter"] if given_back else [])
            expected = [b"k0", b"k1", b"k2", b"k3"] if given_back else [b"k0", b"k1", b"k3"]
            assert await _dead_letter_keys(kafka) == expected
        finally:
            await paused.stop()
            await owner.stop()

    asyncio.run(scenario())
    # The fenced producer's failure, met by the writer, is not logged again by asyncio for every
    # future aiokafka set it on (`writer._forget_transaction_error`).
    gc.collect()
    assert "never retrieved" not in caplog.text


def test_a_producer_start_that_outlasts_a_rebalance_holds_the_new_owner_once_and_briefly(
    monkeypatch: pytest.MonkeyPatch,
):
    """The last owner began starting its producer while it owned the partition; the start (which
    aiokafka retries without end) ends after the rebalance and the new owner's own start, fencing
    it. The last owner drops that producer and writes nothing; the new owner, fenced, waits at most
    `fenced_wait_seconds` for a rebalance that is not coming, then writes on."""
    kafka = unique_kafka(partitions=1)
    ensure_topics(kafka)
    topic = kafka.topic_features
    held: list[asyncio.Event] = []

    class SlowToStart(writer_module.AIOKafkaProducer):  # type: ignore[misc]
        async def start(self) -> None:
            if held:
                await held.pop().wait()
            await super().start()

    monkeypatch.setattr(writer_module, "AIOKafkaProducer", SlowToStart)

    async def scenario() -> None:
        last, new = _two_writers(kafka)
        generation, last_owns = [1], [True]
        last.generation = new.generation = lambda: generation[0]
        new.fenced_wait_seconds = 3.0
        gate = asyncio.Event()
        held.append(gate)
        try:
            late = asyncio.create_task(last.write_batch([_event(topic, 0)], _no, lambda: last_owns[0]))
            await asyncio.sleep(0.5)  # its producer starting
            generation[0], last_owns[0] = 2, False  # the rebalance: the partition is the new owner's
            last.mark_stale()
            assert len(await asyncio.wait_for(new.write_batch([_event(topic, 1)], _no, _yes), 60)) == 1
            gate.set()  # the last owner's start ends now, and fences the new owner's producer
            assert await asyncio.wait_for(late, 60) == [] and last._producer is None
            started = time.monotonic()
            written = await asyncio.wait_for(new.write_batch([_event(topic, 2)], _no, _yes), 60)
            waited = time.monotonic() - started
            # It waited out its bound (3 s) once, and wrote on.
            assert [d.outcome for d in written] == ["dead_letter"] and 2.5 <= waited < 10, waited
            # A revoked writer given a batch starts nothing at all.
            assert (
                await last.write_batch([_event(topic, 3)], _no, lambda: False) == []
                and last._producer is None
            )
            assert await _dead_letter_keys(kafka) == [b"k1", b"k2"]
        finally:
            await last.stop()
            await new.stop()

    asyncio.run(scenario())
