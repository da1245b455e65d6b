"""Sharing the NER spans and embeddings a worker computes with the other workers.

News repeats itself across outlets, and a wire story's copies land on the partitions, so the
workers, of all of them: each worker publishes what it computed to an internal topic and keeps
what the others computed in its recent results (pipeline/recent.py), so a repeated text is
computed about once per fleet. It is a cache: nothing waits for it, and every result lost on
the way is counted (`newsflow_recent_shared_total`), then computed again where it is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from newsflow.pipeline.enrich import Enricher
from newsflow.settings import KafkaSettings, client_options
from newsflow.worker.metrics import WorkerMetrics
from newsflow.worker.replica import TopicReplica, restarting
from newsflow.worker.writer import stop_quietly

log = logging.getLogger("newsflow.worker")

# Results waiting to be shared (SharedResults): some 30 batches' worth, 1-2 MB of typical ones.
SHARED_OUTBOX = 1024
# The longest a shared result's send, or the metadata it needs, is waited for.
SHARED_SEND_SECONDS = 5.0
# At start, the longest wait until the other workers' results are followed.
SHARED_FOLLOW_SECONDS = 10.0
# At a stop, the longest wait for the producer of shared results (it is not flushed).
SHARED_STOP_SECONDS = 0.5


def shared_results_producer(kafka: KafkaSettings) -> AIOKafkaProducer:
    """Return an unstarted producer for SharedResults: its own, not Faust's, which flushes before
    every offset commit and rebalance (a send stuck there would hold those up), with every wait
    short (a result not sent in seconds is cheaper to compute again)."""
    return AIOKafkaProducer(
        **client_options(kafka),
        acks=1,
        linger_ms=20,
        request_timeout_ms=int(SHARED_SEND_SECONDS * 1000),
        max_request_size=kafka.max_message_bytes,
        client_id="newsflow-shared-results",
    )


class SharedResults:
    """Publishes the NER spans and embeddings this worker computed and adopts the other workers'
    (pipeline/recent.py): a wire story carried by several outlets is computed once, not once per
    worker its copies land on. A cache: a result lost on the way costs only computing it again,
    so nothing waits for it. `offer` puts the batch's results in a bounded outbox, dropping (and
    counting) what does not fit; a task sends them with a producer of its own; a failed send is
    counted, not retried, and what is unsent or unanswered at a stop is counted as dropped."""

    def __init__(
        self,
        topic: str,
        producer_of: Callable[[], Any],
        replica_of: Callable[..., TopicReplica],
        enricher: Enricher,
        metrics: WorkerMetrics,
        outbox: int = SHARED_OUTBOX,
    ) -> None:
        self.topic = topic
        self.producer_of = producer_of
        self.enricher = enricher
        self.metrics = metrics
        self.replica = replica_of(self._adopt)
        self.outbox: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue(outbox)
        self._pending: set[asyncio.Future[Any]] = set()  # sent, not yet answered
        self.restart_seconds = 5.0  # after the producer failed
        self._failing = False

    def offer(self) -> None:
        """Queue what the enricher computed since the last call; never waits."""
        for result in self.enricher.fresh_results():
            try:
                self.outbox.put_nowait(result)
            except asyncio.QueueFull:  # the sends are stuck or slow: these get computed again
                self._count_dropped(1)

    @contextlib.asynccontextmanager
    async def running(self, wait_seconds: float = SHARED_FOLLOW_SECONDS) -> AsyncIterator[None]:
        """Send and adopt while in the block. On entry, wait up to `wait_seconds` until the
        others' results are followed (from the topic's end: nothing to catch up on)."""
        sender = asyncio.ensure_future(
            restarting(self._send_all, "sharing recent results", self.restart_seconds)
        )
        try:
            async with self.replica.running(wait_seconds):
                yield
        finally:
            sender.cancel()
            try:
                await asyncio.wait([sender])  # a cancel of this task itself still goes through
            finally:
                unsent = 0
                while not self.outbox.empty():
                    self.outbox.get_nowait()
                    unsent += 1
                self._count_dropped(unsent)

    def _count_dropped(self, count: int) -> None:
        if count:
            self.metrics.shared_results.labels("dropped").inc(count)

    async def _send_all(self) -> None:
        producer = self.producer_of()
        try:
            await producer.start()
            while True:
                key, value = await self.outbox.get()
                try:
                    sent = await producer.send(self.topic, value, key=key)
                except asyncio.CancelledError:
                    self._count_dropped(1)
                    raise
                except Exception as exc:  # noqa: BLE001 - e.g. a full buffer or no leader: the result stays ours
                    self._failed(exc)
                    continue
                self._pending.add(sent)
                sent.add_done_callback(self._count)
        finally:
            # A stop does not wait for what the producer still holds (a cache is not worth a
            # slower stop): that is counted as dropped now, whatever becomes of it.
            self._count_dropped(len(self._pending))
            self._pending.clear()
            await stop_quietly(producer, SHARED_STOP_SECONDS)

    def _count(self, sent: asyncio.Future[Any]) -> None:
        error = None if sent.cancelled() else sent.exception()  # retrieved, even if not counted
        if sent not in self._pending:
            return  # counted as dropped at a stop
        self._pending.discard(sent)
        if sent.cancelled() or error is not None:
            self._failed(error)
        else:
            self._failing = False
            self.metrics.shared_results.labels("sent").inc()

    def _failed(self, exc: BaseException | None) -> None:
        """Count a failed send; say so in the log when sends start failing (not for each one)."""
        self.metrics.shared_results.labels("failed").inc()
        if not self._failing:
            self._failing = True
            log.warning("sharing recent results with other workers fails: %r", exc)

    def _adopt(self, key: bytes, value: bytes | None) -> None:
        outcome = "refused" if value is None else self.enricher.adopt(key, value)
        self.metrics.shared_results.labels(outcome).inc()
