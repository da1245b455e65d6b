"""After a rebalance, partitions without a committed offset are read again from their start.

This is the fix in newsflow.worker.transport, checked on the real broker: aiokafka's own
`seek_to_committed` leaves such a partition where the consumer had got to, so records Faust
dropped during the rebalance would never be read.
"""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from newsflow.worker.transport import seek_to_committed_or_beginning
from tests.integration.kafka_helpers import ensure_topics, send_raw, unique_kafka


async def _read_to_end(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int) -> None:
    for _ in range(40):
        if await consumer.position(tp) >= end:
            return
        await consumer.getmany(tp, timeout_ms=250)
    raise AssertionError(f"could not read {tp} to offset {end}")


def test_uncommitted_partitions_rewind_to_their_start_and_committed_ones_to_the_commit():
    kafka = unique_kafka(partitions=1)
    ensure_topics(kafka)
    send_raw(kafka, [(b"k", f"message {i}".encode(), []) for i in range(3)])
    tp = TopicPartition(kafka.topic_raw, 0)

    async def run() -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap,
            group_id=f"rewind-{uuid.uuid4().hex[:8]}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            await _read_to_end(consumer, tp, 3)

            # The upstream behaviour the fix is for: no commit, so no seek.
            await consumer.seek_to_committed()
            assert await consumer.position(tp) == 3

            committed = await seek_to_committed_or_beginning(consumer)
            assert committed[tp] is None
            assert await consumer.position(tp) == 0

            await consumer.commit({tp: OffsetAndMetadata(2, "")})
            await _read_to_end(consumer, tp, 3)
            await seek_to_committed_or_beginning(consumer)
            assert await consumer.position(tp) == 2
        finally:
            await consumer.stop()

    asyncio.run(run())
