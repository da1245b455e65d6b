"""newsflow-producer: send articles to the raw topic from files, folders, archives, stdin or HTTP.

    newsflow-producer seeds/                      # one pass over a folder, then a summary
    newsflow-producer CC-NEWS-2026...warc.gz      # every HTML response record of a WARC archive
    newsflow-producer articles.jsonl.gz -         # JSON Lines envelopes, from a file and from stdin
    newsflow-producer --watch /input              # send each new or changed file once, until stopped
    newsflow-producer --serve                     # POST /articles on NEWSFLOW_PRODUCER_HTTP_PORT

Inputs: .html/.htm/.txt/.json files (each one article, .gz too), .jsonl/.ndjson (one envelope
{url, outlet, html|text, title, published, authors} a line, .gz too), .warc/.warc.gz. The outlet of a
file is the first folder below the folder given (input/<outlet>/file.html) or --outlet; of a WARC
record, its host. Every item ends as sent, skipped (with a reason) or failed, counted in the summary
and in metrics; a bad file never stops the run. Exit status: 0, or 1 when a send failed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, start_http_server

from newsflow.logs import configure as configure_logging
from newsflow.logs import escape_controls, limit_repeats
from newsflow.producer.http import serve
from newsflow.producer.metrics import ProducerMetrics, create_metrics
from newsflow.producer.publish import Progress, Publisher, Tally, broker_ready, produce
from newsflow.producer.settings import ProducerSettings
from newsflow.producer.sources import INPUTS_HELP, STDIN, outlet_argument, unusable_paths
from newsflow.producer.watch import watch
from newsflow.registry import service_registry
from newsflow.settings import CommandLine, KafkaSettings, LogSettings, env_help, load_settings_or_exit
from newsflow.topics import MissingTopic

PROG = "newsflow-producer"
log = logging.getLogger("newsflow.producer")
# --serve: how long a stop waits for the broker to acknowledge what is in flight.
SERVE_STOP_SECONDS = 5.0


def _parser() -> argparse.ArgumentParser:
    parser = CommandLine(
        prog=PROG,
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=INPUTS_HELP + "\n\n" + env_help(KafkaSettings, LogSettings, ProducerSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", help="files, folders, archives; '-' reads JSON Lines from stdin")
    parser.add_argument(
        "--outlet",
        type=outlet_argument,
        help="outlet of every article (default: an envelope's own, else the folder's, else the host)",
    )
    parser.add_argument("--watch", action="store_true", help="keep watching the given folders")
    parser.add_argument(
        "--serve", action="store_true", help="serve POST /articles (NEWSFLOW_PRODUCER_HTTP_PORT)"
    )
    parser.add_argument("--polling", action="store_true", help="watch by polling, not inotify")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    return parser


async def _serve(
    kafka: KafkaSettings,
    settings: ProducerSettings,
    metrics: ProducerMetrics,
    registry: CollectorRegistry,
    stop: asyncio.Event,
) -> Tally:
    tally = Tally()
    if not await broker_ready(kafka, stop):
        return tally
    publisher = Publisher(kafka, settings, metrics, tally, Progress(tally, enabled=False))
    await publisher.start()
    try:
        await serve(
            publisher,
            registry,
            settings.host,
            settings.http_port,
            settings.http_max_body_bytes,
            settings.max_file_bytes,
            stop,
        )
    finally:
        # Sends still unacknowledged at a stop belong to requests answered 503 (safe to send
        # again): with Kafka away they would hold the stop for ever.
        try:
            await asyncio.wait_for(publisher.stop(), SERVE_STOP_SECONDS)
        except TimeoutError:
            log.warning("stopped with sends Kafka had not acknowledged (their requests were answered 503)")
    return tally


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    (log_settings,) = load_settings_or_exit(PROG, LogSettings)
    configure_logging(log_settings.level, quiet=args.quiet)
    limit_repeats()
    escape_controls()
    if not args.paths and not args.serve:
        sys.stderr.write(f"{PROG}: error: give files, folders or '-', or --serve\n")
        return 2
    if unusable := unusable_paths(args.paths):
        sys.stderr.write(f"{PROG}: error: {unusable}\n")
        return 2
    kafka, settings = load_settings_or_exit(PROG, KafkaSettings, ProducerSettings)
    if unsendable := settings.unsendable_with(kafka):
        sys.stderr.write(f"{PROG}: error: {unsendable}\n")
        return 2
    if args.serve and not settings.http_port:
        sys.stderr.write(f"{PROG}: error: --serve needs a port: set NEWSFLOW_PRODUCER_HTTP_PORT\n")
        return 2
    watching = args.watch or settings.watch_seconds > 0
    if watching and args.paths and not all(p != STDIN and Path(p).is_dir() for p in args.paths):
        sys.stderr.write(
            f"{PROG}: error: watch mode takes folders (--watch or NEWSFLOW_PRODUCER_WATCH_SECONDS)\n"
        )
        return 2
    registry = service_registry()
    metrics = create_metrics(registry)
    if settings.metrics_port:
        try:
            start_http_server(settings.metrics_port, addr=settings.host, registry=registry)
        except OSError as exc:  # the port taken, an address not of this host
            sys.stderr.write(
                f"newsflow-producer: error: cannot serve /metrics on {settings.host}:{settings.metrics_port}: {exc}\n"
            )
            return 2

    stopped_by: list[int] = []
    names: list[str] = []  # of the jobs run, each with a tally of its own

    def stopping(stop: asyncio.Event, signum: int) -> None:
        stopped_by.append(signum)
        stop.set()

    async def run() -> list[Tally]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping, stop, sig)
        jobs = []
        if args.serve:
            names.append("HTTP ingest")
            jobs.append(_serve(kafka, settings, metrics, registry, stop))
        show = not args.no_progress and not args.quiet
        if args.paths and watching:
            names.append("watched folders")
            jobs.append(
                watch(
                    [Path(p) for p in args.paths],
                    kafka,
                    settings,
                    metrics,
                    stop,
                    args.outlet,
                    args.polling,
                    show_progress=show,
                )
            )
        elif args.paths:
            names.append("files")
            jobs.append(produce(args.paths, kafka, settings, metrics, args.outlet, stop, show_progress=show))
        return list(await asyncio.gather(*jobs))

    try:
        tallies = asyncio.run(run())
    except MissingTopic as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 1
    except (TimeoutError, KafkaError) as exc:
        sys.stderr.write(f"{PROG}: error: cannot reach Kafka at {kafka.bootstrap}: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 1
    for name, tally in zip(names, tallies, strict=True):
        # Which is which, when the HTTP ingest and a watch ran together.
        sys.stdout.write((f"{name}: " if len(tallies) > 1 else "") + tally.summary() + "\n")
    if any(t.interrupted for t in tallies):
        # As a shell reports a run a signal stopped (130 for Ctrl-C, 143 for SIGTERM): not all of
        # the input was sent.
        return 128 + (stopped_by[0] if stopped_by else signal.SIGINT)
    return 1 if any(t.failed for t in tallies) else 0


if __name__ == "__main__":
    sys.exit(main())
