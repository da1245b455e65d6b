"""newsflow-worker: the Faust worker that cleans, tags and groups articles.

    newsflow-worker                  # consume the raw topic until SIGINT/SIGTERM
    NEWSFLOW_KAFKA_BOOTSTRAP=kafka:9092 NEWSFLOW_WORKER_METRICS_PORT=9101 newsflow-worker

Start it, then send files with `newsflow-producer PATH`. Scale by starting more workers with the
same NEWSFLOW_WORKER_APP_ID: they share the raw topic's partitions, whatever the outlets.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
from typing import Any

from newsflow.settings import CommandLine, KafkaSettings, LogSettings, env_help, load_settings_or_exit
from newsflow.worker.settings import WorkerSettings


def _force_exit(seconds: float) -> None:
    sys.stderr.write(
        f"newsflow-worker: stopping took over {seconds:g}s (is Kafka unreachable?); exiting now. "
        "Nothing is lost: what was not committed is read again by the next worker.\n"
    )
    sys.stderr.flush()
    os._exit(1)


def _bounded_stop_worker(base: type[Any], seconds: float) -> type[Any]:
    """Return a faust.Worker class whose stop, once asked for by a signal, takes at most `seconds`.

    Faust's own stop waits for Kafka to take its last commits and sends, which never happens while
    the broker is unreachable. Exiting then is as safe as a crash: the dedup writer's transactions
    and the uncommitted offsets make the next worker redo exactly what was not done.
    """

    class Worker(base):  # type: ignore[misc]
        def _schedule_shutdown(self, signal: Any) -> None:  # mode.Worker's signal handler
            if not getattr(self, "_stop_timer", None):
                self._stop_timer = threading.Timer(seconds, _force_exit, (seconds,))
                self._stop_timer.daemon = True
                self._stop_timer.start()
            super()._schedule_shutdown(signal)

    return Worker


def main(argv: list[str] | None = None) -> int:
    parser = CommandLine(
        prog="newsflow-worker",
        description="Run the newsflow Faust worker (raw topic -> enriched, stories and dead-letter topics).",
        epilog=env_help(KafkaSettings, LogSettings, WorkerSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    kafka, logging_, settings = load_settings_or_exit(
        "newsflow-worker", KafkaSettings, LogSettings, WorkerSettings
    )
    # Imported only now: Faust, the models and their libraries take a second or two to load, and
    # `--help` or a bad setting should not wait for them.
    import faust
    from prometheus_client import start_http_server

    from newsflow.logs import escape_controls, limit_repeats
    from newsflow.pipeline.embed import ModelNotInstalled
    from newsflow.registry import service_registry
    from newsflow.topics import (
        BrokerRefused,
        TopicCreationError,
        TopicLayoutError,
        create_topics,
        topic_specs,
    )
    from newsflow.worker.app import WorkerApp

    escape_controls()  # names in messages come from inputs
    limit_repeats()  # the Kafka client's retries while the broker is away: one line each per 30 s
    registry = service_registry()
    # Served first: a worker that dies loading its models or waiting for the broker has shown its
    # start time (alert NewsflowRestarting) and memory by then; its own metrics join as they are made.
    if settings.metrics_port:
        try:
            start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
        except OSError as exc:
            sys.stderr.write(
                f"newsflow-worker: error: cannot serve /metrics on {settings.metrics_host}:{settings.metrics_port}: {exc}\n"
            )
            return 2
    try:
        worker_app = WorkerApp(kafka, settings, registry)
    except (ModelNotInstalled, OSError) as exc:  # spaCy raises OSError for a model it cannot find
        sys.stderr.write(f"newsflow-worker: error: cannot load a model: {exc}\n")
        return 2
    try:
        asyncio.run(create_topics(kafka, topic_specs(kafka)))
    except (TimeoutError, BrokerRefused, TopicCreationError, TopicLayoutError) as exc:
        sys.stderr.write(f"newsflow-worker: error: {exc}\n")
        return 1
    worker = _bounded_stop_worker(faust.Worker, settings.stop_seconds)(
        worker_app.app, loglevel=logging_.level.upper(), quiet=True
    )
    worker.spinner = None  # a terminal spinner only garbles logs in files and containers
    worker_app.watch_membership()
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
