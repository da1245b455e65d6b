"""The worker's topology, top to bottom: the models, the Faust app, its topics and its two agents.

  raw (N partitions, key = article id)
    --clean agent, batched, on any worker-->        features (1 partition)
    --dedup agent, one transaction per batch-->     enriched + stories + dead-letter
                                                    + dedup state + boilerplate (compacted)
  boilerplate --followed by every clean agent (a read-mostly replica)
  recent results --written and followed by every clean agent (NER spans and embeddings computed)

The per-article work (extract, clean, NER, dedup features) runs in parallel over the raw topic's
partitions, so any worker can clean any outlet's articles. The story decision has a single
writer (the one features partition): grouping never depends on how articles were spread over
partitions and workers. That writer also learns each outlet's boilerplate from all of its
articles and publishes it; every clean agent applies it. Only the writer writes what consumers
read, transactionally: every article comes out once, enriched or dead-lettered (writer.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

import aiokafka
import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CollectorRegistry
from threadpoolctl import threadpool_limits

from newsflow import __version__
from newsflow.pipeline import places
from newsflow.pipeline.dedup import DedupOptions
from newsflow.pipeline.desk import load_boilerplate
from newsflow.pipeline.embed import TextEncoder
from newsflow.pipeline.enrich import Enricher
from newsflow.pipeline.entities import EntityTagger
from newsflow.pipeline.extract import ExtractOptions, warm_up
from newsflow.pipeline.records import max_dead_letter_payload
from newsflow.settings import KafkaSettings, client_options
from newsflow.worker.agents import CleanAgent, DedupAgent, Forwarder
from newsflow.worker.metrics import WorkerMetrics, create_metrics
from newsflow.worker.replica import TopicReplica
from newsflow.worker.settings import WorkerSettings
from newsflow.worker.shared import SharedResults, shared_results_producer
from newsflow.worker.snapshot import Snapshots
from newsflow.worker.transport import App, MembershipWatch
from newsflow.worker.writer import TransactionalWriter

log = logging.getLogger("newsflow.worker")

LAG_INTERVAL_SECONDS = 5.0
MEMBERSHIP_CHECK_SECONDS = 5.0
# The exit code when the consumer has left its group for good (see `watch_membership`).
EXIT_GROUP_FAILED = 3
# The exit code when an agent failed (see `exit_on_failure`).
EXIT_AGENT_FAILED = 4


def exit_on_failure(
    name: str, run: Callable[[Any], AsyncGenerator[None, None]]
) -> Callable[[Any], AsyncGenerator[None, None]]:
    """Return the agent `run`, exiting the process should it fail, for its supervisor to restart it.

    The stages and the sends guard each message, so what reaches here is a fault of the worker's
    own (a bug outside those guards). Faust would restart the agent in this process, past the
    batch it failed on (whose offsets the agent withheld, so the commit would wait at them for
    ever), with whatever state the failure left. An exit is as safe as a crash: uncommitted input
    is read again, an open transaction is aborted by the next writer.
    """

    async def agent(stream: Any) -> AsyncGenerator[None, None]:
        try:
            async with contextlib.aclosing(run(stream)) as batches:
                async for _ in batches:
                    yield None
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - any fault of the agent's own
            log.critical("the %s agent failed; exiting to be restarted", name, exc_info=True)
            logging.shutdown()
            os._exit(EXIT_AGENT_FAILED)

    # Faust names an agent by its function in its logs: "CleanAgent.run", not this wrapper.
    agent.__name__ = getattr(run, "__name__", name)
    agent.__qualname__ = getattr(run, "__qualname__", name)
    agent.__module__ = getattr(run, "__module__", __name__)
    return agent


def _holds(partitions: Any, topic: str) -> bool:
    """Whether `topic` is among these topic partitions (a rebalance's, or an assignment)."""
    return any(tp.topic == topic for tp in partitions or ())


class WorkerApp:
    """The Faust app with its agents, and what they share (metrics, the enricher, the writer)."""

    def __init__(
        self, kafka: KafkaSettings, settings: WorkerSettings, registry: CollectorRegistry | None = None
    ) -> None:
        self.kafka = kafka
        self.registry = registry or CollectorRegistry()
        self.metrics = create_metrics(self.registry)
        self.enricher = load_enricher(settings, self.metrics)
        encoder = self.enricher.encoder
        self.metrics.build_info.info(
            {
                "version": __version__,
                "faust": faust.__version__,
                "aiokafka": aiokafka.__version__,
                "ner_model": settings.ner_model,
                "embed_precision": settings.embed_precision,
                # The kernel this worker runs (int8): workers share embeddings only within one.
                "embed_down": (encoder.down if encoder else None) or "",
            }
        )
        self.app = faust_app(kafka, settings)
        self.app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(self.registry, "newsflow_faust"))
        raw = self.app.topic(kafka.topic_raw, key_type=bytes, value_type=bytes)
        features = self.app.topic(kafka.topic_features, key_type=bytes, value_type=bytes)
        max_payload = max_dead_letter_payload(kafka.max_message_bytes)

        # raw -> features, on every worker.
        shared = None
        if settings.share_recent and settings.recent_texts > 0:
            shared = SharedResults(
                kafka.topic_recent,
                lambda: shared_results_producer(kafka),
                lambda apply: TopicReplica(
                    kafka,
                    kafka.topic_recent,
                    apply,
                    from_end=True,
                    following=self._following(kafka.topic_recent),
                ),
                self.enricher,
                self.metrics,
            )
        clean = CleanAgent(
            self.enricher,
            Forwarder(
                features,
                self.metrics,
                max_payload,
                # Unsent events wait in place while the flow is on; after that they are read again.
                keep_trying=lambda: not self.app.should_stop and self.app.flow_control.is_active(),
            ),
            TopicReplica(
                kafka,
                kafka.topic_boilerplate,
                self._apply_boilerplate,
                following=self._following(kafka.topic_boilerplate),
            ),
            self.metrics,
            lambda: bool(self.app.should_stop),
            batch=(settings.batch_size, settings.batch_seconds),
            shared=shared,
        )
        self.app.agent(raw, name="clean")(exit_on_failure("clean", clean.run))

        # features -> outputs, on the owner of the features partition.
        dedup_options = DedupOptions(
            story_threshold=settings.story_threshold,
            copy_containment=settings.copy_containment,
            split_threshold=settings.split_threshold,
            window_hours=settings.story_window_hours,
            closed_retention_hours=settings.closed_retention_hours,
        )
        snapshots = Snapshots(
            Path(settings.data_dir) / f"dedup-{settings.app_id}.snapshot",
            settings.snapshot_seconds,
            kafka.topic_dedup_state,
        )
        snapshots.on_event = lambda event: self.metrics.dedup_snapshots.labels(event).inc()
        self.writer = TransactionalWriter(
            kafka, settings.app_id, dedup_options, max_payload_bytes=max_payload, snapshots=snapshots
        )
        dedup = DedupAgent(
            self.writer,
            self.metrics,
            lambda: bool(self.app.should_stop),
            self._owns_features,
            batch=(settings.dedup_batch_size, settings.dedup_batch_seconds),
        )
        self.writer.generation = lambda: self.app.consumer_generation_id
        self.writer.fenced_wait_seconds = settings.session_timeout_seconds
        self._features_assigned = False  # between its assignment and its revocation
        self.writer.on_rebuilt = lambda _desk, seconds: dedup.observe_desk(seconds)
        self.app.agent(features, name="dedup")(exit_on_failure("dedup", dedup.run))

        self._lag_labels: set[tuple[str, str]] = set()
        self.app.timer(LAG_INTERVAL_SECONDS)(self._report_lag)
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    def _following(self, topic: str) -> Callable[[bool], None]:
        gauge = self.metrics.replica_following.labels(topic)
        gauge.set(0)
        return lambda following: gauge.set(1 if following else 0)

    def _apply_boilerplate(self, key: bytes, value: bytes | None) -> None:
        load_boilerplate(self.enricher.boilerplate, key, value)

    def _owns_features(self) -> bool:
        # From the revocation on, not the owner, though the consumer's assignment still lists the
        # partition until the next one: a producer the writer started then could fence the new owner.
        if not self._features_assigned:
            return False
        try:
            assigned = self.app.consumer.assignment()
        except Exception:  # noqa: BLE001 - no consumer (stopping): not the owner
            return False
        return _holds(assigned, self.kafka.topic_features)

    async def _on_revoked(self, app: Any, revoked: Any = (), **__: Any) -> None:  # noqa: ARG002
        # Another worker may own the features partition next: start afresh (a new producer, the desk
        # rebuilt from the state topic) when we get it back, rather than trust what may be stale.
        if _holds(revoked, self.kafka.topic_features):
            self._features_assigned = False
            self.writer.mark_stale()

    async def _on_assigned(self, app: Any, assigned: Any = (), **__: Any) -> None:  # noqa: ARG002
        # Every rebalance revokes all partitions first (aiokafka's eager protocol): only one that
        # gives the features partition to another worker makes the index theirs to report. A last
        # value left here would be counted with theirs (a dashboard's max() could never fall).
        self._features_assigned = _holds(assigned, self.kafka.topic_features)
        if not self._features_assigned:
            self.metrics.dedup_index_articles.set(0)
            self.metrics.dedup_stories_open.set(0)
        else:
            # Rebuilt now, not at the first input (which may be long in coming after a restart),
            # and not in this callback, which holds up the rebalance.
            self.writer.prepare_soon(lambda: bool(self.app.should_stop), self._owns_features)

    def watch_membership(self, interval: float = MEMBERSHIP_CHECK_SECONDS) -> threading.Thread:
        """Start a thread that exits the process if the consumer's group membership has failed for
        good, so that the worker's supervisor restarts it (as safe as a crash: nothing uncommitted
        is lost). A thread, not a Faust timer: Faust starts its timers only once it has partitions,
        and a failed membership never gets any."""

        membership = MembershipWatch(self.app)

        def watch() -> None:
            while True:
                time.sleep(interval)
                try:
                    failure = membership.failure()
                except Exception:  # noqa: BLE001 - a watch that dies would leave no watch
                    log.exception("checking the consumer's group membership failed")
                    continue
                if failure is not None:
                    log.critical(
                        "the Kafka consumer left its group for good (%s); exiting to be restarted", failure
                    )
                    logging.shutdown()
                    os._exit(EXIT_GROUP_FAILED)

        thread = threading.Thread(target=watch, name="membership-watch", daemon=True)
        thread.start()
        return thread

    async def _report_lag(self) -> None:
        """Set the lag of the pipeline's partitions this worker owns; forget those it no longer does
        (another worker reports them now: a stale value would be counted twice)."""
        consumer: Any = self.app.consumer
        reported = set()
        for tp in consumer.assignment():
            if tp.topic not in (self.kafka.topic_raw, self.kafka.topic_features):
                continue  # Faust's own (its assignor's leader topic)
            highwater = consumer.highwater(tp)
            position = consumer._read_offset.get(tp)  # noqa: SLF001 - faust exposes no public getter
            if highwater is not None:
                lag = max(0, highwater - (position + 1 if position is not None else 0))
                self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
                reported.add((tp.topic, str(tp.partition)))
        for labels in self._lag_labels - reported:
            self.metrics.consumer_lag.remove(*labels)
        self._lag_labels = reported


