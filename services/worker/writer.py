"""The single writer's Kafka side: the desk's records and input offsets in one Kafka transaction.

Each batch of features messages becomes one transaction holding the enriched records, dead
letters, story updates, the desk's own state changes, and the features offsets after the batch.
A consumer reading with `isolation.level=read_committed` sees all of a batch or none of it.

A worker killed mid-batch leaves an open transaction. Whoever takes the features partition next
(the same worker restarted, or another) starts a producer with the same transactional id, which
makes the broker abort it at once and fences the old producer out; it then rebuilds the desk from
the state topic, read committed, and the consumer resumes from the committed offsets. Messages
the desk already wrote out are recognised and yield nothing (see pipeline/desk.py).

Faust never commits the features offsets itself (transport.py leaves them to this writer): it
acknowledges a batch even when its processing failed, so its commit could skip articles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced

from newsflow.pipeline.dedup import DedupOptions
from newsflow.pipeline.desk import DEAD_LETTER, ENRICHED, STATE, STORIES, Decision, DedupDesk, Output
from newsflow.pipeline.records import Origin
from newsflow.settings import KafkaSettings

log = logging.getLogger("newsflow.writer")

# How long a stopping writer tries to abort its open transaction.
ABORT_ON_STOP_SECONDS = 2.0
# Between attempts at a batch the broker could not take (an outage, a rebalance).
RETRY_PAUSE_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)


class Fenced(Exception):
    """Another writer took over the features partition; this one must stop writing."""


class TransactionalWriter:
    """Decides batches with a `DedupDesk` and writes each as one transaction."""

    def __init__(
        self,
        kafka: KafkaSettings,
        group_id: str,
        options: DedupOptions,
        on_rebuilt: Callable[[DedupDesk, float], None] | None = None,
    ) -> None:
        self.kafka = kafka
        self.group_id = group_id
        self.options = options
        self.transactional_id = f"{group_id}-dedup-writer"
        self.desk = DedupDesk(options)
        self._producer: AIOKafkaProducer | None = None
        self._stale = True
        self._on_rebuilt = on_rebuilt
        self._topics = {
            ENRICHED: kafka.topic_enriched,
            STORIES: kafka.topic_stories,
            DEAD_LETTER: kafka.topic_dead_letter,
            STATE: kafka.topic_dedup_state,
        }

    def mark_stale(self) -> None:
        """Rebuild before the next batch (the partition moved, or a batch failed half-way)."""
        self._stale = True

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def _ready(self) -> None:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.kafka.bootstrap,
                transactional_id=self.transactional_id,
                enable_idempotence=True,
                acks="all",
                max_request_size=self.kafka.max_message_bytes,
                linger_ms=5,
            )
            # Starting it fences any earlier producer with this id and aborts its open transaction.
            await producer.start()
            self._producer = producer
            self._stale = True
        if self._stale:
            started = time.monotonic()
            self.desk = DedupDesk.from_state(await self._read_state(), self.options)
            self._stale = False
            seconds = time.monotonic() - started
            log.info(
                "dedup desk rebuilt from %s in %.1fs: %d articles, %d stories, %d dead letters",
                self.kafka.topic_dedup_state,
                seconds,
                len(self.desk.index),
                len(self.desk.index.stories),
                len(self.desk.rejected),
            )
            if self._on_rebuilt is not None:
                self._on_rebuilt(self.desk, seconds)

    async def _read_state(self) -> list[tuple[bytes, bytes | None]]:
        """Return the state topic's committed records up to its end, in order."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.kafka.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_partition_fetch_bytes=self.kafka.max_message_bytes,
        )
        await consumer.start()
        try:
            tp = TopicPartition(self.kafka.topic_dedup_state, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            # For read_committed the end is the last stable offset: no open transaction is left
            # once our producer has started, so this is everything committed.
            end = (await consumer.end_offsets([tp]))[tp]
            entries: list[tuple[bytes, bytes | None]] = []
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                entries.extend((m.key or b"", m.value) for m in batch.get(tp, ()))
            return entries
        finally:
            await consumer.stop()

    async def write_batch(self, events: Sequence[Any], should_stop: Callable[[], bool]) -> list[Decision]:
        """Decide and write a batch of features events; retry until written or told to stop.

        Returns the decisions written ([] when stopped first). Raises Fenced when another writer
        owns the partition now.
        """
        attempt = 0
        while True:
            try:
                await self._ready()
                return await self._write_once(events)
            except ProducerFenced as exc:
                await self._drop_producer()
                raise Fenced(str(exc)) from exc
            except (TimeoutError, KafkaError, OSError) as exc:
                # The desk may hold decisions that were not written: rebuild from what was.
                self._stale = True
                await self._drop_producer()
                if should_stop():
                    return []
                pause = RETRY_PAUSE_SECONDS[min(attempt, len(RETRY_PAUSE_SECONDS) - 1)]
                log.warning("writing a batch of %d failed (%r); retrying in %.1fs", len(events), exc, pause)
                attempt += 1
                await asyncio.sleep(pause)

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception:  # noqa: BLE001 - it is being thrown away
                log.debug("stopping a failed producer failed", exc_info=True)

    async def _write_once(self, events: Sequence[Any]) -> list[Decision]:
        assert self._producer is not None
        producer = self._producer
        decisions = []
        offsets: dict[TopicPartition, int] = {}
        for event in events:
            msg = event.message
            decisions.append(
                self.desk.decide(event.value or b"", Origin(msg.topic, msg.partition, msg.offset), event.key)
            )
            tp = TopicPartition(msg.topic, msg.partition)
            offsets[tp] = max(offsets.get(tp, 0), msg.offset + 1)
        try:
            await producer.begin_transaction()
            for decision in decisions:
                for output in decision.outputs:
                    await self._send(producer, output)
            await producer.send_offsets_to_transaction(offsets, self.group_id)
            await producer.commit_transaction()
        except asyncio.CancelledError:
            # A stop: end the transaction now rather than leave read_committed consumers waiting
            # for its timeout (or for the next owner's producer to abort it).
            self._stale = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.abort_transaction(), ABORT_ON_STOP_SECONDS)
            raise
        except BaseException:
            self._stale = True
            raise
        return decisions

    async def _send(self, producer: AIOKafkaProducer, output: Output) -> None:
        # Not awaited one by one: the transaction's commit waits for every send.
        await producer.send(self._topics[output.destination], output.value, key=output.key)
