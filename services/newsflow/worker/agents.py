"""The worker's two agents, as thin shells: decode, call one stage object, send, count.

- `CleanAgent` (raw -> features): the per-article stages (`Enricher`), in parallel over the raw
  topic's partitions and the workers. Each article goes on as one features message: its record's
  fields and dedup features, or the dead letter it became. At-least-once: what it repeats after
  a crash, the writer drops.
- `DedupAgent` (features -> outputs): the single writer (`TransactionalWriter` around the pure
  `DedupDesk`), one Kafka transaction per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any, NamedTuple

from aiokafka.errors import KafkaTimeoutError

from newsflow.pipeline.desk import Decision, article_message, rejected_message
from newsflow.pipeline.enrich import Enricher, Result
from newsflow.pipeline.records import (
    MAX_DETAIL_CHARS,
    CleanArticle,
    Origin,
    Rejection,
    dead_letter_record,
    decode_headers,
    message_article_id,
    raw_from_message,
    replay_count,
)
from newsflow.worker.metrics import EXTRACTION_STATUSES, OutletLabels, WorkerMetrics
from newsflow.worker.replica import TopicReplica
from newsflow.worker.shared import SharedResults
from newsflow.worker.transport import withhold
from newsflow.worker.writer import TransactionalWriter

log = logging.getLogger("newsflow.worker")

# How long a starting clean agent waits to have read what the writer learned of boilerplate.
REPLICA_WAIT_SECONDS = 30.0


def _origin(event: Any) -> Origin:
    msg = event.message
    return Origin(msg.topic, msg.partition, msg.offset)


def _origin_id(event: Any) -> str:
    return _origin(event).as_id()


def transient(error: BaseException | None) -> bool:
    """Whether a send failed for a reason that passes (the broker unreachable or slow), so that
    the same message is worth sending again; False for a refusal (too large, not authorized)."""
    while error is not None:  # Faust wraps the client's error in its own
        if isinstance(error, KafkaTimeoutError) or getattr(error, "retriable", False):
            return True
        error = error.__cause__
    return False


class _Outgoing(NamedTuple):
    message: tuple[bytes, bytes]  # (key, value)
    event: Any  # the input it stands for
    # A dead letter standing in for a message the broker refused: if it is refused too, it is
    # held and sent again (no other message could carry the input).
    last_resort: bool = False


class Forwarder:
    """Sends features messages; one the broker refuses goes on as a (bounded) dead letter instead."""

    def __init__(
        self,
        topic: Any,
        metrics: WorkerMetrics,
        max_payload_bytes: int,
        keep_trying: Callable[[], bool],
        retry_seconds: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self.topic = topic
        self.metrics = metrics
        self.max_payload_bytes = max_payload_bytes
        self.keep_trying = keep_trying
        self.retry_seconds = retry_seconds
        self.outlet_label = OutletLabels()
        self._outlet_series: set[str] = set()

    def message(self, result: Result, event: Any) -> tuple[bytes, bytes]:
        """Return (key, features message) for one input's result."""
        if isinstance(result, Rejection):
            return self.dead_letter(result, event)
        headers = decode_headers(event.headers)
        try:
            message = article_message(result, replay_count(headers), _origin(event), event.message.timestamp)
        except Exception as exc:  # noqa: BLE001 - never lose an event to an unexpected error
            log.exception("the features message of %s failed", result.article.article_id)
            return self.dead_letter(Rejection.from_exception("enrich", exc), event)
        self._count_extraction(result.article)
        return result.article.article_id.encode(), message

    def _count_extraction(self, article: CleanArticle) -> None:
        extraction = article.extraction
        self.metrics.messages.labels("extract", extraction.status).inc()
        outlet = self.outlet_label(article.source.outlet)
        if outlet not in self._outlet_series:
            # An outlet's series by status from 0: its first empty article is a rate (the alert
            # NewsflowOutletExtractionEmpty), not a series that appears already counted.
            self._outlet_series.add(outlet)
            for status in EXTRACTION_STATUSES:
                self.metrics.extracted_articles.labels(outlet, status)
        self.metrics.extracted_articles.labels(outlet, extraction.status).inc()
        self.metrics.extracted_chars.labels(outlet).inc(len(article.text))
        self.metrics.boilerplate_lines.labels(outlet).inc(extraction.boilerplate_removed)

    def dead_letter(self, rejection: Rejection, event: Any) -> tuple[bytes, bytes]:
        """Return (key, features message) that carries an input's dead letter to the writer."""
        headers = decode_headers(event.headers)
        article_id = message_article_id(event.key, headers, _origin_id(event))
        key = article_id.encode()
        record = dead_letter_record(
            rejection,
            event.value or b"",
            key,
            headers,
            origin=_origin(event),
            max_payload_bytes=self.max_payload_bytes,
        )
        log.warning("rejected %s: %s (%s)", article_id, rejection.reason, rejection.detail)
        self.metrics.messages.labels(rejection.stage, "rejected").inc()
        # The desk's clock is when the pipeline got the input, never a time the input claims.
        return article_id.encode(), rejected_message(article_id, record, time.time())

    async def forward(self, messages: Sequence[tuple[bytes, bytes]], events: Sequence[Any]) -> None:
        """Send one message per event and wait for the broker.

        A message the broker refuses goes as a dead letter instead. Events of which not even that
        goes through (the broker gone for longer than the producer's timeout) are tried again, in
        place and with a growing pause, for as long as `keep_trying` says (the flow is on): the
        batch is held, so nothing after them is acknowledged first. Once the flow stops (a stop or
        a rebalance) they are withheld from the committed offsets instead, and the partition's
        next owner reads them again from its committed offset.
        """
        pending = [_Outgoing(message, event) for message, event in zip(messages, events, strict=True)]
        pause, longest = self.retry_seconds
        while True:
            pending = await self._forward_once(pending)
            if not pending:
                return
            self.metrics.messages.labels("enrich", "unsendable").inc(len(pending))
            if not self.keep_trying():
                break
            log.error(
                "%d messages could be neither forwarded nor dead-lettered; trying again in %.0f s",
                len(pending),
                pause,
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, longest)
            if not self.keep_trying():  # a rebalance or a stop came during the pause
                break
        log.error("%d messages unsent at a stop or rebalance; they will be read again", len(pending))
        withhold(out.event for out in pending)

    async def _forward_once(self, pending: Sequence[_Outgoing]) -> list[_Outgoing]:
        """Send each message, one the broker refuses as a dead letter; return what to send again:
        the messages whose send failed for a passing reason (a timeout, a lost connection), and the
        dead letters of refused ones that did not go through either (sent again as they are, so a
        refusal is dead-lettered and counted once)."""
        errors = await self._send_all([out.message for out in pending])
        again, fallbacks = [], []
        for error, out in zip(errors, pending, strict=True):
            if error is None:
                continue
            if transient(error) or out.last_resort:
                again.append(out)
                continue
            log.error("forwarding %r failed: %r", out.event.key, error)
            rejection = Rejection("enrich", "internal_error", f"send failed: {error!r}"[:MAX_DETAIL_CHARS])
            fallbacks.append(_Outgoing(self.dead_letter(rejection, out.event), out.event, last_resort=True))
        sent = await self._send_all([out.message for out in fallbacks])
        return again + [out for out, error in zip(fallbacks, sent, strict=True) if error is not None]

    async def _send_all(self, messages: Sequence[tuple[bytes, bytes]]) -> list[BaseException | None]:
        """Send messages and wait for the broker; return each one's error (None: delivered)."""
        futures: list[Awaitable[Any] | BaseException] = []
        for key, value in messages:
            try:
                futures.append(await self.topic.send(key=key, value=value))
            except Exception as exc:  # noqa: BLE001 - Faust refuses some messages at once (too large)
                futures.append(exc)
        waiting = [f for f in futures if not isinstance(f, BaseException)]
        results = iter(await asyncio.gather(*waiting, return_exceptions=True))
        out: list[BaseException | None] = []
        for f in futures:
            r = f if isinstance(f, BaseException) else next(results)
            out.append(r if isinstance(r, BaseException) else None)
        return out


