"""The writer's memory over a stream of stories that never end.

    python bench/running_stories.py [--articles 100000] [--stories 500] [--windows 10] [--record]

The story window closes a story once its last report is older than the window, and its members
leave the writer's index with it. A story that keeps getting reports (a running event, a daily
column, an outlet's template) is never closed: without more, every report it ever had stays in
memory. Here every article joins one of `--stories` running stories, the stream spans `--windows`
story windows (72 h), and `DedupDesk.decide` (the writer's whole decision: message parsed,
story decided, records made) takes each article in turn. Two child processes read the same
stream and sample their RSS, the articles indexed and the open stories:
  keep:   members stay as long as their story (what the writer did before 2026-12-07; baseline);
  age_out: members received more than the window ago leave it (`StoryIndex.age_out`, as shipped).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import child_lines, publish, rss_mib  # noqa: E402
from bench.memory_soak import made_up  # noqa: E402

START = 1_741_000_000.0


def messages(articles: int, stories: int, windows: float, window_hours: float) -> Iterator[bytes]:
    """Features messages of `articles` reports, each of one of `stories` running stories (a story
    vector plus noise, the story's own name and a place they all name), evenly over the span."""
    from newsflow.pipeline.desk import article_message
    from newsflow.pipeline.embed import DIM, quantize
    from newsflow.pipeline.enrich import Enriched
    from newsflow.pipeline.features import NUM_PERM, StoryFeatures
    from newsflow.pipeline.records import CleanArticle, EntityResult, Extraction, Language, Source

    rng = np.random.default_rng(7)
    centres = rng.standard_normal((stories, DIM))
    step = windows * window_hours * 3600 / articles
    for i in range(articles):
        s = int(rng.integers(stories))
        v = centres[s] / np.linalg.norm(centres[s]) + rng.standard_normal(DIM) * 0.02
        t = START + i * step
        features = StoryFeatures(
            article_id=f"a{i}",
            outlet=f"o{i % 20}",
            timestamp=t,
            received=t,
            title=f"story {s}, report {i}",
            terms={f"w{s}": 1.0, f"v{rng.integers(50_000)}": 0.5},
            entities={f"{made_up(s)} {made_up(stories + s)}": 1.0, "Brussels": 0.5},
            quotes=frozenset(),
            signature=tuple(int(x) for x in rng.integers(0, 2**32, NUM_PERM)),
            shingle_count=400,
            embedding=quantize(v / np.linalg.norm(v)),
        )
        source = Source(features.outlet, f"{i}.txt", "text/plain", "2025-03-14T09:00:00Z")
        article = CleanArticle(
            features.article_id,
            source,
            "text",
            Extraction("plain_text", "ok", 4, "utf-8"),
            Language("en", 1.0),
        )
        enriched = Enriched(article, EntityResult((), "skipped_language", "none"), features)
        yield article_message(enriched, 0, None)


def child(variant: str, args: argparse.Namespace) -> None:
    """Decide the stream; print one JSON line per sample: articles, RSS MiB, indexed, open, seconds."""
    from newsflow.pipeline.dedup import StoryIndex
    from newsflow.pipeline.desk import DedupDesk
    from newsflow.pipeline.records import Origin

    if variant == "keep":
        StoryIndex.age_out = lambda _index, story, _joining: story  # type: ignore[method-assign]
    stream = messages(args.articles, args.stories, args.windows, 72.0)
    desk, origin = DedupDesk(), Origin("raw", 0, 0)
    every = max(1, args.articles // args.samples)
    outcomes: dict[str, int] = {}
    deciding = 0.0  # seconds in `decide`, not in making the messages

    def sample(n: int) -> None:
        print(json.dumps([n, rss_mib(), len(desk.index), len(desk.index.stories), deciding]), flush=True)

    for i, message in enumerate(stream):  # made one at a time: the RSS is the desk's
        if i % every == 0 and i:
            sample(i)
        started = time.perf_counter()
        decision = desk.decide(message, origin)
        deciding += time.perf_counter() - started
        outcomes[decision.outcome] = outcomes.get(decision.outcome, 0) + 1
    sample(args.articles)
    print(json.dumps({"outcomes": outcomes}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=100_000, help="articles in the stream")
    parser.add_argument("--stories", type=int, default=500, help="running stories they report")
    parser.add_argument("--windows", type=float, default=10.0, help="story windows (72 h) the stream spans")
    parser.add_argument("--samples", type=int, default=10, help="samples over the stream")
    parser.add_argument("--variant", choices=("keep", "age_out"), help=argparse.SUPPRESS)  # the child
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    if args.variant:
        child(args.variant, args)
        return 0
    runs: dict[str, list[list[float]]] = {}
    outcomes: dict[str, dict[str, int]] = {}
    for variant in ("keep", "age_out"):
        options = ["--articles", str(args.articles), "--stories", str(args.stories)]
        options += ["--windows", str(args.windows), "--samples", str(args.samples)]
        lines = child_lines(__file__, "--variant", variant, *options)
        runs[variant] = [x for x in lines if isinstance(x, list)]
        outcomes[variant] = next(x["outcomes"] for x in lines if isinstance(x, dict))
        print(f"{variant}: {runs[variant][-1]}, {outcomes[variant]}", flush=True)
        if set(outcomes[variant]) - {"new_story", "joined_story"}:
            raise SystemExit(f"{variant}: not every article was decided into a story: {outcomes[variant]}")
    names = {"keep": "members kept with their story (baseline)", "age_out": "old members age out (newsflow)"}
    span = args.windows * 72
    lines = [
        f"{args.articles:,} synthetic articles of {args.stories} running stories over {span:.0f} hours "
        f"({args.windows:g} story windows of 72 h), decided one by one by `DedupDesk.decide`; RSS, articles "
        f"indexed and open stories sampled {args.samples} times",
        "",
        "| variant | articles | RSS MiB | indexed | open stories | seconds deciding |",
        "|---|---|---|---|---|---|",
    ]
    for variant, samples in runs.items():
        lines += [
            f"| {names[variant]} | {int(n):,} | {rss:.0f} | {int(indexed):,} | {int(open_):,} | {secs:.0f} |"
            for n, rss, indexed, open_, secs in samples
        ]
    keep, aged = runs["keep"][-1], runs["age_out"][-1]
    lines += [
        "",
        f"decisions: baseline {outcomes['keep']}, newsflow {outcomes['age_out']}; at the end: RSS "
        f"{aged[1]:.0f} against {keep[1]:.0f} MiB ({aged[1] / keep[1]:.2f}x), articles indexed "
        f"{aged[2]:,} against {keep[2]:,}; time {aged[4]:.0f} s against {keep[4]:.0f} s "
        f"({keep[4] / aged[4]:.2f}x the baseline's rate)",
    ]
    report = "\n".join(lines)
    publish("The writer's memory over running stories (bench/running_stories.py)", report, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
