"""The worker's metrics keep their label sets bounded, and start at zero where dashboards rate them."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from newsflow.settings import KafkaSettings
from newsflow.worker.app import WorkerApp
from newsflow.worker.metrics import MAX_OUTLET_LABEL_CHARS, OTHER_OUTLETS, OutletLabels, create_metrics
from tests.conftest import ROOT


def test_outlets_beyond_the_limit_share_one_label():
    label = OutletLabels(limit=2)
    assert [label(o) for o in ("a.example", "b.example", "c.example", "a.example")] == [
        "a.example",
        "b.example",
        OTHER_OUTLETS,
        "a.example",
    ]
    assert label.known == {"a.example", "b.example"}


def test_an_outlet_label_is_printable_and_bounded_whatever_the_input_names():
    label = OutletLabels()
    assert label("Z" * 100_000) == "Z" * MAX_OUTLET_LABEL_CHARS
    shown = label("evil\n\x00\u202e\x1b[31m outlet")
    assert shown.isprintable() and "outlet" in shown and len(label.known) == 2


class _Consumer:
    """What `_report_lag` reads of Faust's consumer: the assignment, high watermarks, positions."""

    def __init__(self, assigned: dict[TopicPartition, tuple[int, int]]) -> None:
        self.assigned = assigned
        self._read_offset = {tp: position for tp, (_, position) in assigned.items()}

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def highwater(self, tp: TopicPartition) -> int:
        return self.assigned[tp][0]


def test_lag_is_reported_for_owned_pipeline_partitions_only_and_forgotten_when_revoked():
    registry = CollectorRegistry()
    kafka = KafkaSettings()
    raw0, raw1 = TopicPartition(kafka.topic_raw, 0), TopicPartition(kafka.topic_raw, 1)
    assignor = TopicPartition("newsflow-worker-__assignor-__leader", 0)
    worker = SimpleNamespace(kafka=kafka, metrics=create_metrics(registry), _lag_labels=set(), app=None)

    def lag(tp: TopicPartition) -> float | None:
        labels = {"topic": tp.topic, "partition": str(tp.partition)}
        return registry.get_sample_value("newsflow_worker_consumer_lag_messages", labels)

    worker.app = SimpleNamespace(consumer=_Consumer({raw0: (10, 4), raw1: (7, 6), assignor: (3, 0)}))
    asyncio.run(WorkerApp._report_lag(worker))
    assert (lag(raw0), lag(raw1), lag(assignor)) == (5, 0, None)

    worker.app = SimpleNamespace(consumer=_Consumer({raw1: (9, 6)}))  # raw0 went to another worker
    asyncio.run(WorkerApp._report_lag(worker))
    assert (lag(raw0), lag(raw1)) == (None, 2)


def test_a_worker_that_loses_the_features_partition_stops_reporting_the_index():
    registry = CollectorRegistry()
    kafka = KafkaSettings()
    stale: list[bool] = []
    prepared: list[bool] = []
    worker = SimpleNamespace(
        kafka=kafka,
        metrics=create_metrics(registry),
        writer=SimpleNamespace(
            mark_stale=lambda: stale.append(True),
            prepare_soon=lambda _should_stop, _owns: prepared.append(True),
        ),
        app=SimpleNamespace(should_stop=False),
        _owns_features=lambda: True,
    )
    worker.metrics.dedup_index_articles.set(5000)
    worker.metrics.dedup_stories_open.set(1200)

    def gauges() -> tuple[float | None, float | None]:
        return (
            registry.get_sample_value("newsflow_dedup_index_articles"),
            registry.get_sample_value("newsflow_dedup_stories_open"),
        )

    features, raw = TopicPartition(kafka.topic_features, 0), TopicPartition(kafka.topic_raw, 0)
    # A rebalance revokes everything, then assigns: the writer that keeps its partition keeps reporting.
    asyncio.run(WorkerApp._on_revoked(worker, None, revoked={features, raw}))
    asyncio.run(WorkerApp._on_assigned(worker, None, assigned={features, raw}))
    # rebuilt at once (`TransactionalWriter.prepare_soon`), not at its next batch
    assert gauges() == (5000, 1200) and stale == [True] and prepared == [True]
    asyncio.run(WorkerApp._on_revoked(worker, None, revoked={features, raw}))
    asyncio.run(WorkerApp._on_assigned(worker, None, assigned={raw}))
    assert gauges() == (0, 0) and prepared == [True]  # the new owner reports the index


