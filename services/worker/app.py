"""The Faust app: topics, tables and agents. Agents only decode, call pipeline stages, send and count."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from newsflow import __version__
from newsflow.pipeline import jsonio
from newsflow.pipeline.enrich import Enriched, Enricher
from newsflow.pipeline.extract import ExtractOptions
from newsflow.pipeline.records import (
    RawArticle,
    Rejection,
    dead_letter_record,
    enriched_record,
    raw_from_message,
)
from newsflow.settings import KafkaSettings
from newsflow.worker.metrics import WorkerMetrics, create_metrics
from newsflow.worker.settings import WorkerSettings

log = logging.getLogger("newsflow.worker")


def _received_seconds_ago(received_at: str) -> float | None:
    try:
        return time.time() - datetime.fromisoformat(received_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _headers_text(headers: Any) -> dict[str, str]:
    items = headers.items() if isinstance(headers, dict) else (headers or ())
    return {k: (v.decode(errors="replace") if isinstance(v, bytes) else str(v)) for k, v in items}


class WorkerApp:
    """Builds the Faust app and holds what its agents share (metrics, stages)."""

    def __init__(
        self, kafka: KafkaSettings, settings: WorkerSettings, registry: CollectorRegistry | None = None
    ) -> None:
        self.kafka = kafka
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics: WorkerMetrics = create_metrics(self.registry)
        self.metrics.build_info.info({"version": __version__, "faust": faust.__version__})
        self.enricher = Enricher(
            options=ExtractOptions(
                max_input_bytes=settings.max_input_bytes, min_article_words=settings.min_article_words
            ),
            on_stage_time=lambda stage, s: self.metrics.stage_seconds.labels(stage).observe(s),
        )
        self.app = faust.App(
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
            consumer_auto_offset_reset="earliest",
            web_enabled=False,
        )
        self.raw_topic = self.app.topic(kafka.topic_raw, key_type=bytes, value_type=bytes)
        self.enriched_topic = self.app.topic(kafka.topic_enriched, key_type=bytes, value_type=bytes)
        self.dead_letter_topic = self.app.topic(kafka.topic_dead_letter, key_type=bytes, value_type=bytes)
        self.boilerplate_table = self.app.GlobalTable(
            "boilerplate",
            key_type=str,
            value_type=bytes,
            partitions=kafka.raw_partitions,
            # Keyed by outlet while the stream is keyed by article: place keys by hash, not by
            # the partition of the event being processed.
            use_partitioner=True,
        )
        self.app.agent(self.raw_topic, name="clean")(self._clean_agent)

    async def _dead_letter(self, rejection: Rejection, event: Any) -> None:
        m = self.metrics
        record = dead_letter_record(rejection, event.value or b"", event.key, _headers_text(event.headers))
        await self.dead_letter_topic.send(key=event.key, value=jsonio.dumps(record))
        m.dead_letters.labels(rejection.stage, rejection.reason).inc()
        m.messages.labels(rejection.stage, "rejected").inc()
        log.warning("dead-lettered %r: %s (%s)", event.key, rejection.reason, rejection.detail)

    def _sync_boilerplate(self, outlet: str) -> None:
        model = self.enricher.boilerplate
        if outlet not in model.outlets:
            stored = self.boilerplate_table.get(outlet)
            if stored:
                model.load_outlet_state(outlet, jsonio.loads(stored))

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
                m.messages.labels("decode", "in").inc()
                raw = raw_from_message(event.key, event.value, event.headers)
                if isinstance(raw, Rejection):
                    await self._dead_letter(raw, event)
                else:
                    self._sync_boilerplate(raw.source.outlet)
                    raws.append((event, raw))
            try:
                results = self.enricher.enrich_batch([r for _, r in raws])
            except Exception:  # noqa: BLE001 - one bad batch must not stop the worker
                log.exception("batch failed; retrying its articles one by one")
                results = []
                for _, r in raws:
                    try:
                        results.extend(self.enricher.enrich_batch([r]))
                    except Exception as exc:  # noqa: BLE001
                        results.append(Rejection("enrich", "internal_error", f"{type(exc).__name__}: {exc}"))
            for (event, raw), result in zip(raws, results, strict=True):
                if isinstance(result, Rejection):
                    await self._dead_letter(result, event)
                    continue
                await self._emit(raw, result)
            yield None

    async def _emit(self, raw: RawArticle, result: Enriched) -> None:
        m = self.metrics
        article = result.article
        outlet = article.source.outlet
        state = self.enricher.boilerplate.outlet_state(outlet)
        if state is not None:
            self.boilerplate_table[outlet] = jsonio.dumps(state)
        record = enriched_record(article)
        await self.enriched_topic.send(key=raw.article_id.encode(), value=jsonio.dumps(record))
        m.messages.labels("extract", article.extraction.status).inc()
        m.messages.labels("output", "out").inc()
        age = _received_seconds_ago(article.source.received_at)
        if age is not None and age >= 0:
            m.end_to_end_seconds.observe(age)
