"""Reading the writer's compacted topics: once to the end (a rebuild) or following them (a replica).

The dedup writer rebuilds its desk from them at start; every clean stage follows the boilerplate
topic, so each worker cleans with what the writer learned from all workers' articles. Both read
committed records only: what an aborted transaction wrote is never seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from newsflow.settings import KafkaSettings
from newsflow.topics import committed_reader, topic_partitions

log = logging.getLogger("newsflow.replica")

Entry = tuple[bytes, bytes | None]
# Records a replica applies between two turns of the event loop.
MAX_RECORDS = 256


async def _assign_all(consumer: AIOKafkaConsumer, topic: str) -> dict[TopicPartition, int]:
    """Assign every partition of `topic` from its beginning; return each one's end offset now."""
    tps = await topic_partitions(consumer, topic)
    if not tps:
        raise LookupError(f"topic {topic!r} does not exist")
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    # For read_committed the end is the last stable offset: everything committed so far.
    ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    return ends


async def _at(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """Return whether the consumer's position has reached `ends` on every partition."""
    return all([await consumer.position(tp) >= end for tp, end in ends.items()])


async def restarting(
    step: Callable[[], Awaitable[None]],
    what: str,
    pause: float,
    on_failure: Callable[[], None] = lambda: None,
) -> None:
    """Run `step` until cancelled, starting it again `pause` seconds after it fails: for the
    worker's helpers beside its streams, whose failing is better than the worker stopping."""
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - see above
            on_failure()
            log.warning("%s failed; starting again in %gs", what, pause, exc_info=True)
            await asyncio.sleep(pause)


async def read_to_end(kafka: KafkaSettings, topic: str) -> list[Entry]:
    """Return a topic's committed records, up to its end when called, in order per partition; a
    record without a key is named by where it is ("@partition/offset"), so that two are not one."""
    consumer = committed_reader(kafka)
    try:
        await consumer.start()
        ends = await _assign_all(consumer, topic)
        entries: list[Entry] = []
        for tp, end in ends.items():
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                entries.extend(
                    (m.key if m.key is not None else f"@{m.partition}/{m.offset}".encode(), m.value)
                    for m in batch.get(tp, ())
                )
        return entries
    finally:
        await consumer.stop()


async def read_from(kafka: KafkaSettings, topic: str, offset: int) -> list[tuple[int, bytes, bytes | None]]:
    """Return (offset, key, value) of a one-partition topic's committed records from `offset` on."""
    consumer = committed_reader(kafka)
    try:
        await consumer.start()
        (tp,) = await topic_partitions(consumer, topic)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, offset)
        records: list[tuple[int, bytes, bytes | None]] = []
        while offset < end and await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            records.extend((m.offset, m.key or b"", m.value) for m in batch.get(tp, ()))
        return records
    finally:
        await consumer.stop()


async def committed_ends(kafka: KafkaSettings, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    """Return where the committed records of every partition of `topics` end now, by (topic,
    partition): the last stable offset, past which a read_committed consumer reads nothing yet."""
    consumer = committed_reader(kafka)
    try:
        await consumer.start()
        tps = [tp for topic in topics for tp in await topic_partitions(consumer, topic)]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): end for tp, end in ends.items()}
    finally:
        await consumer.stop()


class TopicReplica:
    """Follows a compacted topic from its beginning, handing every record to `apply`.

    `ready` is set once the records committed when it started have all been applied (a worker
    that starts cleaning earlier would clean with less than was learned). With `from_end`, it
    follows only what is written after it started (ready at once). `following` is told True
    each time it has caught up (after a start or a restart of its reader), and False when its
    reader fails (a missing topic, an authorization error); a broker outage does not fail the
    reader, which waits for the broker to come back.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        apply: Callable[[bytes, bytes | None], None],
        from_end: bool = False,
        following: Callable[[bool], None] = lambda _: None,
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.apply = apply
        self.from_end = from_end
        self.following = following
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Follow the topic until cancelled; reconnect after an error."""
        await restarting(self._follow, f"following {self.topic}", 2.0, lambda: self.following(False))

    async def _follow(self) -> None:
        consumer = committed_reader(self.kafka)
        try:
            await consumer.start()
            ends = await _assign_all(consumer, self.topic)
            if self.from_end:
                await consumer.seek_to_end(*ends)
            caught_up = False
            while True:
                if not self.ready.is_set() and await _at(consumer, ends):
                    self.ready.set()
                # A bounded batch: records are applied on the event loop, which the stages share.
                batches = await consumer.getmany(timeout_ms=1000, max_records=MAX_RECORDS)
                for records in batches.values():
                    for m in records:
                        self.apply(m.key or b"", m.value)
                # Told after a fetch went through: a reader that can list offsets but not fetch
                # never reports itself following.
                if not caught_up and await _at(consumer, ends):
                    caught_up = True
                    self.ready.set()
                    self.following(True)
        finally:
            await consumer.stop()

    @contextlib.asynccontextmanager
    async def running(self, wait_seconds: float) -> AsyncIterator[None]:
        """Follow the topic while in the block; wait up to `wait_seconds` for `ready` on entry."""
        task = asyncio.ensure_future(self.run())
        try:
            if wait_seconds > 0:
                try:
                    await asyncio.wait_for(self.ready.wait(), wait_seconds)
                except TimeoutError:
                    log.warning("%s not read to its end within %gs; going on", self.topic, wait_seconds)
            yield
        finally:
            task.cancel()
            await asyncio.wait([task])  # a cancel of this task itself still goes through
            self.following(False)
