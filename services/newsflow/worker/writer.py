"""The single writer's Kafka side: the desk's records and input offsets in one Kafka transaction.

Each batch of features messages becomes one transaction holding the enriched records, dead
letters, story updates, the desk's own state changes, the outlets' boilerplate it learned, and the
features offsets after the batch.
A consumer reading with `isolation.level=read_committed` sees all of a batch or none of it.

A worker killed mid-batch leaves an open transaction. Whoever takes the features partition next
(the same worker restarted, or another) starts a producer with the same transactional id, which
makes the broker abort it at once and fences the old producer out; it then rebuilds the desk from
the state topic, read committed, and the consumer resumes from the committed offsets. Messages
the desk already wrote out are recognised and yield nothing (see pipeline/desk.py).

A worker given the partition back (every rebalance revokes all partitions, and most give them
back) keeps its desk when nothing was written to the state and boilerplate topics since its own
last transaction: the check is of their committed ends, once its new producer has fenced every
other. Any other writer's transaction, committed or aborted, moves an end, and a desk whose last
write failed or was left unfinished is not kept at all.

Faust never commits the features offsets itself (transport.py leaves them to this writer): it
acknowledges a batch even when its processing failed, so its commit could skip articles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced

from newsflow.pipeline.dedup import DedupOptions
from newsflow.pipeline.desk import BOILERPLATE, DEAD_LETTER, ENRICHED, STATE, STORIES, Decision, DedupDesk
from newsflow.pipeline.records import Origin
from newsflow.settings import KafkaSettings, client_options
from newsflow.worker.replica import committed_ends, read_from, read_to_end
from newsflow.worker.snapshot import Snapshots, marker_key

log = logging.getLogger("newsflow.writer")
T = TypeVar("T")

# How long a stopping writer tries to abort its open transaction, and to stop its producer.
ABORT_ON_STOP_SECONDS = 2.0
STOP_SECONDS = 3.0
# Then to end what a stop cut short left running (a task to cancel, sockets to close): all of a
# writer's stop stays within the worker's stop budget (NEWSFLOW_WORKER_STOP_SECONDS, 8 s).
ABANDON_SECONDS = 1.0
# The longest a transaction may take, from its first send to its commit, and its producer to
# start. The broker aborts a transaction open longer (the producer's transaction timeout is set to
# this), so the writer stops waiting then too: it drops the producer and writes the batch again
# with a new one, which fences the old. A transaction takes milliseconds; this bounds what nothing
# else would (a client or broker fault that leaves a request unanswered), which would otherwise
# stop every output.
TRANSACTION_SECONDS = 60.0
# Between attempts at a batch the broker could not take (an outage, a rebalance).
RETRY_PAUSE_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
# A fenced writer starts no new producer before a rebalance has said who owns the partition (a
# new group generation), or this long at the most: the group session (the worker sets it), within
# which a worker that lost the partition unawares (paused past its session) has heard so at its
# next heartbeat.
FENCED_WAIT_SECONDS = 10.0


async def stop_quietly(producer: AIOKafkaProducer, seconds: float = STOP_SECONDS) -> None:
    """Stop a producer being thrown away, waiting at most `seconds` (a stop flushes, which can
    wait on the broker, or for ever on a send no one answers: a transactional batch never expires)
    and ABANDON_SECONDS twice more to end what that leaves running."""
    try:
        async with asyncio.timeout(seconds):
            await producer.stop()
    except TimeoutError:
        log.warning("a dropped producer did not stop in %.1fs; ending its sender and connections", seconds)
        await _end_abandoned(producer)
    except Exception:  # noqa: BLE001 - it is being thrown away
        log.debug("stopping a dropped producer failed", exc_info=True)
    finally:
        _forget_transaction_error(producer)


def _forget_transaction_error(producer: AIOKafkaProducer) -> None:
    """Mark a dropped producer's failure as seen: the writer met it already (its send or commit
    failed with it). aiokafka also sets it on futures that nothing awaits once its sender has
    stopped (each batch's drain waiter, the transaction's waiter), and asyncio logs each with its
    traceback when it is collected ("Future exception was never retrieved": a fenced writer logged
    a dozen). Formatting that traceback in a collection that interrupted another parse of Python
    source also trips CPython 3.11's "AST constructor recursion depth mismatch" in that parse."""
    accumulator = getattr(producer, "_message_accumulator", None)
    batches = [b for queue in getattr(accumulator, "_batches", {}).values() for b in queue]
    batches += list(getattr(accumulator, "_pending_batches", ()))
    waiters = [getattr(batch, "_drain_waiter", None) for batch in batches]
    waiters += [future for batch in batches for future, _ in getattr(batch, "_msg_futures", ())]
    waiters.append(getattr(getattr(producer, "_txn_manager", None), "_transaction_waiter", None))
    for waiter in waiters:
        if isinstance(waiter, asyncio.Future) and waiter.done() and not waiter.cancelled():
            waiter.exception()


