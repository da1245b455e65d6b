"""Helpers for tests against the real local broker: unique topics, a worker process, read-until."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from newsflow.pipeline import jsonio
from newsflow.producer.metrics import create_metrics
from newsflow.producer.publish import produce
from newsflow.producer.settings import ProducerSettings
from newsflow.settings import KafkaSettings, to_env
from newsflow.topics import committed_reader, create_topics, topic_partitions

# Long enough for a cold worker (Faust start-up, model load, first rebalance) on a loaded 2-core
# machine; short enough that a hang fails the test instead of CI's time budget.
RECV_TIMEOUT = 120.0
RUN_ID = uuid.uuid4().hex[:6]


def bootstrap() -> str:
    value = os.environ.get("NEWSFLOW_KAFKA_BOOTSTRAP")
    if not value:
        raise RuntimeError(
            "NEWSFLOW_KAFKA_BOOTSTRAP is not set: run the tests with `make test`, which starts Kafka"
        )
    return value


def unique_kafka(partitions: int = 4) -> KafkaSettings:
    """Return settings whose topics no other test uses."""
    suffix = uuid.uuid4().hex[:8]
    base = KafkaSettings(bootstrap=bootstrap(), raw_partitions=partitions)
    topics = {
        f.name: f"{getattr(base, f.name)}.{suffix}" for f in fields(base) if f.name.startswith("topic_")
    }
    return replace(base, **topics)


def ensure_topics(kafka: KafkaSettings) -> None:
    asyncio.run(create_topics(kafka))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kafka_env(kafka: KafkaSettings) -> dict[str, str]:
    return to_env(kafka)


def start_worker(
    kafka: KafkaSettings, log_path: Path, app_id: str, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `python -m newsflow.worker` against the test topics, logging to `log_path`."""
    env = {
        **os.environ,
        **kafka_env(kafka),
        # A fresh consumer group per run, as on a new deployment; tests that restart a worker
        # pass the same app_id within the run.
        "NEWSFLOW_WORKER_APP_ID": f"{app_id}-{RUN_ID}",
        "NEWSFLOW_WORKER_METRICS_PORT": "0",
        "NEWSFLOW_WORKER_DATA_DIR": str(log_path.parent / f"data-{app_id}"),
        **(extra_env or {}),
    }
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "newsflow.worker"], env=env, stdout=log, stderr=log)