def load_enricher(settings: WorkerSettings, metrics: WorkerMetrics) -> Enricher:
    """Return the per-article stages with their models loaded and warmed up (before consuming)."""
    started = time.perf_counter()
    tagger = EntityTagger(
        settings.ner_model,
        max_chars=settings.ner_max_chars,
        batch_size=settings.batch_size,
        recent_texts=settings.recent_texts,
        share=settings.share_recent,
    )
    metrics.model_load_seconds.set(time.perf_counter() - started)
    log.info("NER model %s loaded in %.1fs", settings.ner_model, time.perf_counter() - started)
    # Several workers share a host's cores: BLAS threads in each would fight over them.
    # Parallelism comes from workers; a worker given two threads or more runs its two models side
    # by side, each with half of them (see enrich.py).
    per_model = max(1, settings.compute_threads // 2)
    threadpool_limits(per_model)
    started = time.perf_counter()
    encoder = TextEncoder.load(
        threads=per_model,
        precision=settings.embed_precision,
        recent_texts=settings.recent_texts,
        share=settings.share_recent,
        down=None
        if settings.embed_down == "auto" or settings.embed_precision != "int8"
        else settings.embed_down,
    )
    how = "by this CPU" if settings.embed_down == "auto" else "NEWSFLOW_WORKER_EMBED_DOWN"
    log.info(
        "embedding model (%s%s) loaded in %.1fs; %s",
        settings.embed_precision,
        f", feed-forward-down products: {encoder.down} ({how})" if encoder.down else "",
        time.perf_counter() - started,
        "it runs beside NER, on a thread of its own"
        if settings.compute_threads > 1
        else "it takes turns with NER (NEWSFLOW_WORKER_COMPUTE_THREADS=1)",
    )
    options = ExtractOptions(
        max_input_bytes=settings.max_input_bytes,
        max_parse_seconds=settings.max_parse_seconds,
        max_read_elements=settings.max_read_elements,
        min_article_words=settings.min_article_words,
    )
    started = time.perf_counter()
    warm_up(options)  # the parse bound must not pay for loading
    places.load()  # the entity stage's gazetteer, not in the first batch's time
    log.info("extraction and places warmed up in %.1fs", time.perf_counter() - started)
    return Enricher(
        options=options,
        tagger=tagger,
        encoder=encoder,
        learn_boilerplate=False,  # the writer learns; this enricher follows (see module docstring)
        on_stage_time=lambda stage, s: metrics.stage_seconds.labels(stage).observe(s),
        threads=settings.compute_threads,
    )


def faust_credentials(kafka: KafkaSettings) -> Any:
    """Return Faust's form of the Kafka security settings (None: plaintext)."""
    options = client_options(kafka)
    if kafka.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password,
            ssl_context=options.get("ssl_context"),
            mechanism=kafka.sasl_mechanism,
        )
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(options["ssl_context"])
    return None


# Batches read ahead per agent (Faust pauses a partition's fetches at 80 % of it, resumes at 40 %).
STREAM_BUFFER_BATCHES = 4


def faust_app(kafka: KafkaSettings, settings: WorkerSettings) -> App:
    """Return Faust's app with the fixes for records lost around a rebalance (transport.py)."""
    return App(
        settings.app_id,
        broker=";".join(f"kafka://{b.strip()}" for b in kafka.bootstrap.split(",")),
        broker_credentials=faust_credentials(kafka),
        store="memory://",  # no tables: the writer's state is its own compacted topics
        datadir=settings.data_dir,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=kafka.raw_partitions,
        topic_replication_factor=kafka.replication_factor,
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
        # Messages read ahead of the agents: a few batches, not Faust's 4,096 (raw pages of up to
        # the message size each, which a worker held in memory and its lag did not count).
        stream_buffer_maxsize=STREAM_BUFFER_BATCHES * max(settings.batch_size, settings.dedup_batch_size),
        self_committed_topics=[kafka.topic_features],
    )
