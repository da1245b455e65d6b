"""Every Prometheus metric the producer exports, declared in one place."""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from newsflow.producer.sources import SKIP_REASONS


class ProducerMetrics(NamedTuple):
    files: Counter
    bytes_sent: Counter
    send_errors: Counter
    send_seconds: Histogram
    forgotten: Counter
    oldest_unacknowledged: Gauge


# The outcomes a dashboard rate()s, created at 0 on start-up (as the worker's are), so that the
# first files after a deploy are seen as an increase, not as a series born already counted.
INITIAL_FILES = [("sent", ""), *(("skipped", reason) for reason in SKIP_REASONS)]


def create_metrics(registry: CollectorRegistry) -> ProducerMetrics:
    metrics = _declare(registry)
    for labels in INITIAL_FILES:
        metrics.files.labels(*labels)
    return metrics


def _declare(registry: CollectorRegistry) -> ProducerMetrics:
    return ProducerMetrics(
        files=Counter(
            "newsflow_producer_files_total",
            "Article files handled by the producer, by outcome and skip reason.",
            ["outcome", "reason"],
            registry=registry,
        ),
        bytes_sent=Counter("newsflow_producer_sent_bytes_total", "Payload bytes sent.", registry=registry),
        send_errors=Counter(
            "newsflow_producer_send_errors_total",
            "Sends that failed: refused (too large, not authorised), timed out with a partition's queue full while the broker is away, and articles of POST /articles requests answered 503; a short outage fails no send: see newsflow_producer_oldest_unacknowledged_send_seconds.",
            registry=registry,
        ),
        send_seconds=Histogram(
            "newsflow_producer_send_seconds",
            "Time from send to broker acknowledgement (acks=all).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        ),
        forgotten=Counter(
            "newsflow_producer_forgotten_files_total",
            "Sent files dropped from the watch state as gone (NEWSFLOW_PRODUCER_FORGET_HOURS).",
            registry=registry,
        ),
        oldest_unacknowledged=Gauge(
            "newsflow_producer_oldest_unacknowledged_send_seconds",
            "Age of the oldest article sent and not yet acknowledged by the broker (0: none waits).",
            registry=registry,
        ),
    )
