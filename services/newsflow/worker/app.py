"""The Faust app: topics, tables and agents. Agents only decode, call pipeline stages, send and count.

Topology:
  raw (N, keyed by article) --route--> by-outlet (N, keyed by outlet) --clean agent, batched-->
  features (1 partition: cleaned articles and the dead letters of earlier stages)
  --dedup agent, one Kafka transaction per batch--> enriched + stories + dead-letter + dedup state

Only the dedup agent writes what consumers read, transactionally: every article comes out once,
enriched or dead-lettered (worker/writer.py). The stages before it are at-least-once; what they
repeat after a crash, the writer recognises and drops.

Re-keying by outlet puts an outlet's articles and its learned-boilerplate table entry on one
partition, so one worker owns both. Per-article work (extraction, NER, signatures) runs in
parallel over the partitions; the dedup
decision has a single writer (the one features partition), so grouping never depends on how
articles were spread over partitions and workers. Its state is a changelog-backed table.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any

import aiokafka
import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CollectorRegistry
from threadpoolctl import threadpool_limits

from newsflow import __version__
from newsflow.pipeline import jsonio
from newsflow.pipeline.dates import parse_datetime
from newsflow.pipeline.dedup import DedupOptions, article_features
from newsflow.pipeline.desk import Decision, DedupDesk, article_message, rejected_message
from newsflow.pipeline.embed import default_encoder
from newsflow.pipeline.enrich import Enriched, Enricher
from newsflow.pipeline.entities import EntityTagger
from newsflow.pipeline.extract import ExtractOptions, warm_up
from newsflow.pipeline.records import (
    H_ARTICLE_ID,
    H_OUTLET,
    CleanArticle,
    Origin,
    RawArticle,
    Rejection,
    dead_letter_record,
    enriched_record,
    max_dead_letter_payload,
    raw_from_message,
    replay_count,
)
from newsflow.settings import KafkaSettings
from newsflow.topics import TopicSpec, message_size_config
from newsflow.worker.metrics import WorkerMetrics, create_metrics
from newsflow.worker.settings import WorkerSettings
from newsflow.worker.transport import App, withhold
from newsflow.worker.writer import TransactionalWriter

log = logging.getLogger("newsflow.worker")

LAG_INTERVAL_SECONDS = 5.0
# Headers a forwarded message may add to its input (the article id after routing).
HEADER_ALLOWANCE_BYTES = 4096


def _received_seconds_ago(received_at: str) -> float | None:
    dt = parse_datetime(received_at)
    return None if dt is None else time.time() - dt.timestamp()


def _headers_text(headers: Any) -> dict[str, str]:
    items = headers.items() if isinstance(headers, dict) else (headers or ())
    return {k: (v.decode(errors="replace") if isinstance(v, bytes) else str(v)) for k, v in items}


def _origin(event: Any) -> Origin:
    msg = event.message
    return Origin(msg.topic, msg.partition, msg.offset)


class WorkerApp:
    """Builds the Faust app and holds what its agents share (metrics, stages, the dedup writer)."""

    def __init__(
        self, kafka: KafkaSettings, settings: WorkerSettings, registry: CollectorRegistry | None = None
    ) -> None:
        self.kafka = kafka
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics: WorkerMetrics = create_metrics(self.registry)
        self.metrics.build_info.info(
            {
                "version": __version__,
                "faust": faust.__version__,
                "aiokafka": aiokafka.__version__,
                "ner_model": settings.ner_model,
            }
        )
        started = time.perf_counter()
        tagger = EntityTagger(
            settings.ner_model, max_chars=settings.ner_max_chars, batch_size=settings.batch_size
        )
        self.metrics.model_load_seconds.set(time.perf_counter() - started)
        log.info("NER model %s loaded in %.1fs", settings.ner_model, time.perf_counter() - started)
        # Several workers share a host's cores: BLAS threads in each would fight over them and
        # stall the event loops that heartbeat to Kafka. Parallelism comes from workers.
        threadpool_limits(settings.compute_threads)
        started = time.perf_counter()
        default_encoder()  # the dedup features' sentence-embedding model, loaded once per process
        log.info("embedding model loaded in %.1fs", time.perf_counter() - started)
        extract_options = ExtractOptions(
            max_input_bytes=settings.max_input_bytes,
            max_parse_seconds=settings.max_parse_seconds,
            min_article_words=settings.min_article_words,
        )
        started = time.perf_counter()
        warm_up(extract_options)  # before consuming: the parse bound must not pay for loading
        log.info("extraction warmed up in %.1fs", time.perf_counter() - started)
        self.enricher = Enricher(
            tagger=tagger,
            options=extract_options,
            on_stage_time=lambda stage, s: self.metrics.stage_seconds.labels(stage).observe(s),
        )
        self.max_dead_letter_payload = max_dead_letter_payload(kafka.max_message_bytes)
        self.writer = TransactionalWriter(
            kafka,
            settings.app_id,
            DedupOptions(
                story_threshold=settings.story_threshold,
                copy_containment=settings.copy_containment,
                window_hours=settings.story_window_hours,
            ),
            on_rebuilt=self._on_desk_rebuilt,
            max_payload_bytes=self.max_dead_letter_payload,
        )

        # Faust's app with fixes for records lost around a rebalance (see worker/transport.py).
        self.app = App(
            settings.app_id,
            broker=";".join(f"kafka://{b.strip()}" for b in kafka.bootstrap.split(",")),
            store=settings.store,
            datadir=settings.data_dir,
            key_serializer="raw",
            value_serializer="raw",
            topic_partitions=kafka.raw_partitions,
            topic_replication_factor=1,
            topic_allow_declare=True,
            producer_acks=-1,
            producer_max_request_size=kafka.max_message_bytes,
            consumer_max_fetch_size=kafka.max_message_bytes,
            consumer_auto_offset_reset="earliest",
            # A killed worker's partitions wait this long for it before the group moves them; a
            # worker restarted under the same instance id takes them back at once.
            broker_session_timeout=settings.session_timeout_seconds,
            broker_heartbeat_interval=max(1.0, settings.session_timeout_seconds / 4),
            consumer_group_instance_id=settings.instance_id or None,
            web_enabled=False,
            # Stop at once; what a stop interrupts is read again (transport.py, fix 3).
            stream_wait_empty=False,
            self_committed_topics=[kafka.topic_features],
        )
        # Faust's own sensors (events, commits, rebalances, table operations) in the same registry.
        self.app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(self.registry, "newsflow_faust"))
        self.raw_topic = self.app.topic(kafka.topic_raw, key_type=bytes, value_type=bytes)
        self.by_outlet_topic = self.app.topic(kafka.topic_by_outlet, key_type=bytes, value_type=bytes)
        self.features_topic = self.app.topic(kafka.topic_features, key_type=bytes, value_type=bytes)
        # Learned boilerplate per outlet. A GlobalTable would give every worker all outlets, but
        # a worker starting while its changelog holds data never starts its streams (faust
        # 0.15.3); a partitioned table co-partitioned with the by-outlet topic has no such issue.
        self.boilerplate_table = self.app.Table(
            "boilerplate",
            key_type=str,
            value_type=bytes,
            partitions=kafka.raw_partitions,
            # Written from batches (no current event): place keys by hash, which is also how
            # the route agent's producer placed the outlet's messages.
            use_partitioner=True,
            # Faust's RocksDB store cannot place writes without a current event; the state is
            # small and bounded, so it is rebuilt from its changelog at start. (A host is needed:
            # Faust tests the URL's truth, and yarl's URL("memory://") is falsy.)
            store="memory://boilerplate",
        )
        self.app.agent(self.raw_topic, name="route")(self._route_agent)
        self.app.agent(self.by_outlet_topic, name="clean")(self._clean_agent)
        self.app.agent(self.features_topic, name="dedup")(self._dedup_agent)
        self.app.timer(LAG_INTERVAL_SECONDS)(self._report_lag)
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]

    def changelog_topics(self) -> list[TopicSpec]:
        """Return the tables' changelog topics, which the worker creates before Faust starts.

        Faust would create them itself, but a topic created while the consumer is already
        running may be missing from its metadata for a while, and a table write then fails.
        """
        compact = {**message_size_config(self.kafka), "cleanup.policy": "compact"}
        return [
            TopicSpec(f"{self.settings.app_id}-{table.name}-changelog", int(table.partitions or 1), compact)
            for table in (self.boilerplate_table,)
        ]

    # -- shared -------------------------------------------------------------------------------

    def _dead_letter_message(self, rejection: Rejection, event: Any) -> tuple[bytes, bytes]:
        """Return (key, features-topic message) that carries an input's dead letter to the writer."""
        headers = _headers_text(event.headers)
        # After routing, the message key is the outlet; the article's own key is in its header.
        key = headers[H_ARTICLE_ID].encode() if H_ARTICLE_ID in headers else (event.key or b"")
        record = dead_letter_record(
            rejection,
            event.value or b"",
            key,
            headers,
            origin=_origin(event),
            max_payload_bytes=self.max_dead_letter_payload,
        )
        article_id = (
            key.decode(errors="replace")
            or f"@{event.message.topic}/{event.message.partition}/{event.message.offset}"
        )
        log.warning("rejected %s: %s (%s)", article_id, rejection.reason, rejection.detail)
        self.metrics.messages.labels(rejection.stage, "rejected").inc()
        # The desk's clock is when the pipeline got the input, never a time the input claims.
        message = rejected_message(article_id, record, time.time())
        return article_id.encode(), message

    async def _send_all(
        self, topic: Any, messages: Sequence[tuple[bytes, bytes, Any]]
    ) -> list[BaseException | None]:
        """Send messages and wait for the broker; return each one's error (None: delivered)."""
        futures: list[Awaitable[Any] | BaseException] = []
        for key, value, headers in messages:
            try:
                futures.append(await topic.send(key=key, value=value, headers=headers))
            except Exception as exc:  # noqa: BLE001 - Faust refuses some messages at once (too large)
                futures.append(exc)
        waiting = [f for f in futures if not isinstance(f, BaseException)]
        results = iter(await asyncio.gather(*waiting, return_exceptions=True))
        out: list[BaseException | None] = []
        for f in futures:
            r = f if isinstance(f, BaseException) else next(results)
            out.append(r if isinstance(r, BaseException) else None)
        return out

    async def _forward(
        self, messages: Sequence[tuple[bytes, bytes, Any]], events: Sequence[Any], topic: Any = None
    ) -> None:
        """Send messages (to the features topic by default); one that fails goes as a dead letter instead.

        Only a broker that refuses a message makes it fail (the producer retries outages); the
        dead letter of it is bounded, so it fits.
        """
        errors = await self._send_all(topic or self.features_topic, messages)
        fallbacks, failed = [], []
        for error, event in zip(errors, events, strict=True):
            if error is not None:
                log.error("forwarding %r failed: %r", event.key, error)
                rejection = Rejection("enrich", "internal_error", f"send failed: {error!r}"[:1000])
                key, message = self._dead_letter_message(rejection, event)
                fallbacks.append((key, message, None))
                failed.append(event)
        sent_back = await self._send_all(self.features_topic, fallbacks)
        unsent = [e for e, err in zip(failed, sent_back, strict=True) if err]
        if unsent:
            # Not even a bounded dead letter goes through (the broker is gone for longer than the
            # producer's timeout): keep their offsets uncommitted, so they are read again.
            log.error(
                "%d messages could be neither forwarded nor dead-lettered; they will be read again",
                len(unsent),
            )
            self.metrics.messages.labels("enrich", "unsendable").inc(len(unsent))
            withhold(unsent)

    async def _report_lag(self) -> None:
        consumer: Any = self.app.consumer
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = consumer._read_offset.get(tp)  # noqa: SLF001 - faust exposes no public getter
            if highwater is not None:
                lag = max(0, highwater - (position + 1 if position is not None else 0))
                self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)

    async def _on_revoked(self, app: Any, revoked: Any = (), **__: Any) -> None:  # noqa: ARG002
        # Another worker may own the features partition next: start afresh (a new producer, the desk
        # rebuilt from the state topic) when we get it back, rather than trust what may be stale.
        if any(tp.topic == self.kafka.topic_features for tp in revoked or ()):
            self.writer.mark_stale()

    def _owns_features(self) -> bool:
        try:
            assigned = self.app.consumer.assignment()
        except Exception:  # noqa: BLE001 - no consumer (stopping): not the owner
            return False
        return any(tp.topic == self.kafka.topic_features for tp in assigned)

    # -- route: raw -> by-outlet -----------------------------------------------------------------

    async def _route_agent(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        limit = self.kafka.max_message_bytes - HEADER_ALLOWANCE_BYTES
        async for event in stream.events():
            self.metrics.messages.labels("decode", "in").inc()
            try:
                await self._route(event, limit)
            except asyncio.CancelledError:
                withhold([event])
                raise
            yield None

    async def _route(self, event: Any, limit: int) -> None:
        headers = _headers_text(event.headers)
        outlet = headers.get(H_OUTLET) or "unknown"
        if not headers.get(H_ARTICLE_ID):
            # The key is about to become the outlet: keep the article id in a header (without a key,
            # where the message was read is its identity, the same on every delivery).
            msg = event.message
            headers[H_ARTICLE_ID] = (
                event.key.decode(errors="replace")
                if event.key
                else f"@{msg.topic}/{msg.partition}/{msg.offset}"
            )
        if len(event.value or b"") > limit:
            rejection = Rejection(
                "decode", "too_large", f"{len(event.value)} bytes leave no room for headers"
            )
            key, message = self._dead_letter_message(rejection, event)
            await self._forward([(key, message, None)], [event])
        else:
            # The bytes travel unchanged; the key becomes the outlet.
            out = [(k, v.encode()) for k, v in headers.items()]
            await self._forward([(outlet.encode(), event.value, out)], [event], self.by_outlet_topic)

    # -- clean: by-outlet -> features -------------------------------------------------------------

    def _sync_boilerplate(self, outlet: str) -> None:
        model = self.enricher.boilerplate
        if outlet not in model.outlets:
            stored = self.boilerplate_table.get(outlet)
            if stored:
                try:
                    model.load_outlet_state(outlet, jsonio.loads(stored))
                except ValueError as exc:
                    # E.g. written by another version: learn this outlet afresh rather than fail
                    # (and lose) every batch that holds one of its articles.
                    log.warning("ignoring learned boilerplate: %s", exc)

    async def _clean_agent(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        m = self.metrics
        # take_events (not take) keeps each message's key and headers for the dead letters.
        batches = stream.take_events(  # type: ignore[attr-defined]
            self.settings.batch_size, within=self.settings.batch_seconds
        )
        async for events in batches:
            m.batch_size.labels("clean").observe(len(events))
            try:
                await self._clean_batch(events)
            except asyncio.CancelledError:
                withhold(events)  # the next owner of these partitions reads them again
                raise
            yield None

    async def _clean_batch(self, events: Sequence[Any]) -> None:
        messages: list[tuple[bytes, bytes, Any]] = []
        sources: list[Any] = []
        todo: list[tuple[Any, RawArticle, CleanArticle | Rejection]] = []
        for event in events:
            raw = raw_from_message(None, event.value, event.headers)
            if isinstance(raw, Rejection):
                key, message = self._dead_letter_message(raw, event)
                messages.append((key, message, None))
                sources.append(event)
            else:
                self._sync_boilerplate(raw.source.outlet)
                # A stop never waits for a batch of slow pages: between articles, let the loop see
                # a SIGTERM, and once Faust is stopping give the batch up unsent. Its
                # offsets stay uncommitted (transport.py, fix 3), so whoever owns the partition
                # next reads it again, and the writer drops what of it was already forwarded.
                await asyncio.sleep(0)
                if self.app.should_stop:
                    withhold(events)
                    return
                todo.append((event, raw, self._clean(raw)))
        for (event, raw, _), result in zip(todo, self._tag([c for *_, c in todo]), strict=True):
            try:
                if isinstance(result, Rejection):
                    key, message = self._dead_letter_message(result, event)
                else:
                    key, message = self._features_message(result, raw, event)
            except Exception as exc:  # noqa: BLE001 - never lose an event to an unexpected error
                log.exception("features of %s failed", raw.article_id)
                rejection = Rejection("enrich", "internal_error", f"{type(exc).__name__}: {exc}")
                key, message = self._dead_letter_message(rejection, event)
            messages.append((key, message, None))
            sources.append(event)
        await self._forward(messages, sources)
        self._save_boilerplate({raw.source.outlet for _, raw, _ in todo})

    def _save_boilerplate(self, outlets: set[str]) -> None:
        # Once per outlet and batch, not per article: an outlet's state is up to a few thousand
        # line counts, and the changelog keeps only the last value of a key anyway. Written after
        # the batch's features, so a crash before it replays the batch onto the state it learned from.
        for outlet in sorted(outlets):
            state = self.enricher.boilerplate.outlet_state(outlet)
            if state is not None:
                self.boilerplate_table[outlet] = jsonio.dumps(state)

    def _clean(self, raw: RawArticle) -> CleanArticle | Rejection:
        try:
            return self.enricher.clean(raw)
        except Exception as exc:  # noqa: BLE001 - one bad article must not stop the worker
            log.exception("cleaning %s failed", raw.article_id)
            return Rejection("extract", "internal_error", f"{type(exc).__name__}: {exc}")

    def _tag(self, cleaned: list[CleanArticle | Rejection]) -> list[Enriched | Rejection]:
        try:
            return self.enricher.tag(cleaned)
        except Exception:  # noqa: BLE001 - one bad batch must not stop the worker
            log.exception("tagging a batch failed; retrying its articles one by one")
        results: list[Enriched | Rejection] = []
        for c in cleaned:
            try:
                results.extend(self.enricher.tag([c]))
            except Exception as exc:  # noqa: BLE001
                results.append(Rejection("enrich", "internal_error", f"{type(exc).__name__}: {exc}"))
        return results

    def _features_message(self, result: Enriched, raw: RawArticle, event: Any) -> tuple[bytes, bytes]:
        article = result.article
        started = time.perf_counter()
        # The desk's clock: when the pipeline got the article, never a time the article claims.
        features = article_features(article, result.entities, received=time.time())
        self.metrics.stage_seconds.labels("features").observe(time.perf_counter() - started)
        self.metrics.messages.labels("extract", article.extraction.status).inc()
        headers = _headers_text(event.headers)
        message = article_message(
            enriched_record(article, result.entities), features, replay_count(headers), _origin(event)
        )
        return raw.article_id.encode(), message

    # -- dedup: features -> enriched + stories + dead letters, transactionally --------------------

    def _on_desk_rebuilt(self, desk: DedupDesk, seconds: float) -> None:
        self.metrics.dedup_index_articles.set(len(desk.index))
        self.metrics.dedup_stories_open.set(len(desk.index.stories))
        self.metrics.desk_rebuild_seconds.set(seconds)

    async def _dedup_agent(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        try:
            async for _ in self._dedup_batches(stream):
                yield None
        finally:
            await self.writer.stop()

    async def _dedup_batches(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        batches = stream.take_events(  # type: ignore[attr-defined]
            self.settings.dedup_batch_size, within=self.settings.dedup_batch_seconds
        )
        async for events in batches:
            self.metrics.messages.labels("dedup", "in").inc(len(events))
            self.metrics.batch_size.labels("dedup").observe(len(events))
            started = time.perf_counter()
            decisions = await self.writer.write_batch(
                events, lambda: self.app.should_stop, self._owns_features
            )
            if not decisions:
                continue
            self.metrics.stage_seconds.labels("dedup").observe((time.perf_counter() - started) / len(events))
            self._count(decisions)
            yield None

    def _count(self, decisions: Sequence[Decision]) -> None:
        m = self.metrics
        for d in decisions:
            if d.outcome == "duplicate":
                m.messages.labels("dedup", "duplicate").inc()
                continue
            if d.outcome == "dead_letter":
                m.dead_letters.labels(d.stage or "dedup", d.reason or "internal_error").inc()
                continue
            m.dedup_decisions.labels(d.outcome).inc()
            m.messages.labels("output", "out").inc()
            age = _received_seconds_ago((d.record or {}).get("source", {}).get("received_at", ""))
            if age is not None and age >= 0:
                m.end_to_end_seconds.observe(age)
        m.dedup_index_articles.set(len(self.writer.desk.index))
        m.dedup_stories_open.set(len(self.writer.desk.index.stories))
