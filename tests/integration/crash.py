"""Crash trials: stream articles, kill -9 the worker at random points, restart it, count what came out.

A consumer reads the enriched and dead-letter topics with `isolation.level=read_committed`, as
the README tells consumers to, for the whole trial. Used by the CI test (small) and by
`bench/crash_bench.py` (large).
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError

from newsflow.pipeline import jsonio
from newsflow.settings import KafkaSettings
from newsflow.topics import committed_reader
from tests.integration.kafka_helpers import produce_files, start_worker


@dataclass
class Collected:
    """Records read committed, in arrival order: (monotonic time, topic, key, record)."""

    records: list[tuple[float, str, str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.records)

    def first_after(self, moment: float) -> float | None:
        with self.lock:
            return next((t for t, *_ in self.records if t > moment), None)


class CommittedReader:
    """Reads the output topics read_committed in a thread until stopped."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.collected = Collected()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> CommittedReader:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    async def _run(self) -> None:
        consumer = committed_reader(self.kafka, self.kafka.topic_enriched, self.kafka.topic_dead_letter)
        await consumer.start()
        try:
            while not self._stop.is_set():
                try:
                    batches = await consumer.getmany(timeout_ms=200)
                except KafkaError:
                    # The broker is paused or restarting (the outage tests do it on purpose): a
                    # consumer keeps reading once it is back, and so does this reader.
                    await asyncio.sleep(0.5)
                    continue
                for tp, messages in batches.items():
                    now = time.monotonic()
                    with self.collected.lock:
                        self.collected.records += [
                            (now, tp.topic, m.key.decode() if m.key else "", jsonio.loads(m.value))
                            for m in messages
                        ]
        finally:
            await consumer.stop()


@dataclass
class CrashReport:
    sent: int
    enriched: int
    dead_lettered: int
    lost: int
    duplicated: int
    both: int
    kills: int
    restart_to_output: list[float]  # per restart with articles still to come out
    seconds: float
    stories: dict[str, set[str]]  # story id -> its articles' URLs (ids where there is none)

    def line(self) -> str:
        worst = max(self.restart_to_output, default=0.0)
        mean = sum(self.restart_to_output) / len(self.restart_to_output) if self.restart_to_output else 0.0
        return (
            f"sent {self.sent}, enriched {self.enriched}, dead-lettered {self.dead_lettered}, lost {self.lost}, "
            f"duplicated {self.duplicated}, both {self.both}; {self.kills} kills, restart to output "
            f"mean {mean:.1f}s max {worst:.1f}s ({len(self.restart_to_output)} restarts with articles "
            f"still to come out); {self.seconds:.0f}s"
        )


def crash_trial(
    kafka: KafkaSettings,
    files: list[Path],
    workdir: Path,
    kills: int,
    rng: random.Random,
    app_id: str = "crash",
    env: dict[str, str] | None = None,
    timeout: float = 600.0,
    stop_signal: int = signal.SIGKILL,
) -> CrashReport:
    """Send `files` in a stream while killing the worker `kills` times; return what came out.

    `stop_signal` SIGTERM stops it gracefully instead (what an orchestrator's stop or a deploy
    does): a stop commits offsets, which a kill never does."""
    # Static membership, a member id per trial's group (`app_id`): a group still holding another
    # trial's member with other topics would hand this worker partitions it does not follow.
    env = {"NEWSFLOW_WORKER_INSTANCE_ID": f"{app_id}-worker-1", **(env or {})}
    started = time.monotonic()
    log_path = workdir / f"{app_id}.log"
    sent: list[str] = []
    restart_times: list[float] = []
    with CommittedReader(kafka) as reader:
        worker = start_worker(kafka, log_path, app_id, env)
        try:
            chunk = max(1, len(files) // 20)

            def stream() -> None:
                for i in range(0, len(files), chunk):
                    sent.extend(produce_files(kafka, files[i : i + chunk]))
                    time.sleep(0.3)

            producer = threading.Thread(target=stream, daemon=True)
            producer.start()
            targets = sorted(rng.sample(range(1, max(2, len(files) - 1)), kills))
            for target in targets:
                while reader.collected.count() < target:
                    if time.monotonic() - started > timeout:
                        raise TimeoutError(f"only {reader.collected.count()} records after {timeout:.0f}s")
                    time.sleep(0.05 + rng.random() * 0.2)
                worker.send_signal(stop_signal)
                worker.wait()
                restarted = time.monotonic()
                restart_times.append(restarted)
                worker = start_worker(kafka, log_path, app_id, env)
            producer.join()
            expected = set(sent)
            while True:
                with reader.collected.lock:
                    seen = {key for _, _, key, _ in reader.collected.records}
                if expected <= seen:
                    break
                if worker.poll() is not None:
                    raise AssertionError(f"worker exited with {worker.returncode}; log {log_path}")
                if time.monotonic() - started > timeout:
                    break
                time.sleep(0.2)
            time.sleep(2)  # anything repeated late would arrive now
        finally:
            if worker.poll() is None:
                worker.terminate()
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
    records = reader.collected.records
    enriched = Counter(key for _, topic, key, _ in records if topic == kafka.topic_enriched)
    dead = Counter(key for _, topic, key, _ in records if topic == kafka.topic_dead_letter)
    stories: dict[str, set[str]] = {}
    for _, topic, key, record in records:
        if topic == kafka.topic_enriched:
            stories.setdefault(record["story_id"], set()).add(record.get("url") or key)
    # From each restart to the first output after it; a restart after which nothing more was due
    # (the kill came after the last article had come out) has nothing to wait for and is not timed.
    out_keys = enriched.keys() | dead.keys()
    waits = []
    for moment in restart_times:
        if out_keys <= {key for t, _, key, _ in records if t <= moment}:
            continue
        first = reader.collected.first_after(moment)
        waits.append((first - moment) if first is not None else float("inf"))
    return CrashReport(
        sent=len(set(sent)),
        enriched=len(enriched),
        dead_lettered=len(dead),
        lost=len(set(sent) - enriched.keys() - dead.keys()),
        duplicated=sum(n - 1 for n in enriched.values()) + sum(n - 1 for n in dead.values()),
        both=len(enriched.keys() & dead.keys()),
        kills=kills,
        restart_to_output=waits,
        seconds=time.monotonic() - started,
        stories=stories,
    )