async def _end_abandoned(producer: AIOKafkaProducer) -> None:
    """End what a cut-short stop() leaves running: it marks the producer closed before it flushes,
    so nothing would ever end its sender task, the batches it still holds (and the flush waiting
    on them) or its connections. aiokafka 0.14 has no public call for that: its sender ends
    quietly when cancelled, so the batches are failed here, which ends the flush and answers
    every send still waiting."""
    sender = getattr(producer, "_sender", None)
    endings = [sender.close] if sender is not None else []
    for end in [*endings, producer.client.close]:
        try:
            async with asyncio.timeout(ABANDON_SECONDS):
                await end()
        except Exception:  # noqa: BLE001 - it is being thrown away
            log.debug("ending an abandoned producer failed", exc_info=True)
    accumulator = getattr(producer, "_message_accumulator", None)
    if accumulator is not None:
        accumulator.fail_all(KafkaError("the producer was abandoned at a stop"))


def _ends_after(
    ends: dict[tuple[str, int], int], written: Sequence[Any], topics: set[str]
) -> dict[tuple[str, int], int]:
    """Return where `topics`' committed records end after a committed transaction whose records'
    metadata is `written`, when nothing else wrote beside it: past its last record there, and past
    the commit marker after that, which takes an offset too."""
    after = dict(ends)
    for meta in written:
        if meta.topic in topics:
            tp = (meta.topic, meta.partition)
            after[tp] = max(after.get(tp, 0), meta.offset + 2)
    return after


class Revoked(RuntimeError):
    """The features partition was revoked while the writer readied itself: what it readied is not
    this worker's to use."""


