"""What a worker keeps of the articles it has read: the NER model's memory over a long stream.

    python bench/memory_soak.py ../shared/data [--articles 100000] [--record]

A long-running process that runs spaCy keeps every new string it reads (each name, number and
typo of every article) in the model's vocabulary, unless it reads in a memory zone. A stream of
fresh news brings new names every day, which the throughput bench's memory run (f) cannot show:
it sends its corpus again and again, so after the first pass no string is new.

The stream here is the leads (first `--chars` characters) of the dev data's wire texts, each sent
with its capitalised words (names, mostly) replaced by made-up words never seen before: every
article brings new strings, an upper bound of a real stream's long tail of new names. Two child
processes read the same stream in batches of 32 and sample their RSS and the vocabulary's size:
  pipe:  `nlp.pipe` with the NER-only pipeline, as a plain spaCy service would (the baseline);
  stage: newsflow's `EntityTagger.tag_batch`, as the worker runs it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import child_lines, publish, rss_mib  # noqa: E402

BATCH = 32
_CAPITALISED = re.compile(r"(?<=[a-z,;] )[A-Z][a-z]+")
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]  # 70


def made_up(n: int) -> str:
    """A word for the number n, different for every n: "Ba", "Be", ..., "Bibo"..."""
    parts = []
    while True:
        n, d = divmod(n, len(_SYLLABLES))
        parts.append(_SYLLABLES[d])
        if not n:
            break
    return "".join(parts).capitalize() + "an"


def stream(data_dir: Path, articles: int, chars: int) -> list[str]:
    """The wire texts' leads, cycled, their capitalised words made up afresh in every copy."""
    texts: dict[str, str] = {}
    for line in (data_dir / "stories-dev" / "pairs.jsonl").read_text().splitlines():
        if line.strip():
            pair = json.loads(line)
            for side in ("a", "b"):
                texts.setdefault(pair[side]["id"], pair[side]["text"][:chars])
    leads = [t for _, t in sorted(texts.items())]
    fresh = itertools.count()
    return [with_new_names(leads[i % len(leads)], fresh) for i in range(articles)]


def with_new_names(text: str, fresh: Iterator[int]) -> str:
    """The text with each capitalised word inside a sentence (names, mostly) made up afresh."""
    return _CAPITALISED.sub(lambda _m: made_up(next(fresh)), text)


def child(variant: str, data_dir: Path, articles: int, chars: int, samples: int) -> None:
    """Read the stream and print one JSON line per sample: articles read, RSS MiB, strings."""
    from newsflow.pipeline.entities import DEFAULT_MODEL, EntityTagger, load_ner_pipeline
    from newsflow.pipeline.records import CleanArticle, Extraction, Language, Source

    texts = stream(data_dir, articles, chars)
    if variant == "stage":
        tagger = EntityTagger(recent_texts=0)
        nlp = tagger.nlp
        src = Source("soak", "soak", "text/plain", "2026-01-01T00:00:00Z")

        def read(batch: list[str]) -> None:
            tagger.tag_batch(
                [
                    CleanArticle(
                        str(i), src, t, Extraction("plain_text", "ok", len(t), "utf-8"), Language("en", 1.0)
                    )
                    for i, t in enumerate(batch)
                ]
            )
    else:
        nlp = load_ner_pipeline(DEFAULT_MODEL)

        def read(batch: list[str]) -> None:
            for doc in nlp.pipe(batch, batch_size=BATCH):
                [(e.start_char, e.end_char, e.label_) for e in doc.ents]

    every = max(BATCH, articles // samples // BATCH * BATCH)
    started = time.perf_counter()
    for i in range(0, articles, BATCH):
        if i % every == 0:
            print(
                json.dumps([i, rss_mib(), len(nlp.vocab.strings), time.perf_counter() - started]), flush=True
            )
        read(texts[i : i + BATCH])
    print(
        json.dumps([articles, rss_mib(), len(nlp.vocab.strings), time.perf_counter() - started]), flush=True
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--articles", type=int, default=20_000, help="articles in the stream")
    parser.add_argument("--chars", type=int, default=600, help="characters of each wire text's lead")
    parser.add_argument("--samples", type=int, default=10, help="RSS samples over the stream")
    parser.add_argument("--variant", choices=("pipe", "stage"), help=argparse.SUPPRESS)  # the child
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    if args.variant:
        child(args.variant, args.data_dir, args.articles, args.chars, args.samples)
        return 0
    runs: dict[str, list[list[float]]] = {}
    for variant in ("pipe", "stage"):
        options = [
            "--articles",
            str(args.articles),
            "--chars",
            str(args.chars),
            "--samples",
            str(args.samples),
        ]
        runs[variant] = child_lines(__file__, str(args.data_dir), "--variant", variant, *options)
        first, last = runs[variant][1], runs[variant][-1]
        print(f"{variant}: {last[1] - first[1]:+.0f} MiB, {last[2] - first[2]:+,} strings", flush=True)
    names = {"pipe": "`nlp.pipe`, NER only (baseline)", "stage": "newsflow `EntityTagger.tag_batch`"}
    lines = [
        f"{args.articles:,} articles (the wire texts' first {args.chars} characters, every capitalised word "
        f"made up afresh in each copy); NER model en_core_web_sm; one thread; RSS and vocabulary strings "
        f"sampled {args.samples} times",
        "",
        "| variant | articles | RSS MiB | strings | seconds |",
        "|---|---|---|---|---|",
    ]
    for variant, samples in runs.items():
        lines += [
            f"| {names[variant]} | {int(n):,} | {rss:.0f} | {int(strings):,} | {secs:.0f} |"
            for n, rss, strings, secs in samples[1:]
        ]
    # From the first sample after the first batch (models loaded, the first strings read) to the last.
    growth = {v: (s[-1][1] - s[1][1]) for v, s in runs.items()}
    read = {v: s[-1][0] - s[1][0] for v, s in runs.items()}
    rates = {v: s[-1][0] / s[-1][3] for v, s in runs.items()}
    lines += [
        "",
        f"RSS growth from the first sample after the start to the last: baseline {growth['pipe']:+.0f} MiB "
        f"({1024 * 1024 * growth['pipe'] / read['pipe']:,.0f} bytes/article), stage {growth['stage']:+.0f} MiB; "
        f"rate: baseline {rates['pipe']:.0f} articles/s, stage {rates['stage']:.0f} "
        f"({rates['stage'] / rates['pipe']:.2f}x)",
    ]
    report = "\n".join(lines)
    publish("Worker memory over a stream of new names (NER vocabulary)", report, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
