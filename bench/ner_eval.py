"""Entity quality through the worker's own stage code, beside the spaCy model alone.

    python bench/ner_eval.py ../shared/data [--record] [--check]

Data: ner-dev/ (24 Wikinews stories from GUM, labels PER/ORG/LOC/MISC; see its README). Each
document goes through the stages the worker runs on a plain-text article (`Enricher`: extract,
clean, NER, entity normalisation); every mention of every entity counts, with its entity's
label (what a consumer of the output sees). The baselines are the same spaCy model alone
(`nlp(text).ents`, labels mapped the same way: PERSON -> PER; GPE, LOC, FAC -> LOC; ORG; the rest
-> MISC) on the raw text, and on the text the stage keeps after cleaning (which drops photo
credits such as "Image : NASA ." that the set labels): the second isolates what the entity
stage itself adds.

Scored per document as multisets of (surface text, label), ignoring a leading "the" and a
possessive ending, PER/ORG/LOC together and MISC apart (the set leaves adjectives such as
"Afghan" out, which a CoNLL-style MISC counts). Printed for all documents, and for the two
halves (odd and even documents in name order) so that a change tuned on one can be checked on
the other.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import check_floors, publish  # noqa: E402
from newsflow.pipeline.enrich import Enriched, Enricher  # noqa: E402
from newsflow.pipeline.entities import COARSE, KEPT_LABELS, EntityTagger  # noqa: E402
from newsflow.pipeline.records import RawArticle, Source  # noqa: E402

LABELS = ("PER", "ORG", "LOC", "MISC")
MAIN = ("PER", "ORG", "LOC")
_THE = re.compile(r"^the\s+", re.I)
_POSSESSIVE = re.compile(r"\s*['’]s?$")

Mentions = Counter[tuple[str, str]]


def norm(surface: str) -> str:
    return _POSSESSIVE.sub("", _THE.sub("", " ".join(surface.split())))


def coarse(label: str) -> str:
    return COARSE.get(label, "MISC")


def ours(enricher: Enricher, doc_id: str, text: str) -> tuple[Mentions, str]:
    """Return the stage's mentions of a document, and the text it kept."""
    raw = RawArticle(doc_id, text.encode(), Source(doc_id, "ner-eval", "text/plain", "2026-01-01T00:00:00Z"))
    (result,) = enricher.enrich_batch([raw])
    assert isinstance(result, Enriched) and result.entities is not None, result
    body = result.article.text
    mentions = Counter(
        (norm(body[m.start : m.end]), e.coarse_label) for e in result.entities.entities for m in e.mentions
    )
    return mentions, body


def spacy_alone(nlp: object, text: str) -> Mentions:
    doc = nlp(text)  # type: ignore[operator]
    return Counter((norm(e.text), coarse(e.label_)) for e in doc.ents if e.label_ in KEPT_LABELS)


def prf(pred: list[Mentions], gold: list[Mentions], labels: tuple[str, ...]) -> tuple[float, float, float]:
    tp = fp = fn = 0
    for p, g in zip(pred, gold, strict=True):
        p = Counter({k: v for k, v in p.items() if k[1] in labels})
        g = Counter({k: v for k, v in g.items() if k[1] in labels})
        hit = sum((p & g).values())
        tp, fp, fn = tp + hit, fp + sum(p.values()) - hit, fn + sum(g.values()) - hit
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return precision, recall, 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def table(name: str, runs: list[list[Mentions]], gold: list[Mentions]) -> list[str]:
    rows = [
        f"**{name}**",
        "",
        "| labels | spaCy alone, raw text | spaCy alone, cleaned text | newsflow (P / R / F1) |",
        "|---|---|---|---|",
    ]
    for labels in [*((label,) for label in LABELS), MAIN]:
        shown = [f"{p:.3f} / {r:.3f} / {f:.3f}" for p, r, f in (prf(run, gold, labels) for run in runs)]
        rows.append(f"| {'+'.join(labels)} | {shown[0]} | {shown[1]} | **{shown[2]}** |")
    return [*rows, ""]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--model", help="a spaCy pipeline name or path (default: the stage's)")
    parser.add_argument("--check", action="store_true", help="exit 1 below the floors in bench/floors.json")
    args = parser.parse_args()
    data = args.data_dir / "ner-dev" if (args.data_dir / "ner-dev").is_dir() else args.data_dir
    gold_all = json.loads((data / "gold.json").read_text())
    names = sorted(gold_all)
    texts = [(data / "docs" / name).read_text() for name in names]
    gold = [Counter((norm(s), label) for s, label in gold_all[name]) for name in names]

    tagger = EntityTagger(args.model) if args.model else EntityTagger()
    enricher = Enricher(tagger=tagger)
    done = [ours(enricher, name, text) for name, text in zip(names, texts, strict=True)]
    pred = [mentions for mentions, _ in done]
    base = [spacy_alone(tagger.nlp, text) for text in texts]
    base_cleaned = [spacy_alone(tagger.nlp, kept) for _, kept in done]

    halves = {"odd": slice(0, None, 2), "even": slice(1, None, 2)}
    lines = [f"{len(names)} documents of {data}, {sum(sum(g.values()) for g in gold)} gold mentions", ""]
    lines += table("all documents", [base, base_cleaned, pred], gold)
    for half, part in halves.items():
        runs = [base[part], base_cleaned[part], pred[part]]
        lines += table(f"{half} half ({len(names[part])} documents)", runs, gold[part])
    f1 = prf(pred, gold, MAIN)[2]
    lines.append(
        f"PER+ORG+LOC F1 ratio newsflow/spaCy alone: {f1 / prf(base, gold, MAIN)[2]:.3f} (raw text), "
        f"{f1 / prf(base_cleaned, gold, MAIN)[2]:.3f} (cleaned text)"
    )
    report = "\n".join(lines)
    publish("Entity quality (NER)", report, args.record)
    return check_floors({"ner_f1": f1}) if args.check else 0


if __name__ == "__main__":
    sys.exit(main())
