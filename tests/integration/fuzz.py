"""Fuzz through the broker: bad inputs mixed with good ones into one worker; count what came out.

Used by the CI test (small) and `bench/fuzz_bench.py` (large).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from newsflow.settings import KafkaSettings
from tests.fuzz_inputs import bad_input
from tests.integration.crash import CommittedReader, start_worker
from tests.integration.kafka_helpers import produce_files, send_raw

SIZE_LIMIT = 5_000  # the worker's extraction limit in these runs: sizes are drawn around it


@dataclass
class FuzzReport:
    bad: int
    good: int
    enriched: int
    dead_lettered: int
    lost: int
    duplicated: int
    good_out: int
    worker_alive: bool
    peak_rss_mib: float
    seconds: float

    def line(self) -> str:
        return (
            f"{self.bad} bad + {self.good} good inputs: enriched {self.enriched}, dead-lettered "
            f"{self.dead_lettered}, lost {self.lost}, duplicated {self.duplicated}, good out {self.good_out}; "
            f"worker alive {self.worker_alive}, peak RSS {self.peak_rss_mib:.0f} MiB; {self.seconds:.0f}s"
        )


def peak_rss_mib(pid: int) -> float:
    """Return a process's peak resident memory (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fuzz_run(
    kafka: KafkaSettings,
    good_files: list[Path],
    bad: int,
    rng: random.Random,
    workdir: Path,
    timeout: float = 600,
) -> FuzzReport:
    started = time.monotonic()
    messages = []
    for i in range(bad):
        ctype, body, extra = bad_input(rng, SIZE_LIMIT)
        headers = [
            ("article-id", f"fuzz-{i}".encode()),
            ("content-type", ctype.encode()),
            ("outlet", b"fuzz"),
        ]
        headers += [(k, v.encode()) for k, v in extra.items()]
        messages.append((f"fuzz-{i}".encode(), body, headers))
    env = {"NEWSFLOW_EXTRACT_MAX_INPUT_BYTES": str(SIZE_LIMIT), "NEWSFLOW_EXTRACT_MAX_PARSE_SECONDS": "5"}
    with CommittedReader(kafka) as reader:
        worker = start_worker(kafka, workdir / "fuzz-worker.log", "fuzz", env)
        try:
            good_ids: list[str] = []
            for chunk in range(0, max(len(messages), len(good_files)), 10):
                send_raw(kafka, messages[chunk : chunk + 10])
                good_ids += produce_files(kafka, good_files[chunk : chunk + 10])
            expected = {m[0].decode() for m in messages} | set(good_ids)
            while time.monotonic() - started < timeout and worker.poll() is None:
                with reader.collected.lock:
                    if {k for _, _, k, _ in reader.collected.records} >= expected:
                        break
                time.sleep(0.3)
            time.sleep(2)
            alive = worker.poll() is None
            rss = peak_rss_mib(worker.pid) if alive else 0.0
        finally:
            if worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=60)
    records = reader.collected.records
    out = Counter(k for _, _, k, _ in records)
    enriched = {k for _, t, k, _ in records if t == kafka.topic_enriched}
    return FuzzReport(
        bad=bad,
        good=len(good_ids),
        enriched=len(enriched),
        dead_lettered=len({k for _, t, k, _ in records if t == kafka.topic_dead_letter}),
        lost=len(expected - out.keys()),
        duplicated=sum(n - 1 for n in out.values()),
        good_out=len(set(good_ids) & enriched),
        worker_alive=alive,
        peak_rss_mib=rss,
        seconds=time.monotonic() - started,
    )
