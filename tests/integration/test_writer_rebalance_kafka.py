"""The dedup writer when its partition is revoked while a transaction is in flight.

A rebalance calls `TransactionalWriter.mark_stale` from Faust's callback while the writer's agent
may be inside `write_batch`. Stopping the producer under an open transaction left its sends and
commit waiting for ever (aiokafka resolves them from the sender task that stop() ends): the
writer, and with it every output, stopped for good (seen once in CI: two workers, a rebalance
just after the writer's first rebuild, no record in four minutes). On the real broker.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from newsflow.pipeline.options import DedupOptions
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
