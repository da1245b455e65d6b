"""Producer throughput and memory per source, against reading the same input without sending.

    python bench/producer_bench.py [--files 20000] [--warc-records 20000] [--bomb-gib 1] [--record]

Starts a Kafka broker of its own (deploy/local-kafka/kafka.sh on a free port, deleted afterwards).
For each input it runs, as separate processes one after the other: the sources alone (read and
parse every item, send nothing) and `newsflow-producer` sending it; it reports items/s of both,
their ratio, and the producer's peak RSS.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import local_broker, publish  # noqa: E402
from tests.integration.kafka_helpers import ensure_topics, kafka_env, unique_kafka  # noqa: E402
from tests.warc_fixtures import page, response  # noqa: E402
from tests.warc_fixtures import record as warc_record  # noqa: E402

WORDS = "council budget bridge harbour mayor river school road election minister report court".split()

READ_ONLY = """
import sys, time
from newsflow.producer.sources import iter_inputs
from newsflow.pipeline.records import RawArticle
n = 0
for item in iter_inputs(sys.argv[1:]):
    if isinstance(item, RawArticle):
        n += len(item.payload) > 0
print(n)
"""


def make_files(root: Path, count: int, rng: random.Random) -> Path:
    for i in range(count):
        outlet = root / f"outlet{i % 20:02d}"
        outlet.mkdir(parents=True, exist_ok=True)
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(150, 300)))
        (outlet / f"{i:06d}.txt").write_text(f"Report {i}. {text}.\n")
    return root


def make_warc(path: Path, count: int, rng: random.Random) -> Path:
    with path.open("wb") as fh:
        for i in range(count):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(300, 800)))
            body = page(f"Report {i}. {text}.").encode()
            block = response(200, "text/html; charset=utf-8", body)
            fh.write(gzip.compress(warc_record("response", f"https://site{i % 50}.example/{i}", block), 1))
    return path


def make_bomb(path: Path, gib: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb", compresslevel=9) as fh:
        for _ in range(gib * 1024):
            fh.write(b"\0" * (1 << 20))
    return path


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run a command; return (seconds, its peak RSS in MiB, its stdout)."""
    started = time.monotonic()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command], env=env, capture_output=True, text=True, check=True
    )
    seconds = time.monotonic() - started
    return seconds, int(done.stderr.strip().splitlines()[-1]) / 1024, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--warc-records", type=int, default=20_000)
    parser.add_argument("--bomb-gib", type=int, default=1)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    rng = random.Random(7)
    work = Path(tempfile.mkdtemp(prefix="newsflow-producer-bench-"))
    inputs = [
        (
            "gzip bomb (1 file)",
            make_bomb(work / "bomb" / "x" / "bomb.html.gz", args.bomb_gib).parent.parent,
            0,
        ),
        ("small text files", make_files(work / "files", args.files, rng), args.files),
        (
            "WARC .warc.gz records",
            make_warc(work / "news.warc.gz", args.warc_records, rng),
            args.warc_records,
        ),
    ]
    rows = []
    with local_broker() as bootstrap:
        os.environ["NEWSFLOW_KAFKA_BOOTSTRAP"] = bootstrap
        for name, path, items in inputs:
            kafka = unique_kafka(partitions=4)
            ensure_topics(kafka)
            env = {**os.environ, **kafka_env(kafka)}
            read_s, read_rss, _ = timed([sys.executable, "-c", READ_ONLY, str(path)], env)
            send_s, send_rss, out = timed(
                [sys.executable, "-m", "newsflow.producer", str(path), "--no-progress", "-q"], env
            )
            print(f"{name}: {out.strip()}", flush=True)
            rate = (items / send_s) if items else 0.0
            base = (items / read_s) if items else 0.0
            ratio = f"{send_s and read_s / send_s:.2f}"
            rows.append(
                f"| {name} | {items or '-'} | {path.stat().st_size / 1e6 if path.is_file() else 0:.0f} | "
                f"{base:.0f} | {rate:.0f} | {ratio} | {read_rss:.0f} | {send_rss:.0f} |"
            )
    body = "\n".join(
        [
            "| input | items | archive MB | read only, items/s | producer, items/s | ratio (read/send time) | read-only peak RSS MiB | producer peak RSS MiB |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    publish("Producer throughput and memory per source", body, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