class TransactionalWriter:
    """Decides batches with a `DedupDesk` and writes each as one transaction."""

    def __init__(
        self,
        kafka: KafkaSettings,
        group_id: str,
        options: DedupOptions,
        on_rebuilt: Callable[[DedupDesk, float | None], None] | None = None,
        max_payload_bytes: int = 1 << 20,
        snapshots: Snapshots | None = None,
        transaction_seconds: float = TRANSACTION_SECONDS,
    ) -> None:
        self.kafka = kafka
        self.transaction_seconds = transaction_seconds
        self.group_id = group_id
        self.options = options
        self.transactional_id = f"{group_id}-dedup-writer"
        self.max_payload_bytes = max_payload_bytes
        self.desk = DedupDesk(options, max_payload_bytes)
        self._producer: AIOKafkaProducer | None = None
        self._stale = True
        # Where the state and boilerplate topics' committed records ended when the desk was last
        # what they say (after a rebuild or a transaction of its own); None while it may not be.
        self._desk_ends: dict[tuple[str, int], int] | None = None
        # Counts `mark_stale` calls: one during a producer's start or a rebuild voids them (`Revoked`).
        self._revocations = 0
        self._stopping = False
        self._preparing: asyncio.Future[None] | None = None
        self._stopping_producers: set[asyncio.Future[None]] = set()  # dropped by `_let_go`
        self.writing = False  # a transaction is open
        self._retire = False  # drop the producer once the open transaction ends
        self.on_rebuilt = on_rebuilt
        # The consumer group generation of the worker's last assignment (the app sets it; None:
        # unknown, as outside a worker).
        self.generation: Callable[[], int | None] = lambda: None
        self._producer_generation: int | None = None  # the generation its producer started in
        self.fenced_wait_seconds = FENCED_WAIT_SECONDS
        # Held while readying and writing a batch: a rebuild begun when the partition came
        # (`prepare`) neither runs beside a batch nor swaps the desk under one.
        self._readying = asyncio.Lock()
        self.snapshots = snapshots or Snapshots(None, 0, kafka.topic_dedup_state)
        self._topics = {
            ENRICHED: kafka.topic_enriched,
            STORIES: kafka.topic_stories,
            DEAD_LETTER: kafka.topic_dead_letter,
            STATE: kafka.topic_dedup_state,
            BOILERPLATE: kafka.topic_boilerplate,
        }

    def mark_stale(self) -> None:
        """Start afresh before the next batch: the features partition moved (or may have).

        A new producer per ownership: one fenced while another worker had the partition is useless.
        """
        self._revocations += 1
        self._stale = True
        if self.writing:
            # Not under an open transaction: aiokafka resolves its sends and commit from the sender
            # task that stop() ends, so they would wait for ever and the writer with them. The
            # write ends first (committed, or fenced by the partition's new owner: exactly once
            # either way) and its producer is dropped after it.
            self._retire = True
            return
        self._let_go()

    def _let_go(self) -> None:
        """Stop the producer in the background (a stop flushes, which can wait on the broker)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            stopping = asyncio.ensure_future(stop_quietly(producer))
            # The loop keeps only a weak reference to a task: this one is kept until it ends.
            self._stopping_producers.add(stopping)
            stopping.add_done_callback(self._stopping_producers.discard)

    async def stop(self) -> None:
        """Stop the producer, waiting at most STOP_SECONDS for what it still has to send (and
        ABANDON_SECONDS twice more to end what that leaves running), and as long for those
        dropped before (`_let_go`) to have stopped."""
        self._stopping = True
        if self._preparing is not None:
            self._preparing.cancel()
        await self._drop_producer()
        if self._stopping_producers:  # dropped earlier, still stopping (each within this bound)
            await asyncio.wait(self._stopping_producers, timeout=STOP_SECONDS + 2 * ABANDON_SECONDS)

    def prepare_soon(self, should_stop: Callable[[], bool], owns: Callable[[], bool]) -> None:
        """Start the producer and rebuild the desk now, in the background, not at the first batch:
        called when this worker is given the features partition, so that the index's gauges say
        what it holds, and its first input after a restart waits for no rebuild."""
        if self._preparing is None or self._preparing.done():
            self._preparing = asyncio.ensure_future(self.prepare(should_stop, owns))

    async def prepare(self, should_stop: Callable[[], bool], owns: Callable[[], bool]) -> None:
        """Ready the writer (`prepare_soon`) while this worker owns the features partition, again if
        it was revoked and given back meanwhile. A failure is left for the first batch to meet
        again (and retry)."""
        try:
            async with self._readying:
                while (
                    not (should_stop() or self._stopping)
                    and owns()
                    and (self._stale or self._producer is None)
                ):
                    try:
                        await self._ready()
                    except Revoked:
                        continue  # and given back, if it still owns it
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - Kafka and aiokafka's errors alike: write_batch retries
            self._stale = True
            log.info("the dedup desk will be rebuilt at the first batch (%r)", exc)

    async def _ready(self) -> None:
        seen, generation = self._revocations, self.generation()
        if self._producer is None:
            producer = AIOKafkaProducer(
                **client_options(self.kafka),
                transactional_id=self.transactional_id,
                enable_idempotence=True,
                acks="all",
                max_request_size=self.kafka.max_message_bytes,
                linger_ms=5,
                transaction_timeout_ms=int(self.transaction_seconds * 1000),
            )
            # Starting it fences any earlier producer with this id and aborts its open transaction.
            # It waits for the broker's producer id, which aiokafka asks for again without end.
            try:
                await self._within("starting the transactional producer", producer.start())
            except BaseException:
                await stop_quietly(producer)
                raise
            if self._revocations != seen or self._stopping or self.generation() != generation:
                # Revoked (or stopping, or a rebalance came and went) while it started: not this
                # ownership's producer.
                await stop_quietly(producer)
                raise Revoked("the features partition was revoked while the producer started")
            self._producer = producer
            self._producer_generation = generation
            self._stale = True
        if self._stale:
            started = time.monotonic()
            self._stale = False  # a revocation during the rebuild sets it again
            try:
                # One read of the topics' ends serves both: the check, and what a rebuild starts from.
                before = await self._ends()
                kept = before == self._desk_ends
                if not kept:
                    self._desk_ends = None
                    self.snapshots.abandon()
                    self.desk, source = await self._rebuild()
                    # Vouched for only if nothing was written while it rebuilt: a worker whose group
                    # session lapsed may not hear of a revocation until another owner has written.
                    vouched = before if await self._ends() == before else None
            except BaseException:
                self._stale = True
                raise
            if self._revocations != seen or self._producer is None:
                # Revoked while rebuilding: write_batch checks who owns the partition, then retries.
                self._stale = True
                raise Revoked("the features partition was revoked during the desk's rebuild")
            if not kept:
                # Where the topics the desk was rebuilt from end (or None: they moved meanwhile).
                self._desk_ends = vouched
            seconds = time.monotonic() - started
            log.info(
                "dedup desk %s in %.1fs: %d articles, %d stories, %d dead letters",
                "kept (nothing written since its last transaction)" if kept else f"rebuilt from {source}",
                seconds,
                len(self.desk.index),
                len(self.desk.index.stories),
                len(self.desk.rejected),
            )
            if self.on_rebuilt is not None:  # with the rebuild's time (None: kept)
                self.on_rebuilt(self.desk, None if kept else seconds)

    async def _ends(self) -> dict[tuple[str, int], int]:
        return await committed_ends(self.kafka, [self.kafka.topic_dedup_state, self.kafka.topic_boilerplate])

    async def _rebuild(self) -> tuple[DedupDesk, str]:
        """Return the desk as the committed state says, from the latest snapshot when it can be used.

        The CPU-heavy part runs in a thread: the event loop keeps the group's heartbeats going.
        """
        topic = self.kafka.topic_dedup_state
        boilerplate = await read_to_end(self.kafka, self.kafka.topic_boilerplate)
        loaded = await asyncio.to_thread(self.snapshots.load)
        if loaded is not None:
            records = await read_from(self.kafka, topic, loaded.marker_offset)
            if records[:1] and records[0][:2] == (loaded.marker_offset, marker_key(loaded.snapshot_id)):
                try:
                    desk = DedupDesk.from_snapshot(
                        loaded.desk_state, self.options, self.max_payload_bytes, boilerplate
                    )
                except ValueError as exc:
                    log.info("dedup snapshot not used (%s); replaying %s", exc, topic)
                else:
                    tail = [(key, value) for offset, key, value in records if offset >= loaded.position]
                    await asyncio.to_thread(desk.replay, tail)
                    self.snapshots.on_event("loaded")
                    return desk, f"a snapshot and {len(tail)} records of {topic} after it"
            else:
                log.info("dedup snapshot is not of this %s (its marker is not there); replaying", topic)
            self.snapshots.on_event("not_used")
        entries = await read_to_end(self.kafka, topic)
        desk = await asyncio.to_thread(
            DedupDesk.from_state, entries, self.options, self.max_payload_bytes, boilerplate
        )
        return desk, topic

    async def write_batch(
        self, events: Sequence[Any], should_stop: Callable[[], bool], owns: Callable[[], bool]
    ) -> list[Decision]:
        """Decide and write a batch of features events; retry until written, stopped or disowned.

        Returns the decisions written, or those of the part written when the worker is stopping
        or no longer owns the features partition: the rest's offsets are then still uncommitted,
        and whoever owns the partition reads them again. A fenced producer (another worker took
        the partition, or had it for a while) is replaced by a new one, which fences the other in
        turn, only once a rebalance since has given this worker the partition (`_reassigned`). A
        decision that damaged the desk ends a transaction early: the desk is rebuilt from what was
        written before the rest of the batch is decided.
        """
        attempt = 0
        written: list[Decision] = []

        def stopped() -> bool:  # a stopped writer writes no more, whoever still calls it
            return should_stop() or self._stopping

        while not self._stopping:
            if not owns():  # (a revocation during the pause before a retry)
                return written
            try:
                async with self._readying:
                    if not owns():  # revoked while it waited for the lock (a rebuild held it)
                        return written
                    await self._ready()
                    self.writing = True
                    try:
                        written += await self._write_once(events[len(written) :])
                        if len(written) == len(events) or stopped() or not owns():
                            return written  # the rest, if any, is its owner's to read again
                    finally:
                        self.writing = False
                        if self._retire:
                            self._retire = False
                            self._let_go()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Kafka and aiokafka's transaction-state errors alike
                fenced_in = self._producer_generation
                # The desk may hold decisions that were not written: rebuild from what was.
                self._stale = True
                await self._drop_producer()
                if stopped() or not owns():
                    log.warning(
                        "%d of a batch of %d not written (%r); left to the partition's owner",
                        len(events) - len(written),
                        len(events),
                        exc,
                    )
                    return written
                pause = RETRY_PAUSE_SECONDS[min(attempt, len(RETRY_PAUSE_SECONDS) - 1)]
                kind = "fenced" if isinstance(exc, ProducerFenced) else "failed"
                log.warning("writing a batch of %d %s (%r); retrying in %.1fs", len(events), kind, exc, pause)
                attempt += 1
                await asyncio.sleep(pause)
                if isinstance(exc, ProducerFenced) and not await self._reassigned(fenced_in, stopped, owns):
                    return written
        return written

    async def _reassigned(
        self, generation: int | None, stopped: Callable[[], bool], owns: Callable[[], bool]
    ) -> bool:
        """After a fence of the producer started in `generation`: return whether to write again,
        once a rebalance since has given this worker the partition (a later group generation), or
        after `fenced_wait_seconds` without one and without a revocation.

        Another worker started this writer's producer, so it believes it owns the partition. This
        one may be the worker that no longer does and has not heard yet (its group session lapsed
        while it was paused: its assignment still lists the partition until it rejoins); a new
        producer of its own would fence the rightful owner, and the two would take the partition
        from each other, rebuilding each time. The rebalance its rejoining starts settles it. Or it
        is the owner, fenced by a producer the last owner began to start before the rebalance and
        that started only after it: it then waits out the bound once (the last owner, no longer
        one, drops that producer and starts no other).
        """
        if generation is not None:
            deadline = time.monotonic() + self.fenced_wait_seconds
            while (
                self.generation() == generation and owns() and not stopped() and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.1)
        if stopped() or not owns():
            log.info("fenced, and the features partition is another worker's now")
            return False
        return True

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await stop_quietly(producer)

    async def _write_once(self, events: Sequence[Any]) -> list[Decision]:
        assert self._producer is not None
        producer = self._producer
        # Until this transaction is committed, the desk is ahead of the topics.
        ends, self._desk_ends = self._desk_ends, None
        decisions = []
        offsets: dict[TopicPartition, int] = {}
        for event in events:
            msg = event.message
            decisions.append(
                self.desk.decide(event.value or b"", Origin(msg.topic, msg.partition, msg.offset), event.key)
            )
            tp = TopicPartition(msg.topic, msg.partition)
            offsets[tp] = max(offsets.get(tp, 0), msg.offset + 1)
            if self.desk.damaged:
                break  # this far, then the rest on a desk rebuilt from what was written
        # A damaged desk is not snapshotted (it is rebuilt): no marker for a snapshot never taken.
        markers = [] if self.desk.damaged else self.snapshots.markers()
        records = [o for decision in decisions for o in decision.outputs] + self.desk.learned() + markers
        try:
            written = await self._within("the transaction", self._transaction(producer, records, offsets))
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
        if self.desk.damaged:
            self._stale = True  # rebuilt (`_ready`) before anything else is decided
            return decisions
        if ends is not None:
            self._desk_ends = _ends_after(ends, written, {self._topics[STATE], self._topics[BOILERPLATE]})
        if markers:
            # The desk now is what the state topic says up to this transaction's last record.
            state = [meta.offset for o, meta in zip(records, written, strict=True) if o.destination == STATE]
            try:
                self.snapshots.take(self.desk, written[len(records) - len(markers)].offset, max(state) + 1)
            except Exception:  # noqa: BLE001 - the batch is committed: a snapshot missed is only a slower restart
                log.exception("taking a dedup snapshot failed")
                self.snapshots.on_event("write_failed")
        return decisions

    async def _within(self, what: str, call: Awaitable[T]) -> T:
        """Await `call` for at most `transaction_seconds`; a TimeoutError says what took too long.

        asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a stop's cancellation
        that comes as the awaited call ends.
        """
        try:
            async with asyncio.timeout(self.transaction_seconds):
                return await call
        except TimeoutError as exc:
            raise TimeoutError(f"{what} did not end in {self.transaction_seconds:g}s") from exc

    async def _transaction(
        self, producer: AIOKafkaProducer, records: Sequence[Any], offsets: dict[TopicPartition, int]
    ) -> list[Any]:
        """Write records and input offsets as one transaction; return the records' metadata."""
        await producer.begin_transaction()
        sent = [
            await producer.send(self._topics[o.destination], o.value, key=o.key, headers=list(o.headers))
            for o in records
        ]
        # aiokafka commits a transaction once its batches are done, failed or not: every
        # record must be confirmed first, or a failed one would be committed as written.
        written = list(await asyncio.gather(*sent))
        await producer.send_offsets_to_transaction(offsets, self.group_id)
        await producer.commit_transaction()
        return written