class CleanAgent:
    """raw -> features, in batches: decode and clean each article, then tag and featurize the batch."""

    def __init__(
        self,
        enricher: Enricher,
        forwarder: Forwarder,
        boilerplate: TopicReplica,
        metrics: WorkerMetrics,
        should_stop: Callable[[], bool],
        batch: tuple[int, float],
        shared: SharedResults | None = None,
    ) -> None:
        self.batch_size, self.batch_seconds = batch
        self.enricher = enricher
        self.forwarder = forwarder
        self.boilerplate = boilerplate
        self.metrics = metrics
        self.should_stop = should_stop
        self.shared = shared

    async def run(self, stream: Any) -> AsyncGenerator[None, None]:
        """The Faust agent (take_events, not take: each message's key and headers are needed)."""
        batches = stream.take_events(self.batch_size, within=self.batch_seconds)
        async with contextlib.AsyncExitStack() as followed:
            await followed.enter_async_context(self.boilerplate.running(REPLICA_WAIT_SECONDS))
            if self.shared is not None:
                await followed.enter_async_context(self.shared.running())
            async for events in batches:
                self.metrics.messages.labels("decode", "in").inc(len(events))
                self.metrics.batch_size.labels("clean").observe(len(events))
                try:
                    await self.batch(events)
                except BaseException:
                    # A stop, or a fault no article is to blame for (the stages and sends guard
                    # each one): the partitions' next owner reads them again, this worker
                    # restarted (`app.exit_on_failure`) or another.
                    withhold(events)
                    raise
                yield None

    def _clean(self, event: Any) -> Result:
        try:
            raw = raw_from_message(
                event.key,
                event.value,
                event.headers,
                _origin_id(event),
                getattr(event.message, "timestamp", None),
            )
        except Exception as exc:  # noqa: BLE001 - one message must not cost its batch (nor restart the worker)
            log.exception("decoding %s failed", _origin_id(event))
            return Rejection.from_exception("decode", exc)
        return raw if isinstance(raw, Rejection) else self.enricher.clean(raw)

    async def batch(self, events: Sequence[Any]) -> None:
        cleaned: list[Result] = []
        for event in events:
            # Extraction runs here, on the event loop's (main) thread, where a signal can bound a
            # parse (pipeline/deadline.py); one page at a time, so the loop keeps heartbeating.
            cleaned.append(self._clean(event))
            # A stop never waits for a batch of slow pages: once Faust is stopping, give the
            # batch up unsent. Its offsets stay uncommitted (transport.py, fix 3), so whoever owns
            # the partition next reads it again, and the writer drops what was already forwarded.
            await asyncio.sleep(0)
            if self.should_stop():
                withhold(events)
                return
        # NER and the embeddings are library code that runs for seconds per batch: off the loop,
        # so that the consumer's heartbeats and fetches and the dedup agent go on meanwhile.
        # The desk's clock: when the pipeline got the articles, never a time they claim.
        reused = self.enricher.reused()
        results = await asyncio.to_thread(self.enricher.finish, cleaned, time.time())
        for stage, count in self.enricher.reused().items():
            if count > reused[stage]:
                self.metrics.reused.labels(stage).inc(count - reused[stage])
        messages = [self.forwarder.message(r, e) for r, e in zip(results, events, strict=True)]
        await self.forwarder.forward(messages, events)
        if self.shared is not None:
            self.shared.offer()


