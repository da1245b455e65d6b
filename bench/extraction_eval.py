"""Score the extraction stage against ground truth, beside plain trafilatura defaults, in one run.

    python bench/extraction_eval.py ../shared/data/extraction-dev [--dump OUT_DIR] [--record]

DATA_DIR holds html/<id>.html.gz and ground-truth.json ({id: {"articleBody", "url"}}); the data
root (with an extraction-dev/ folder) is accepted too. The metric is the benchmark's: word tokens
(runs of letters/digits, case kept), multisets of 4-token shingles, precision and recall per article
averaged over articles (an empty prediction is left out of the precision average and scores zero
recall), F1 of the two averages. Our side runs exactly the worker's code path (`Enricher.clean`
on the bytes as the producer reads them). Speed is single-process docs/s, i.e. per core. F1 is
also given for two halves of the pages (split by a hash of their id): a rule chosen on one half
is reported on the other.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import trafilatura

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import check_floors, half_of, record  # noqa: E402
from newsflow.pipeline.enrich import Enriched, Enricher  # noqa: E402
from newsflow.producer.sources import read_article  # noqa: E402

TOKEN = re.compile(r"[^\W_]+")


def shingles(text: str, n: int = 4) -> Counter[tuple[str, ...]]:
    tokens = TOKEN.findall(text)
    if len(tokens) < n:
        return Counter([tuple(tokens)]) if tokens else Counter()
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def score(preds: dict[str, str], truth: dict[str, str]) -> dict[str, float]:
    """Return precision, recall, F1 and exact-match accuracy as defined by the benchmark."""
    precisions, recalls, exact = [], [], 0
    for doc_id, gold_text in truth.items():
        pred_text = preds.get(doc_id, "")
        gold, pred = shingles(gold_text), shingles(pred_text)
        tp = sum((gold & pred).values())
        if pred:
            precisions.append(tp / sum(pred.values()))
        recalls.append(tp / sum(gold.values()) if gold else (1.0 if not pred else 0.0))
        exact += TOKEN.findall(pred_text) == TOKEN.findall(gold_text)
    p = sum(precisions) / len(precisions) if precisions else 0.0
    r = sum(recalls) / len(recalls) if recalls else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f1, "accuracy": exact / len(truth) if truth else 0.0}


def run(name: str, fn: Callable[[Path], str], files: list[Path]) -> tuple[dict[str, str], float]:
    started = time.perf_counter()
    preds = {f.name.removesuffix(".html.gz"): fn(f) for f in files}
    elapsed = time.perf_counter() - started
    print(f"  {name}: {len(files)} docs in {elapsed:.1f}s", file=sys.stderr)
    return preds, len(files) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--dump", type=Path, help="write our text of every page to DUMP/<id>.txt")
    parser.add_argument("--record", action="store_true", help="append the result to bench/RESULTS.md")
    parser.add_argument("--check", action="store_true", help="exit 1 below the floors in bench/floors.json")
    args = parser.parse_args()
    data = args.data_dir / "extraction-dev" if (args.data_dir / "extraction-dev").is_dir() else args.data_dir
    truth_raw = json.loads((data / "ground-truth.json").read_text())
    truth = {k: v["articleBody"] for k, v in truth_raw.items()}
    files = sorted((data / "html").glob("*.html.gz"))
    files = [f for f in files if f.name.removesuffix(".html.gz") in truth]

    enricher = Enricher()

    def ours(path: Path) -> str:
        raw = read_article(path.parent, path)
        if not hasattr(raw, "payload"):
            return ""
        result = enricher.clean(raw)  # type: ignore[arg-type]
        return result.article.text if isinstance(result, Enriched) else ""

    def baseline(path: Path) -> str:
        return trafilatura.extract(gzip.decompress(path.read_bytes())) or ""

    # Warm both (imports, lazy model loads) so neither pays start-up inside the timing.
    ours(files[0]), baseline(files[0])
    base_preds, base_rate = run("trafilatura defaults", baseline, files)
    enricher = Enricher()
    our_preds, our_rate = run("newsflow", ours, files)
    base, our = score(base_preds, truth), score(our_preds, truth)
    lines = [
        f"{len(files)} pages of {data}",
        "",
        "| extractor | precision | recall | F1 | accuracy | docs/s per core |",
        "|---|---|---|---|---|---|",
        f"| trafilatura.extract defaults (baseline) | {base['precision']:.3f} | {base['recall']:.3f} | "
        f"{base['f1']:.3f} | {base['accuracy']:.3f} | {base_rate:.1f} |",
        f"| newsflow extract stage | {our['precision']:.3f} | {our['recall']:.3f} | {our['f1']:.3f} | "
        f"{our['accuracy']:.3f} | {our_rate:.1f} |",
        "",
        "| half (pages split by a hash of their id) | baseline F1 | newsflow precision | recall | F1 |",
        "|---|---|---|---|---|",
    ]
    for half in "AB":
        part = {k: v for k, v in truth.items() if half_of(k) == half}
        b, o = score(base_preds, part), score(our_preds, part)
        lines.append(
            f"| {half} ({len(part)} pages) | {b['f1']:.3f} | {o['precision']:.3f} | {o['recall']:.3f} | {o['f1']:.3f} |"
        )
    lines += [
        "",
        f"F1 ratio newsflow/baseline: {our['f1'] / base['f1']:.3f}; speed ratio: {our_rate / base_rate:.2f}",
    ]
    report = "\n".join(lines)
    print(report)
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
        for doc_id, text in our_preds.items():
            (args.dump / f"{doc_id}.txt").write_text(text)
    if args.record:
        record("Extraction quality and speed", report)
    return check_floors({"extraction_f1": our["f1"]}) if args.check else 0


if __name__ == "__main__":
    sys.exit(main())