def test_from_its_revocation_a_worker_does_not_own_the_features_partition_though_its_consumer_lists_it():
    # aiokafka's assignment keeps the revoked partitions until the next assignment: a writer that
    # trusted it could start a producer then, and fence the partition's new owner.
    kafka = KafkaSettings()
    features, raw = TopicPartition(kafka.topic_features, 0), TopicPartition(kafka.topic_raw, 0)
    listed = {features, raw}
    worker = SimpleNamespace(
        kafka=kafka,
        metrics=create_metrics(CollectorRegistry()),
        writer=SimpleNamespace(mark_stale=lambda: None, prepare_soon=lambda _stop, _owns: None),
        app=SimpleNamespace(should_stop=False, consumer=SimpleNamespace(assignment=lambda: listed)),
        _features_assigned=False,
    )

    def owns() -> bool:
        return WorkerApp._owns_features(worker)  # type: ignore[arg-type]

    worker._owns_features = owns
    assert not owns()  # before its first assignment
    asyncio.run(WorkerApp._on_assigned(worker, None, assigned={features, raw}))
    assert owns()
    asyncio.run(WorkerApp._on_revoked(worker, None, revoked={features, raw}))
    assert not owns()  # the consumer still lists it
    asyncio.run(WorkerApp._on_assigned(worker, None, assigned={raw}))
    listed.discard(features)
    assert not owns()
    asyncio.run(WorkerApp._on_revoked(worker, None, revoked={raw}))
    asyncio.run(WorkerApp._on_assigned(worker, None, assigned={features}))
    listed.add(features)
    assert owns()


def test_a_writer_that_lost_the_partition_reports_no_index_from_a_late_batch_or_rebuild():
    from newsflow.pipeline.desk import DedupDesk
    from newsflow.worker.agents import DedupAgent

    registry = CollectorRegistry()
    owns = [True]
    desk = DedupDesk()
    agent = DedupAgent(
        SimpleNamespace(desk=desk),  # type: ignore[arg-type]
        create_metrics(registry),
        lambda: False,
        lambda: owns[0],
        batch=(32, 1.0),
    )
    agent.observe_desk(2.5)
    assert registry.get_sample_value("newsflow_dedup_rebuild_seconds") == 2.5
    owns[0] = False  # its assignment has set the gauges to 0; a rebuild ends after that
    agent.metrics.dedup_index_articles.set(0)
    desk.index.articles["a"] = None  # type: ignore[assignment]  # (only its size is read)
    agent.observe_desk(1.0)
    agent.count([])
    assert registry.get_sample_value("newsflow_dedup_index_articles") == 0
    assert registry.get_sample_value("newsflow_dedup_rebuild_seconds") == 2.5


def test_a_fresh_worker_reports_zero_dead_letters_for_every_reason_not_no_data():
    registry = CollectorRegistry()
    create_metrics(registry)
    reasons = json.loads((ROOT / "schemas" / "dead-letter.schema.json").read_text())["properties"]["reason"][
        "enum"
    ]
    found = {
        sample.labels["reason"]
        for family in registry.collect()
        if family.name == "newsflow_worker_dead_letters"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.value == 0
    }
    assert found == set(reasons)


def test_the_worker_reads_a_few_batches_ahead_not_thousands_of_pages():
    from newsflow.worker.app import faust_app
    from newsflow.worker.settings import WorkerSettings

    settings = WorkerSettings()
    app = faust_app(KafkaSettings(), settings)
    # Raw pages up to the message size each: Faust's default buffer (4,096) could hold gigabytes,
    # and the consumer lag would not count them.
    assert app.conf.stream_buffer_maxsize == 4 * max(settings.batch_size, settings.dedup_batch_size) <= 256


def test_the_worker_app_refuses_faust_tables():
    # Without tables Faust's recovery only resumes the streams; with one, records fetched while
    # its recovery ends are lost (faust-streaming #596), which nothing here guards against now.
    from newsflow.worker.app import faust_app
    from newsflow.worker.settings import WorkerSettings

    app = faust_app(KafkaSettings(), WorkerSettings())
    for make in (app.Table, app.GlobalTable, app.SetTable, app.SetGlobalTable):
        with pytest.raises(NotImplementedError, match="#596"):
            make("seen")


def test_every_series_a_dashboard_rates_starts_at_zero_before_its_first_count():
    """rate() cannot see a series' first value: a series that appears already counted (the
    first rejected message, an outlet's first empty article) would be missed by the throughput
    panel and the NewsflowOutletExtractionEmpty alert. Every extraction status (the schema's),
    every stage's rejections, and an outlet's statuses from its first article on exist at 0."""
    from newsflow.worker.agents import Forwarder

    registry = CollectorRegistry()
    metrics = create_metrics(registry)
    statuses = json.loads((ROOT / "schemas" / "enriched-article.schema.json").read_text())["properties"][
        "extraction"
    ]["properties"]["status"]["enum"]

    def samples(name: str) -> dict[tuple[str, ...], float]:
        return {
            tuple(s.labels.values()): s.value
            for family in registry.collect()
            if family.name == name
            for s in family.samples
            if s.name.endswith("_total")
        }

    messages = samples("newsflow_worker_messages")
    assert {("extract", status) for status in statuses} <= set(messages)
    assert {(stage, "rejected") for stage in ("decode", "extract", "enrich", "dedup")} <= set(messages)
    assert set(messages.values()) == {0}
    forwarder = Forwarder(None, metrics, 1_000_000, lambda: True)
    # (What it reads of a cleaned article.)
    article = SimpleNamespace(
        source=SimpleNamespace(outlet="harbourtimes"),
        extraction=SimpleNamespace(status="ok", boilerplate_removed=0),
        text="Some text.",
    )
    forwarder._count_extraction(article)
    by_outlet = samples("newsflow_extraction_articles")
    assert by_outlet == {("harbourtimes", s): (1.0 if s == "ok" else 0.0) for s in statuses}
