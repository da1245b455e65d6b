"""The stack as an operator runs it: Kafka, a worker with /metrics, and Debian's Prometheus scraping it."""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from newsflow.pipeline import jsonio
from newsflow.producer.metrics import create_metrics
from newsflow.producer.publish import produce
from newsflow.producer.settings import ProducerSettings
from newsflow.settings import KafkaSettings
from newsflow.web.service import follow_metrics
from tests.conftest import SEEDS
from tests.e2e.deploy_helpers import RULES, dashboard_metric_names, exported_names, rule_metric_names
from tests.integration.kafka_helpers import free_port, read_records, send_raw, worker_process

# Prometheus needs a few scrapes after the counters move; 1 s scrapes make that seconds.
SCRAPE_SECONDS = 1
QUERY_TIMEOUT = 60.0


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return bytes(response.read())


@contextlib.contextmanager
def prometheus(tmp_path: Path, target: str) -> Iterator[str]:
    port = free_port()
    config = {
        "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": f"{SCRAPE_SECONDS}s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "newsflow-worker", "static_configs": [{"targets": [target]}]}],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config_path}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if http_get(f"{url}/-/ready"):
                    break
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def query(url: str, promql: str) -> list[dict[str, Any]]:
    body = http_get(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    data = jsonio.loads(body)
    assert data["status"] == "success", data
    return list(data["data"]["result"])


def wait_for_value(url: str, promql: str, at_least: float) -> float:
    deadline = time.monotonic() + QUERY_TIMEOUT
    value = 0.0
    while time.monotonic() < deadline:
        result = query(url, promql)
        value = sum(float(r["value"][1]) for r in result)
        if value >= at_least:
            return value
        time.sleep(SCRAPE_SECONDS)
    raise AssertionError(f"{promql} stayed at {value} < {at_least}")


@pytest.mark.prometheus
def test_prometheus_sees_counters_and_histograms_move(kafka: KafkaSettings, worker_log: Path, tmp_path: Path):
    port = free_port()
    with worker_process(kafka, worker_log, "e2e-prom", {"NEWSFLOW_WORKER_METRICS_PORT": str(port)}) as worker:
        with prometheus(tmp_path, f"127.0.0.1:{port}") as prom:
            registry = CollectorRegistry()
            ids: list[str] = []
            import asyncio

            asyncio.run(produce([SEEDS], kafka, ProducerSettings(), create_metrics(registry), sent_ids=ids))
            send_raw(kafka, [(b"bad-1", bytes(range(256)) * 8, [("content-type", b"text/plain")])])
            read_records(kafka, kafka.topic_enriched, want=len(ids), worker=worker)
            read_records(kafka, kafka.topic_dead_letter, want=1, worker=worker)
            out = wait_for_value(prom, 'sum(newsflow_worker_messages_total{stage="output",outcome="out"})', 2)
            assert out == 2
            assert wait_for_value(prom, "sum(newsflow_worker_end_to_end_seconds_count)", 2) == 2
            assert wait_for_value(prom, 'sum(newsflow_worker_stage_seconds_count{stage="extract"})', 2) >= 2
            assert (
                wait_for_value(prom, 'sum(newsflow_dedup_decisions_total{decision="joined_story"})', 1) == 1
            )
            assert wait_for_value(prom, "newsflow_ner_model_load_seconds", 0.01) > 0
            # Which arithmetic the embedding model runs (a fleet can mix int8 and float32 workers).
            assert wait_for_value(prom, 'newsflow_build_info{embed_precision="int8"}', 1) == 1
            # Two different texts: each run through the models, none answered from recent texts.
            assert wait_for_value(prom, 'count(newsflow_stage_reused_total{stage="features"})', 1) == 1
            assert query(prom, 'sum(newsflow_stage_reused_total{stage="features"})')[0]["value"][1] == "0"
            # The seeds' outlet (a flat folder: "unknown"), its two articles and their text.
            seeds = 'sum(newsflow_extraction_articles_total{outlet="unknown",status="ok"})'
            assert wait_for_value(prom, seeds, 2) == 2
            assert (
                wait_for_value(prom, 'sum(newsflow_extraction_text_chars_total{outlet="unknown"})', 2000)
                > 2000
            )
            dead = 'sum(newsflow_worker_dead_letters_total{stage="extract",reason="undecodable"})'
            assert wait_for_value(prom, dead, 1) == 1
            assert query(prom, 'up{job="newsflow-worker"}')[0]["value"][1] == "1"
            # The process's own: memory against the container's limit, restarts (NewsflowRestarting).
            assert wait_for_value(prom, "process_resident_memory_bytes", 100e6) > 100e6  # models loaded
            assert query(prom, "process_start_time_seconds")
            # lag is sampled by a timer; every assigned partition of the raw topic reports one
            assert (
                wait_for_value(
                    prom, f'count(newsflow_worker_consumer_lag_messages{{topic="{kafka.topic_raw}"}})', 4
                )
                == 4
            )
            # the recording rules evaluate against the live series
            deadline = time.monotonic() + QUERY_TIMEOUT
            while not query(prom, "newsflow:output_articles:rate5m") and time.monotonic() < deadline:
                time.sleep(SCRAPE_SECONDS)
            assert query(prom, "newsflow:output_articles:rate5m")
            worker_metrics = http_get(f"http://127.0.0.1:{port}/metrics").decode()
    web = CollectorRegistry()  # the stories view's follower (its HTTP histogram is in no rule or panel)
    follow_metrics(web)
    exported = (
        exported_names(worker_metrics)
        | exported_names(generate_latest(registry).decode())
        | exported_names(generate_latest(web).decode())
    )
    missing_in_dashboards = sorted(dashboard_metric_names() - exported)
    assert missing_in_dashboards == [], f"dashboard queries metrics nobody exports: {missing_in_dashboards}"
    missing_in_rules = sorted(rule_metric_names() - exported)
    assert missing_in_rules == [], f"alert rules use metrics nobody exports: {missing_in_rules}"
    assert any(name.startswith("newsflow_faust_") for name in exported)  # Faust's sensors share the registry