def wait_for_group(kafka: KafkaSettings, app_id: str, members: int, timeout: float = RECV_TIMEOUT) -> None:
    """Wait until the consumer group of workers started with `app_id` is stable with `members`
    members: every worker has its partitions, and no rebalance is pending."""

    async def described() -> tuple[str, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            (response,) = await admin.describe_consumer_groups([f"{app_id}-{RUN_ID}"])
            (group,) = response.groups  # (error, id, state, protocol type, protocol, members, ...)
            return str(group[2]), len(group[5])
        finally:
            await admin.close()

    deadline = time.monotonic() + timeout
    while (state := asyncio.run(described())) != ("Stable", members):
        if time.monotonic() > deadline:
            raise AssertionError(f"group {app_id}: {state}, not stable with {members} members")
        time.sleep(1.0)


@contextlib.contextmanager
def worker_process(
    kafka: KafkaSettings, log_path: Path, app_id: str, extra_env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a worker (`start_worker`) for the block; stop it with SIGTERM afterwards."""
    proc = start_worker(kafka, log_path, app_id, extra_env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def produce_files(kafka: KafkaSettings, paths: list[Path], outlet: str | None = None) -> list[str]:
    """Send files with the real producer code; return the article ids sent."""
    ids: list[str] = []
    asyncio.run(
        produce(
            paths, kafka, ProducerSettings(), create_metrics(CollectorRegistry()), outlet=outlet, sent_ids=ids
        )
    )
    return ids


def send_raw(
    kafka: KafkaSettings,
    messages: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]],
    topic: str | None = None,
) -> None:
    """Send hand-made messages (key, value, headers), e.g. malformed ones, to `topic` (default raw)."""

    async def run() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap, acks="all", max_request_size=kafka.max_message_bytes
        )
        await producer.start()
        try:
            for key, value, headers in messages:
                await producer.send_and_wait(topic or kafka.topic_raw, value=value, key=key, headers=headers)
        finally:
            await producer.stop()

    asyncio.run(run())


def read_event_attributes(kafka: KafkaSettings, topic: str, want: int) -> list[dict[str, str]]:
    """Read the CloudEvents attributes (record headers) of the first `want` records of `topic`."""
    from newsflow.pipeline.cloudevents import as_dict

    async def run() -> list[dict[str, str]]:
        consumer = committed_reader(kafka, topic)
        await consumer.start()
        out: list[dict[str, str]] = []
        deadline = time.monotonic() + RECV_TIMEOUT
        try:
            while len(out) < want and time.monotonic() < deadline:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    out += [as_dict(m.headers) for m in messages]
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def read_records(
    kafka: KafkaSettings,
    topic: str,
    want: int,
    timeout: float = RECV_TIMEOUT,
    worker: subprocess.Popen[bytes] | None = None,
    done: Callable[[list[tuple[str, dict[str, Any]]]], bool] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Read (key, JSON record) pairs from the start of `topic` until `want` have arrived.

    `done`, when given, decides instead of the count (e.g. "every article seen at least once").
    """
    finished = done or (lambda records: len(records) >= want)

    async def run() -> list[tuple[str, dict[str, Any]]]:
        # As the README asks of consumers: a retried transaction's aborted records are not output.
        consumer = committed_reader(kafka, topic)
        await consumer.start()
        out: list[tuple[str, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout
        try:
            while not finished(out) and time.monotonic() < deadline:
                if worker is not None and worker.poll() is not None:
                    raise AssertionError(f"worker exited with {worker.returncode}")
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    out += [(m.key.decode() if m.key else "", jsonio.loads(m.value)) for m in messages]
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def trace_missing(kafka: KafkaSettings, app_id: str, have: set[str]) -> str:
    """Say where the raw articles whose ids are not in `have` went: to the features topic (and as
    what), to the dead-letter topic, and whether the committed offsets of the workers started
    with `app_id` passed them.

    For a test that counted fewer outputs than inputs: its failure then tells a loss in the
    clean stage from one in the writer, or a dead letter, instead of only a count.
    """

    async def run() -> str:
        raw = await _read_all(kafka, kafka.topic_raw)
        features = {k.decode(): v for _, _, k, v in await _read_all(kafka, kafka.topic_features)}
        dead = {k.decode() for _, _, k, _ in await _read_all(kafka, kafka.topic_dead_letter)}
        group_id = f"{app_id}-{RUN_ID}"
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            committed = {
                (tp.topic, tp.partition): meta.offset
                for tp, meta in (await admin.list_consumer_group_offsets(group_id)).items()
            }
        finally:
            await admin.close()
        lines = [f"committed offsets of {group_id}: {sorted(committed.items())}"]
        for partition, offset, key, _ in raw:
            article_id = key.decode()
            if article_id in have:
                continue
            where = committed.get((kafka.topic_raw, partition), -1)
            value = features.get(article_id)
            kind = jsonio.loads(value).get("kind") if value else None
            lines.append(
                f"{article_id}: raw {partition}@{offset} (committed {where}); "
                f"features: {kind or 'none'}; dead letter: {article_id in dead}"
            )
        return "\n".join(lines)

    return asyncio.run(run())


async def _read_all(kafka: KafkaSettings, topic: str) -> list[tuple[int, int, bytes, bytes]]:
    """(partition, offset, key, value) of every committed record of `topic`, up to its end."""
    consumer = committed_reader(kafka)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic)
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[tuple[int, int, bytes, bytes]] = []
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                for m in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, ()):
                    out.append((tp.partition, m.offset, m.key or b"", m.value or b""))
        return out
    finally:
        await consumer.stop()


def counter(port: int, name: str, **labels: str) -> float:
    """The sum of a worker's series of `name` (a counter without its _total, or a gauge) with
    these labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        if family.name == name
        for s in family.samples
        if s.name in (name, f"{name}_total") and all(s.labels.get(k) == v for k, v in labels.items())
    )


def wait_until(check, what: str, timeout: float = 120.0) -> None:  # noqa: ANN001
    """Wait until `check()` is true (a worker whose metrics are not served yet: not yet)."""
    deadline = time.monotonic() + timeout
    while not _holds(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so within {timeout:.0f}s")
        time.sleep(0.5)


def _holds(check) -> bool:  # noqa: ANN001
    try:
        return bool(check())
    except OSError:  # a worker's metrics not served yet
        return False
