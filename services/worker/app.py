"""The Faust app: topics, tables and agents. Agents only decode, call pipeline stages, send and count.

Topology:
  raw (N, keyed by article) --route--> by-outlet (N, keyed by outlet) --clean agent, batched-->
  features (1 partition) --dedup agent--> enriched  +  stories (compacted)
  anything unusable, at any step --> dead-letter

Re-keying by outlet puts an outlet's articles and its learned-boilerplate table entry on one
partition, so one worker owns both. Per-article work (extraction, NER, signatures) runs in
parallel over the partitions; the dedup
decision has a single writer (the one features partition), so grouping never depends on how
articles were spread over partitions and workers. Its state is a changelog-backed table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiokafka
import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CollectorRegistry
from threadpoolctl import threadpool_limits

from newsflow import __version__
from newsflow.pipeline import jsonio
from newsflow.pipeline.dedup import DedupOptions, StoryFeatures, StoryIndex, article_features
from newsflow.pipeline.embed import default_encoder
from newsflow.pipeline.enrich import Enriched, Enricher
from newsflow.pipeline.entities import EntityTagger
from newsflow.pipeline.extract import ExtractOptions, warm_up
from newsflow.pipeline.records import (
    H_ARTICLE_ID,
    H_OUTLET,
    RawArticle,
    Rejection,
    StoryAssignment,
    assignment_dict,
    assignment_from_dict,
    dead_letter_record,
    enriched_record,
    raw_from_message,
    story_record,
    with_story,
)
from newsflow.settings import KafkaSettings
from newsflow.topics import TopicSpec, message_size_config
from newsflow.worker.metrics import WorkerMetrics, create_metrics
from newsflow.worker.settings import WorkerSettings
from newsflow.worker.transport import App

log = logging.getLogger("newsflow.worker")

LAG_INTERVAL_SECONDS = 5.0


def _received_seconds_ago(received_at: str) -> float | None:
    try:
        return time.time() - datetime.fromisoformat(received_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _headers_text(headers: Any) -> dict[str, str]:
    items = headers.items() if isinstance(headers, dict) else (headers or ())
    return {k: (v.decode(errors="replace") if isinstance(v, bytes) else str(v)) for k, v in items}


class WorkerApp:
    """Builds the Faust app and holds what its agents share (metrics, stages, dedup index)."""

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
        self.dedup_options = DedupOptions(
            story_threshold=settings.story_threshold,
            copy_containment=settings.copy_containment,
            window_hours=settings.story_window_hours,
        )
        self.index = StoryIndex(self.dedup_options)
        self._index_stale = True

        # Faust's app with a fix for records lost after a rebalance (see worker/transport.py).
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
            web_enabled=False,
        )
        # Faust's own sensors (events, commits, rebalances, table operations) in the same registry.
        self.app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(self.registry, "newsflow_faust"))
        self.raw_topic = self.app.topic(kafka.topic_raw, key_type=bytes, value_type=bytes)
        self.by_outlet_topic = self.app.topic(kafka.topic_by_outlet, key_type=bytes, value_type=bytes)
        self.features_topic = self.app.topic(kafka.topic_features, key_type=bytes, value_type=bytes)
        self.enriched_topic = self.app.topic(kafka.topic_enriched, key_type=bytes, value_type=bytes)
        self.stories_topic = self.app.topic(kafka.topic_stories, key_type=bytes, value_type=bytes)
        self.dead_letter_topic = self.app.topic(kafka.topic_dead_letter, key_type=bytes, value_type=bytes)
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
        # One entry per indexed article: its features, decision and position in the features
        # topic, from which the in-memory index is rebuilt in the original order.
        self.dedup_table = self.app.Table("dedup-articles", key_type=str, value_type=bytes, partitions=1)
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
            for table in (self.boilerplate_table, self.dedup_table)
        ]

    # -- shared -------------------------------------------------------------------------------

    async def _dead_letter(self, rejection: Rejection, event: Any) -> None:
        m = self.metrics
        headers = _headers_text(event.headers)
        # After routing, the message key is the outlet; the article's own key is in its header.
        key = headers[H_ARTICLE_ID].encode() if H_ARTICLE_ID in headers else event.key
        record = dead_letter_record(rejection, event.value or b"", key, headers)
        await self.dead_letter_topic.send(key=key, value=jsonio.dumps(record))
        m.dead_letters.labels(rejection.stage, rejection.reason).inc()
        m.messages.labels(rejection.stage, "rejected").inc()
        log.warning("dead-lettered %r: %s (%s)", key, rejection.reason, rejection.detail)

    async def _report_lag(self) -> None:
        consumer: Any = self.app.consumer
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = consumer._read_offset.get(tp)  # noqa: SLF001 - faust exposes no public getter
            if highwater is not None:
                lag = max(0, highwater - (position + 1 if position is not None else 0))
                self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)

    async def _on_revoked(self, app: Any, *_: Any, **__: Any) -> None:  # noqa: ARG002
        # Another worker may own the features partition next; rebuild from the table when we
        # get it back rather than trust an index that missed its decisions.
        self._index_stale = True

    # -- route: raw -> by-outlet -----------------------------------------------------------------

    async def _route_agent(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            self.metrics.messages.labels("decode", "in").inc()
            headers = _headers_text(event.headers)
            outlet = headers.get(H_OUTLET) or "unknown"
            if H_ARTICLE_ID not in headers and event.key:
                # The key is about to become the outlet: keep the article id in a header.
                headers[H_ARTICLE_ID] = event.key.decode(errors="replace")
            # The bytes travel unchanged; the key becomes the outlet.
            await self.by_outlet_topic.send(
                key=outlet.encode(), value=event.value, headers=[(k, v.encode()) for k, v in headers.items()]
            )
            yield None

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
            raws: list[tuple[Any, RawArticle]] = []
            for event in events:
                raw = raw_from_message(None, event.value, event.headers)
                if isinstance(raw, Rejection):
                    await self._dead_letter(raw, event)
                else:
                    self._sync_boilerplate(raw.source.outlet)
                    raws.append((event, raw))
            for (event, _), result in zip(raws, self._enrich([r for _, r in raws]), strict=True):
                if isinstance(result, Rejection):
                    await self._dead_letter(result, event)
                    continue
                try:
                    await self._send_features(result)
                except Exception as exc:  # noqa: BLE001 - never lose an event to an unexpected error
                    log.exception("sending features of %s failed", result.article.article_id)
                    await self._dead_letter(
                        Rejection("enrich", "internal_error", f"{type(exc).__name__}: {exc}"), event
                    )
            self._save_boilerplate({raw.source.outlet for _, raw in raws})
            yield None

    def _save_boilerplate(self, outlets: set[str]) -> None:
        # Once per outlet and batch, not per article: an outlet's state is up to a few thousand
        # line counts, and the changelog keeps only the last value of a key anyway. Written after
        # the batch's features, so a crash before it replays the batch onto the state it learned from.
        for outlet in sorted(outlets):
            state = self.enricher.boilerplate.outlet_state(outlet)
            if state is not None:
                self.boilerplate_table[outlet] = jsonio.dumps(state)

    def _enrich(self, raws: list[RawArticle]) -> list[Enriched | Rejection]:
        try:
            return self.enricher.enrich_batch(raws)
        except Exception:  # noqa: BLE001 - one bad batch must not stop the worker
            log.exception("batch failed; retrying its articles one by one")
        results: list[Enriched | Rejection] = []
        for r in raws:
            try:
                results.extend(self.enricher.enrich_batch([r]))
            except Exception as exc:  # noqa: BLE001
                results.append(Rejection("enrich", "internal_error", f"{type(exc).__name__}: {exc}"))
        return results

    async def _send_features(self, result: Enriched) -> None:
        article = result.article
        started = time.perf_counter()
        features = article_features(article, result.entities)
        self.metrics.stage_seconds.labels("features").observe(time.perf_counter() - started)
        payload = {"record": enriched_record(article, result.entities), "features": features.as_dict()}
        await self.features_topic.send(key=article.article_id.encode(), value=jsonio.dumps(payload))
        self.metrics.messages.labels("extract", article.extraction.status).inc()

    # -- dedup: features -> enriched + stories ----------------------------------------------------

    def _rebuild_index(self) -> None:
        entries = sorted((jsonio.loads(v) for v in self.dedup_table.values()), key=lambda e: e["seq"])
        self.index = StoryIndex(self.dedup_options)
        for e in entries:
            self.index.restore(StoryFeatures.from_dict(e["features"]), assignment_from_dict(e["assignment"]))
        self._index_stale = False
        log.info(
            "dedup index rebuilt from table: %d articles, %d stories",
            len(self.index),
            len(self.index.stories),
        )

    def _assign(self, features: StoryFeatures, offset: int) -> StoryAssignment:
        started = time.perf_counter()
        assignment = self.index.assign(features)
        self.metrics.stage_seconds.labels("dedup").observe(time.perf_counter() - started)
        self.dedup_table[features.article_id] = jsonio.dumps(
            {"seq": offset, "features": features.as_dict(), "assignment": assignment_dict(assignment)}
        )
        for expired in self.index.expired_articles:
            self.dedup_table.pop(expired, None)
        self.index.expired_articles.clear()
        return assignment

    async def _dedup_agent(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        m = self.metrics
        async for event in stream.events():
            if self._index_stale:
                self._rebuild_index()
            m.messages.labels("dedup", "in").inc()
            try:
                payload = jsonio.loads(event.value)
                features = StoryFeatures.from_dict(payload["features"])
                record = payload["record"]
            except (ValueError, KeyError, TypeError) as exc:
                await self._dead_letter(
                    Rejection("dedup", "bad_features", f"{type(exc).__name__}: {exc}"), event
                )
                continue
            try:
                assignment = self._assign(features, event.message.offset)
            except Exception as exc:  # noqa: BLE001 - never lose an event to an unexpected error
                log.exception("dedup of %s failed", features.article_id)
                await self._dead_letter(
                    Rejection("dedup", "internal_error", f"{type(exc).__name__}: {exc}"), event
                )
                continue
            decision = (
                "copy"
                if assignment.duplicate_of
                else "new_story"
                if assignment.is_new_story
                else "joined_story"
            )
            m.dedup_decisions.labels(decision).inc()
            m.dedup_index_articles.set(len(self.index))
            m.dedup_stories_open.set(len(self.index.stories))
            out = with_story(record, assignment)
            await self.enriched_topic.send(key=features.article_id.encode(), value=jsonio.dumps(out))
            story = self.index.stories[assignment.story_id]
            await self.stories_topic.send(
                key=story.story_id.encode(), value=jsonio.dumps(story_record(story.as_record()))
            )
            m.messages.labels("output", "out").inc()
            age = _received_seconds_ago(record["source"]["received_at"])
            if age is not None and age >= 0:
                m.end_to_end_seconds.observe(age)
            yield None
