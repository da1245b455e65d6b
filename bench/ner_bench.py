"""NER stage speed beside plain spaCy, same texts, same run (single process = per core).

    OMP_NUM_THREADS=1 python bench/ner_bench.py ../shared/data [--record] [--repeat 3]

Texts are the article bodies of extraction-dev/ground-truth.json (real news of varied length).
Compared: (1) `nlp(text)` with the model's full pipeline, (2) `nlp.pipe` with only NER and the
same per-article cap, (3) our stage `EntityTagger.tag_batch` (NER-only pipe + normalization).
Target: (3) >= 0.9x (2).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import spacy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import publish  # noqa: E402
from newsflow.pipeline.entities import (
    DEFAULT_MODEL,
    NON_NER_COMPONENTS,
    EntityTagger,
    cap_text,
    load_ner_pipeline,
)  # noqa: E402
from newsflow.pipeline.options import model_location  # noqa: E402
from newsflow.pipeline.records import CleanArticle, Extraction, Language, Source  # noqa: E402


def load_texts(data_dir: Path) -> list[str]:
    data = data_dir / "extraction-dev" if (data_dir / "extraction-dev").is_dir() else data_dir
    truth = json.loads((data / "ground-truth.json").read_text())
    return [v["articleBody"] for _, v in sorted(truth.items())]


def rate(n: int, fn: object, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return n / best


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; the best is kept")
    parser.add_argument("--record", action="store_true")
    parser.add_argument(
        "--compare", default="en_core_web_md", help="another model whose NER-only pipe is timed too"
    )
    args = parser.parse_args()
    texts = load_texts(args.data_dir)
    tagger = EntityTagger(recent_texts=0)  # every repeat through the model, as the baselines
    capped = [cap_text(t, tagger.max_chars) for t in texts]
    src = Source("bench", "bench", "text/plain", "2025-01-01T00:00:00Z")
    articles = [
        CleanArticle(str(i), src, t, Extraction("plaintext", "ok", len(t), "utf-8"), Language("en", 1.0))
        for i, t in enumerate(texts)
    ]
    full = spacy.load(model_location(DEFAULT_MODEL))
    ner_only = load_ner_pipeline(DEFAULT_MODEL)
    # Before 2026-12-05 the baseline (and the stage) also ran the shared tok2vec, which the CNN
    # models' NER does not read.
    with_tok2vec = spacy.load(model_location(DEFAULT_MODEL), exclude=list(NON_NER_COMPONENTS))
    full(texts[0]), list(ner_only.pipe(capped[:2])), tagger.tag_batch(articles[:2])  # warm up
    list(with_tok2vec.pipe(capped[:2]))

    def stage() -> None:
        for i in range(0, len(articles), 32):
            tagger.tag_batch(articles[i : i + 32])

    n = len(texts)
    r_full = rate(n, lambda: [full(t) for t in texts], args.repeat)
    r_pipe = rate(n, lambda: list(ner_only.pipe(capped, batch_size=32)), args.repeat)
    r_t2v = rate(n, lambda: list(with_tok2vec.pipe(capped, batch_size=32)), args.repeat)
    r_stage = rate(n, stage, args.repeat)
    other = load_ner_pipeline(args.compare)
    list(other.pipe(capped[:2]))
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    r_other = rate(n, lambda: list(other.pipe(capped, batch_size=32)), args.repeat)
    words = sum(len(t.split()) for t in texts) / n
    report = "\n".join(
        [
            f"{n} article bodies (mean {words:.0f} words), model {DEFAULT_MODEL}, best of {args.repeat}",
            "",
            "| variant | articles/s per core | ratio to NER-only pipe |",
            "|---|---|---|",
            f"| nlp(text), full pipeline | {r_full:.1f} | {r_full / r_pipe:.2f} |",
            f"| nlp.pipe, NER only (baseline) | {r_pipe:.1f} | 1.00 |",
            f"| nlp.pipe, NER and the shared tok2vec it does not read | {r_t2v:.1f} | {r_t2v / r_pipe:.2f} |",
            f"| newsflow EntityTagger.tag_batch | {r_stage:.1f} | {r_stage / r_pipe:.2f} |",
            f"| nlp.pipe, NER only, {args.compare} | {r_other:.1f} | {r_other / r_pipe:.2f} |",
            "",
            f"peak RSS of this process (four pipelines loaded): {rss_mib:.0f} MiB",
        ]
    )
    publish("NER stage speed", report, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