class DedupAgent:
    """features -> enriched, stories, dead letters: each batch decided and written as one transaction."""

    def __init__(
        self,
        writer: TransactionalWriter,
        metrics: WorkerMetrics,
        should_stop: Callable[[], bool],
        owns_features: Callable[[], bool],
        batch: tuple[int, float],
    ) -> None:
        self.batch_size, self.batch_seconds = batch
        self.writer = writer
        self.metrics = metrics
        self.should_stop = should_stop
        self.owns_features = owns_features

    async def run(self, stream: Any) -> AsyncGenerator[None, None]:
        """The Faust agent."""
        batches = stream.take_events(self.batch_size, within=self.batch_seconds)
        try:
            async for events in batches:
                self.metrics.messages.labels("dedup", "in").inc(len(events))
                self.metrics.batch_size.labels("dedup").observe(len(events))
                started = time.perf_counter()
                decisions = await self.writer.write_batch(events, self.should_stop, self.owns_features)
                if decisions:
                    seconds = (time.perf_counter() - started) / len(events)
                    observed = self.metrics.stage_seconds.labels("dedup")
                    for _ in events:  # one observation per article, the batch's time shared out
                        observed.observe(seconds)
                    self.count(decisions)
                yield None
        finally:
            await self.writer.stop()

    def count(self, decisions: Sequence[Decision]) -> None:
        m = self.metrics
        for d in decisions:
            if d.outcome == "duplicate":
                m.messages.labels("dedup", "duplicate").inc()
            elif d.outcome == "dead_letter":
                m.dead_letters.labels(d.stage or "dedup", d.reason or "internal_error").inc()
            else:
                m.dedup_decisions.labels(d.outcome).inc()
                m.dedup_merges.inc(d.merged)
                m.dedup_splits.inc(d.split)
                m.messages.labels("output", "out").inc()
                if d.produced is not None:
                    m.end_to_end_seconds.observe(max(0.0, time.time() - d.produced))
        self.observe_desk()

    def observe_desk(self, rebuild_seconds: float | None = None) -> None:
        # Only the partition's owner reports the index: a worker that lost it may end a batch or a
        # rebuild after its assignment said so (`WorkerApp._on_assigned` set its gauges to 0), and
        # a dashboard would show two writers.
        if not self.owns_features():
            return
        desk = self.writer.desk
        self.metrics.dedup_index_articles.set(len(desk.index))
        self.metrics.dedup_stories_open.set(len(desk.index.stories))
        if rebuild_seconds is not None:
            self.metrics.desk_rebuild_seconds.set(rebuild_seconds)
