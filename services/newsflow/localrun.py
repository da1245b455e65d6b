"""newsflow-run: the whole pipeline on one machine, once: files in, out/enriched.jsonl out.

Used by `make run` after it has started the local Kafka broker. It creates the topics, starts a
worker process, publishes the given files, waits until every article has come out on the
enriched (or dead-letter) topic, writes the records to a JSON Lines file, prints a summary and
stops the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from newsflow.logs import configure as configure_logging
from newsflow.logs import escape_controls, printable
from newsflow.pipeline import jsonio
from newsflow.producer.metrics import create_metrics
from newsflow.producer.publish import Tally, produce
from newsflow.producer.settings import ProducerSettings
from newsflow.producer.sources import INPUTS_HELP, holds_input, outlet_argument, unusable_paths
from newsflow.settings import CommandLine, KafkaSettings, LogSettings, env, env_help, load_settings_or_exit
from newsflow.topics import committed_reader, create_topics
from newsflow.worker.settings import WorkerSettings

T = TypeVar("T")


@dataclass(frozen=True)
class RunSettings:
    timeout_seconds: float = env(
        "NEWSFLOW_RUN_TIMEOUT",
        180.0,
        "seconds to wait for the next article to come out (the worker's start included): the run stops "
        "when none has for this long, and writes what did",
        minimum=1,
    )


# What scripts/run.sh (make run) reads itself.
SCRIPT_SETTINGS = (
    (
        "NEWSFLOW_RUN_KAFKA_PORT",
        19292,
        "make run's own broker's port: started empty and deleted at the end; one already running there is refused",
    ),
)
# How long the records of a worker that has exited are waited for.
WORKER_GONE_SECONDS = 5.0


async def collect(
    kafka: KafkaSettings, expected: set[str], timeout: float, worker: subprocess.Popen[bytes]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
    """Read the enriched and dead-letter topics until every expected article id has come out, or
    none has for `timeout` seconds (WORKER_GONE_SECONDS once the worker has exited); return what
    came out, and why the rest did not (None: all did)."""
    # read_committed, as the README asks of every consumer
    consumer = committed_reader(kafka, kafka.topic_enriched, kafka.topic_dead_letter)
    await consumer.start()
    enriched: dict[str, dict[str, Any]] = {}
    dead: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    last_report = 0.0
    stopped = None
    try:
        while missing := len(expected - enriched.keys() - dead.keys()):
            if worker.poll() is not None and timeout > WORKER_GONE_SECONDS:
                # What it wrote before it exited is still to be read; nothing more will come.
                timeout = WORKER_GONE_SECONDS
                deadline = min(deadline, time.monotonic() + timeout)
            if time.monotonic() > deadline:
                why = (
                    f"none came out in the last {timeout:.0f}s (NEWSFLOW_RUN_TIMEOUT)"
                    if worker.returncode is None
                    else f"the worker exited with code {worker.returncode}; see its log above"
                )
                stopped = f"{missing} article(s) did not come out: {why}"
                break
            batches = await consumer.getmany(timeout_ms=500)
            for tp, messages in batches.items():
                for msg in messages:
                    record = jsonio.loads(msg.value)
                    key = msg.key.decode() if msg.key else ""
                    (dead if tp.topic == kafka.topic_dead_letter else enriched)[key] = record
                    if key in expected:
                        deadline = time.monotonic() + timeout
            if time.monotonic() - last_report > 5:
                done = len(expected & (enriched.keys() | dead.keys()))
                sys.stderr.write(f"newsflow-run: {done}/{len(expected)} articles processed\n")
                last_report = time.monotonic()
    finally:
        await consumer.stop()
    return (
        [enriched[i] for i in sorted(expected) if i in enriched],
        [dead[i] for i in sorted(expected) if i in dead],
        stopped,
    )


def summary_table(records: list[dict[str, Any]]) -> str:
    """Return one line per article: id, outlet, story, words, title (or first words)."""
    lines = [f"{'article':<24}  {'outlet':<12}  {'story':<16}  {'words':>5}  title"]
    for r in records:
        title = r.get("title") or " ".join((r.get("text") or "").split()[:10]) + " ..."
        story = (r.get("story_id") or "-")[:16]
        lines.append(
            printable(
                f"{r['article_id']:<24}  {r['source']['outlet'][:12]:<12}  {story:<16}  {r['word_count']:>5}  {title[:70]}"
            )
        )
    return "\n".join(lines)


def worker_env() -> dict[str, str]:
    """The local worker's environment: this one's, quieter, and, where the machine has two cores
    or more, the two models side by side (NEWSFLOW_WORKER_COMPUTE_THREADS=2, unless set): the one
    worker of a local run has the machine to itself but for the broker."""
    env = {**os.environ, "NEWSFLOW_LOG_LEVEL": os.environ.get("NEWSFLOW_LOG_LEVEL", "warning")}
    if len(os.sched_getaffinity(0)) >= 2:  # the cores this process may use, as nproc counts
        env.setdefault("NEWSFLOW_WORKER_COMPUTE_THREADS", "2")
    return env


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    # In a session of its own: a terminal's Ctrl-C or hangup reaches this process, which stops the
    # worker in order (stop_worker), rather than killing both at once.
    return subprocess.Popen([sys.executable, "-m", "newsflow.worker"], env=env, start_new_session=True)


def stop_worker(worker: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # `kill`, a supervisor; a closed terminal


class Stopped(KeyboardInterrupt):
    """A stop signal, raised as Ctrl-C is (the exit status is 128 + its number, as a shell's)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interrupted(signum: int, _frame: object) -> None:
    for stop in STOP_SIGNALS:  # a second one must not cut the worker's stop short
        signal.signal(stop, signal.SIG_IGN)
    raise Stopped(signum)


def _exit_status(interrupt: KeyboardInterrupt) -> int:
    return 128 + (interrupt.signum if isinstance(interrupt, Stopped) else signal.SIGINT)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, where a stop signal cancels the coroutine (KeyboardInterrupt here, as Ctrl-C
    does) instead of raising in whatever runs at that moment: a Kafka client's background task
    that dies of it leaves a traceback and an unclosed client behind."""

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        stopped: list[int] = []

        def stop(signum: int) -> None:
            stopped.append(signum)
            task.cancel()

        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stop, signum)
        try:
            return await coro
        except asyncio.CancelledError:
            if stopped:
                raise Stopped(stopped[0]) from None
            raise
        finally:
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)
                signal.signal(signum, signal.SIG_IGN if stopped else _interrupted)

    return asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    parser = CommandLine(
        prog="newsflow-run",
        description="Run the pipeline once on local files against a running Kafka (make run starts one).",
        epilog=INPUTS_HELP
        + "\n\n"
        + env_help(
            KafkaSettings, LogSettings, RunSettings, ProducerSettings, WorkerSettings, more=SCRIPT_SETTINGS
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths",
        nargs="*",
        default=["seeds"],
        help="files, folders, .warc.gz, .jsonl archives, or - for JSON Lines on stdin (default: seeds/)",
    )
    parser.add_argument(
        "--out",
        default="out/enriched.jsonl",
        help="where to write the enriched records (default: %(default)s); the dead letters go beside "
        "it, in dead-letters.jsonl",
    )
    parser.add_argument(
        "--outlet",
        type=outlet_argument,
        help="outlet of every article (default: an envelope's own, else the first folder below the one given, else the host)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the arguments and settings, then exit (make run does this before it starts Kafka)",
    )
    args = parser.parse_args(argv)
    escape_controls()  # the producer's skip lines name files the inputs chose
    # A TERM (make run's script forwards it, as do supervisors and `timeout`) is an interrupt, and
    # so is Ctrl-C even when started in the background of a script (which ignores SIGINT there).
    for signum in STOP_SIGNALS:
        signal.signal(signum, _interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if unusable := unusable_paths(args.paths):
        sys.stderr.write(f"newsflow-run: error: {unusable}\n")
        return 2
    if not holds_input(args.paths):  # before Kafka starts, and before the outputs are emptied
        sys.stderr.write(
            f"newsflow-run: error: no file to read in {', '.join(args.paths)} "
            "(.html .htm .txt .json .jsonl .ndjson .warc, also .gz)\n"
        )
        return 2
    args.paths = [Path(p) for p in args.paths]
    if os.path.basename(args.out) in ("", ".", ".."):  # "x/", "x/.": Path() would make x a file's name
        sys.stderr.write(f"newsflow-run: error: --out: {args.out} is a folder (give a file name)\n")
        return 2
    args.out = Path(args.out)
    dead_out = args.out.with_name("dead-letters.jsonl")
    if dead_out == args.out:
        sys.stderr.write(f"newsflow-run: error: --out: {args.out.name} is where the dead letters go\n")
        return 2
    for path in (args.out, dead_out):
        if problem := _unwritable(path):
            sys.stderr.write(f"newsflow-run: error: --out: {problem}\n")
            return 2
    # The worker's too, though the worker reads them itself: a bad one stops the run here, at once.
    kafka, log_settings, run, producer, _ = load_settings_or_exit(
        "newsflow-run", KafkaSettings, LogSettings, RunSettings, ProducerSettings, WorkerSettings
    )
    # Its own lines are printed; its producer's and its worker's logs say only what went wrong,
    # unless NEWSFLOW_LOG_LEVEL asks for more.
    configure_logging(log_settings.level if "NEWSFLOW_LOG_LEVEL" in os.environ else "warning")
    if unsendable := producer.unsendable_with(kafka):
        sys.stderr.write(f"newsflow-run: error: {unsendable}\n")
        return 2
    if args.check:
        return 0
    timeout = run.timeout_seconds
    started = time.monotonic()
    try:
        _run(create_topics(kafka))
    except (TimeoutError, KafkaError) as exc:
        sys.stderr.write(f"newsflow-run: error: {exc}\n")
        return 1
    except KeyboardInterrupt as interrupt:
        sys.stderr.write("newsflow-run: interrupted\n")
        return _exit_status(interrupt)
    worker = start_worker(worker_env())
    try:
        sent_ids: list[str] = []
        tally: Tally = _run(
            produce(
                args.paths,
                kafka,
                producer,
                create_metrics(CollectorRegistry()),
                outlet=args.outlet,
                sent_ids=sent_ids,
                show_progress=True,
            )
        )
        repeats = len(sent_ids) - len(set(sent_ids))
        # The same bytes under the same name and outlet are the same article: it comes out once.
        again = f" ({repeats} of them an article already sent, which comes out once)" if repeats else ""
        print(f"producer: {tally.summary()}{again}")
        if not sent_ids:
            sys.stderr.write(f"newsflow-run: no article found in {', '.join(map(str, args.paths))}\n")
        enriched, dead, stopped = _run(collect(kafka, set(sent_ids), timeout, worker))
    except (TimeoutError, KafkaError) as exc:
        sys.stderr.write(f"newsflow-run: error: {exc}\n")
        return 1
    except KeyboardInterrupt as interrupt:
        sys.stderr.write("newsflow-run: interrupted; stopping the worker, nothing written\n")
        return _exit_status(interrupt)
    finally:
        stop_worker(worker)
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        # Both files every run: an empty dead-letters file says there were none this time.
        for path, records in ((args.out, enriched), (dead_out, dead)):
            with path.open("wb") as fh:
                for record in records:
                    fh.write(jsonio.dumps_line(record))
    except OSError as exc:  # checked before the run; a disk filling up since is still one line
        sys.stderr.write(f"newsflow-run: error: writing the output: {exc}\n")
        return 1
    if enriched:
        print(summary_table(enriched))
    stories = {r.get("story_id") for r in enriched if r.get("story_id")}
    print(
        f"{len(enriched)} enriched in {len(stories)} stories, {len(dead)} dead-lettered, "
        f"written to {args.out} and {dead_out} in {time.monotonic() - started:.1f}s"
    )
    for d in dead:
        print(printable(f"dead letter {d['key']}: {d['reason']} ({d['detail']})"))
    if stopped:
        sys.stderr.write(f"newsflow-run: error: {stopped}\n")
        return 1
    return 0


def _unwritable(path: Path) -> str | None:
    """Return why an output file cannot be written, or None: checked before Kafka starts, so that
    a run's results are not lost at its end. Nothing is left behind (a probe file is removed)."""
    if path.is_dir():
        return f"{path} is a directory (give a file name)"
    if path.is_symlink() and not path.exists():
        path = Path(os.path.realpath(path))  # a link to a file yet to be: written through it
    if path.exists():
        return None if os.access(path, os.W_OK) else f"{path} is not writable"
    folder = path.parent
    while not folder.exists():  # the first folder that exists, where the missing ones would go
        if folder.is_symlink():
            return f"{folder} is a link to nothing, so {path} cannot be created"
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is not a directory, so {path} cannot be created"
    try:  # os.access says yes to root where permissions say no: try it
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"{path} cannot be created in {folder}: {exc.strerror or exc}"
    return None


if __name__ == "__main__":
    sys.exit(main())
