"""Delivery under failure on a real broker: kill -9 crashes, fuzzed inputs; counts and recovery times.

    python bench/delivery_bench.py [--articles 2000] [--kills 20] [--stops 20] [--fuzz 500] [--record]

Starts a Kafka broker of its own (deploy/local-kafka/kafka.sh on a free port, deleted afterwards),
then runs, on one corpus of templated news (the grouping corpus's 40 events, 5 reports each, repeated
under new URLs up to the size asked for):
- a baseline: the same articles through one worker, no kills;
- the crash trial: the articles streamed in while the worker is killed (SIGKILL) `--kills` times at
  random points and restarted at once; a read_committed consumer counts what came out;
- the stop trial: the same with `--stops` graceful stops (SIGTERM), which commit offsets;
- the fuzz trial: `--fuzz` generated bad inputs mixed with good ones through one worker, and
  hypothesis over the extraction stage in process (`--examples`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import local_broker, publish  # noqa: E402
from tests.integration.crash import crash_trial  # noqa: E402
from tests.integration.fuzz import fuzz_run  # noqa: E402
from tests.integration.kafka_helpers import ensure_topics, unique_kafka  # noqa: E402
from tests.integration.story_corpus import build_corpus  # noqa: E402


def write_rounds(root: Path, articles: int) -> list[Path]:
    """Write `articles` envelopes: the 200-article grouping corpus again and again under new URLs.

    Later rounds repeat the 40 events (their texts are copies of the first round's), so the true
    grouping is 40 stories whatever the arrival order, at any size.
    """
    base = build_corpus()
    files = []
    for n in range(articles):
        article = base[n % len(base)]
        r = n // len(base)
        path = root / article.outlet / f"r{r:03d}-story{article.story:02d}-v{article.variant}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**article.envelope, "url": f"{article.envelope['url']}/r{r}"}))
        files.append(path)
    return files


def hypothesis_extraction(examples: int) -> float:
    """Run the extraction fuzz property on `examples` fresh examples; return seconds."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.unit import test_fuzz_stages as fuzz

    inner = (
        fuzz.test_extraction_turns_any_input_into_a_valid_record_or_a_valid_dead_letter.hypothesis.inner_test
    )
    run = settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
    )(given(st.randoms(use_true_random=False))(inner))
    started = time.monotonic()
    run()
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=2000, help="articles per trial (multiple of 5)")
    parser.add_argument("--kills", type=int, default=20, help="kill -9 of the worker in the crash trial")
    parser.add_argument("--stops", type=int, default=20, help="graceful stops (SIGTERM) in the stop trial")
    parser.add_argument("--fuzz", type=int, default=500, help="bad inputs in the fuzz trial")
    parser.add_argument("--examples", type=int, default=5000, help="hypothesis examples over extraction")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--record", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()

    rows = []
    with local_broker() as bootstrap:
        os.environ["NEWSFLOW_KAFKA_BOOTSTRAP"] = bootstrap
        work = Path(tempfile.mkdtemp(prefix="newsflow-delivery-"))
        files = write_rounds(work / "corpus", args.articles)

        def trial(name: str, kills: int, stop_signal: int = signal.SIGKILL) -> None:
            kafka = unique_kafka(partitions=4)
            ensure_topics(kafka)
            report = crash_trial(
                kafka,
                files,
                work,
                kills,
                random.Random(args.seed),
                app_id=name,
                timeout=3600,
                stop_signal=stop_signal,
            )
            print(f"{name}: {report.line()}", flush=True)
            waits = report.restart_to_output
            rows.append(
                f"| {name} | {report.sent} | {report.enriched} | {report.dead_lettered} | {report.lost} | "
                f"{report.duplicated} | {len(report.stories)} | {kills} | "
                + (f"{sum(waits) / len(waits):.1f} / {max(waits):.1f} ({len(waits)} timed)" if waits else "-")
                + f" | {report.seconds:.0f} |"
            )

        trial("baseline", 0)
        trial("crash", args.kills)
        trial("stop", args.stops, signal.SIGTERM)
        kafka = unique_kafka(partitions=4)
        ensure_topics(kafka)
        good = files[: min(200, len(files))]
        fuzz = fuzz_run(kafka, good, args.fuzz, random.Random(args.seed), work, timeout=1800)
        print(f"fuzz: {fuzz.line()}", flush=True)
        seconds = hypothesis_extraction(args.examples)
        print(f"hypothesis: {args.examples} extraction examples passed in {seconds:.0f}s", flush=True)

    body = "\n".join(
        [
            "| run | sent | enriched | dead-lettered | lost | duplicated | stories | kills or stops | restart to output mean / max s (restarts timed: those with articles still to come out) | seconds |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"fuzz through the broker: {fuzz.line()}",
            "",
            f"hypothesis over extraction in process: {args.examples} examples, no failure, {seconds:.0f}s",
        ]
    )
    publish("Delivery under kill -9, graceful stops and fuzzed inputs", body, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
