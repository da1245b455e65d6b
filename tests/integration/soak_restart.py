"""Soak: stop a worker at a random moment, restart it while articles arrive, count what came out.

Not a pytest test (one trial takes one to two minutes and a loss shows in about one trial in
three when the bug is present); it is how the recovery fix in `newsflow.worker.transport` was
found and checked. Against a running broker:

    NEWSFLOW_KAFKA_BOOTSTRAP=127.0.0.1:19192 .venv/bin/python -m tests.integration.soak_restart 10

Each trial: fresh topics, one worker, the first 100 articles of the grouping test's corpus; the
worker is stopped (SIGTERM) after a random number of enriched records; a new worker of the same
group starts and the other 100 articles are sent. Every article must come out at least once.
Exits 1 on the first trial that loses an article and names the articles and the worker logs.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from tests.integration.kafka_helpers import (
    ensure_topics,
    produce_files,
    read_records,
    unique_kafka,
    worker_process,
)
from tests.integration.story_corpus import build_corpus, write_corpus

TOTAL = 200
ARTICLES = build_corpus()


def trial(files: list[Path], workdir: Path, n: int, rng: random.Random) -> set[str]:
    """Run one stop-and-restart trial; return the URLs that never came out."""
    kafka = unique_kafka(partitions=4)
    ensure_topics(kafka)
    app_id = f"soak{n}"
    env = {"NEWSFLOW_WORKER_DATA_DIR": str(workdir / f"data-{n}")}
    stop_after = rng.randint(5, 80)
    with worker_process(kafka, workdir / f"{app_id}-first.log", app_id, env) as worker:
        produce_files(kafka, files[: TOTAL // 2])
        read_records(kafka, kafka.topic_enriched, want=stop_after, worker=worker)
        time.sleep(rng.random() * 2)
    with worker_process(kafka, workdir / f"{app_id}-second.log", app_id, env) as worker:
        produce_files(kafka, files[TOTAL // 2 :])
        got = read_records(
            kafka,
            kafka.topic_enriched,
            want=TOTAL,
            timeout=180,
            worker=worker,
            done=lambda records: len({r["url"] for _, r in records}) >= TOTAL,
        )
    seen = {r["url"] for _, r in got}
    print(f"trial {n}: stopped after {stop_after} records; {len(seen)} of {TOTAL} articles out", flush=True)
    return {a.envelope["url"] for a in ARTICLES} - seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trials", type=int, nargs="?", default=5, help="number of trials (default 5)")
    parser.add_argument("--seed", type=int, default=None, help="random seed for the stop points")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="newsflow-soak-"))
    corpus = workdir / "corpus"
    corpus.mkdir()
    write_corpus(corpus, ARTICLES)
    files = sorted(corpus.rglob("*.json"))
    for n in range(args.trials):
        missing = trial(files, workdir, n, rng)
        if missing:
            print(f"LOST {len(missing)} articles: {sorted(missing)}; logs in {workdir}", file=sys.stderr)
            return 1
    print(f"{args.trials} trials, nothing lost (logs in {workdir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
