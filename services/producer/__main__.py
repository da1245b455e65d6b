"""newsflow-producer: publish article files (.txt, .html, .json, optionally .gz) to the raw topic.

    newsflow-producer seeds/                 # one pass, then a one-line summary
    newsflow-producer --outlet metro a.html  # force the outlet of every file
    NEWSFLOW_PRODUCER_WATCH_SECONDS=5 newsflow-producer /input   # keep sending new files

Each file becomes one message: key = stable article id, value = the file's bytes, headers =
article-id, source-path, outlet, content-type, received-at. Idempotent producer, acks=all.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections import Counter as Tally
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, start_http_server

from newsflow.pipeline.records import RawArticle, raw_headers
from newsflow.producer.files import Skipped, iter_files, read_article
from newsflow.producer.metrics import ProducerMetrics, create_metrics
from newsflow.producer.settings import ProducerSettings
from newsflow.settings import KafkaSettings, SettingsError, env_help, from_env
from newsflow.topics import wait_for_broker

log = logging.getLogger("newsflow.producer")


async def produce(
    paths: list[Path],
    kafka: KafkaSettings,
    settings: ProducerSettings,
    metrics: ProducerMetrics,
    outlet: str | None = None,
    stop: asyncio.Event | None = None,
    sent_ids: list[str] | None = None,
) -> Tally[str]:
    """Send every readable article file under `paths`; return counts of sent and skipped-by-reason.

    The ids of the articles sent are appended to `sent_ids` when it is given.
    """
    stop = stop or asyncio.Event()
    tally: Tally[str] = Tally()
    seen: dict[Path, tuple[int, int]] = {}
    await wait_for_broker(kafka.bootstrap, timeout=30)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=settings.linger_ms,
        max_request_size=kafka.max_message_bytes,
        client_id="newsflow-producer",
    )
    await producer.start()
    try:
        while True:
            pending = []
            for root, path in iter_files(paths):
                st = path.stat()
                if seen.get(path) == (st.st_mtime_ns, st.st_size):
                    continue
                seen[path] = (st.st_mtime_ns, st.st_size)
                item = read_article(root, path, outlet, settings.max_file_bytes)
                if isinstance(item, Skipped):
                    tally[f"skipped:{item.reason}"] += 1
                    metrics.files.labels("skipped", item.reason).inc()
                    log.warning("skipped %s: %s", item.path, item.reason)
                    continue
                started = time.perf_counter()
                try:
                    fut = await producer.send(
                        kafka.topic_raw,
                        value=item.payload,
                        key=item.article_id.encode(),
                        headers=raw_headers(item),
                    )
                except KafkaError as exc:  # refused before sending, e.g. over max_request_size
                    _count_failure(tally, metrics, item, exc)
                    continue
                pending.append((item, fut, started))
            for item, fut, started in pending:
                try:
                    await fut
                except KafkaError as exc:
                    _count_failure(tally, metrics, item, exc)
                    continue
                metrics.send_seconds.observe(time.perf_counter() - started)
                metrics.bytes_sent.inc(len(item.payload))
                metrics.files.labels("sent", "").inc()
                tally["sent"] += 1
                if sent_ids is not None:
                    sent_ids.append(item.article_id)
                log.info(
                    "sent %s (%s, %d bytes) as %s",
                    item.source.path,
                    item.source.outlet,
                    len(item.payload),
                    item.article_id,
                )
            if settings.watch_seconds <= 0 or stop.is_set():
                break
            try:
                await asyncio.wait_for(stop.wait(), timeout=settings.watch_seconds)
            except TimeoutError:
                pass
    finally:
        await producer.stop()
    return tally


def _count_failure(tally: Tally[str], metrics: ProducerMetrics, item: RawArticle, exc: Exception) -> None:
    tally["failed"] += 1
    metrics.send_errors.inc()
    metrics.files.labels("failed", type(exc).__name__).inc()
    log.error("send of %s failed: %s", item.source.path, exc)


def summary_line(tally: Tally[str]) -> str:
    """Return e.g. 'sent 2, skipped 1 (empty: 1)'."""
    skipped = {k.split(":", 1)[1]: v for k, v in sorted(tally.items()) if k.startswith("skipped:")}
    line = f"sent {tally['sent']}, skipped {sum(skipped.values())}"
    if skipped:
        line += " (" + ", ".join(f"{k}: {v}" for k, v in skipped.items()) + ")"
    if tally["failed"]:
        line += f", failed {tally['failed']}"
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="newsflow-producer",
        description="Publish article files (.txt, .html, .json, and the same with .gz) to the raw Kafka topic.",
        epilog=env_help(KafkaSettings, ProducerSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", type=Path, help="files or directories (searched recursively)")
    parser.add_argument(
        "--outlet", help="outlet of every file (default: first folder below the given directory)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        sys.stderr.write(f"newsflow-producer: error: no such file or directory: {', '.join(missing)}\n")
        return 2
    try:
        kafka = from_env(KafkaSettings)
        settings = from_env(ProducerSettings)
    except SettingsError as exc:
        sys.stderr.write(f"newsflow-producer: error: {exc}\n")
        return 2
    registry = CollectorRegistry()
    metrics = create_metrics(registry)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=registry)

    async def run() -> Tally[str]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await produce(args.paths, kafka, settings, metrics, args.outlet, stop)

    try:
        tally = asyncio.run(run())
    except (TimeoutError, KafkaError) as exc:
        sys.stderr.write(f"newsflow-producer: error: cannot reach Kafka at {kafka.bootstrap}: {exc}\n")
        return 1
    print(summary_line(tally))
    return 1 if tally["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
