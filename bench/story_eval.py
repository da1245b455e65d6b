"""Same-story and copy detection quality of the dedup stage, beside a word-set Jaccard baseline.

    python bench/story_eval.py ../shared/data [--dump pairs.jsonl] [--record] [--split-threshold T]

Same story: stories-dev/pairs.jsonl (SemEval-2022 Task 8 en-en pairs). For each pair the real
stage code runs as the worker runs it (extract the text, tag entities, compute features, index
article a, then assign article b); gold: overall <= 2.0 same story, >= 3.0 not, others left out.
Reported: precision/recall/F1 and the Pearson correlation of the similarity score with -overall;
the baseline is word-set Jaccard at its best threshold on the same pairs (an optimistic baseline).
Copies: generated from the pair texts (other boilerplate, truncation, reordered paragraphs,
light edits) against independent articles as negatives.

Stream and purity: all the pairs' articles go through one index in shuffled orders, as a stream
would. Events: a pair judged same links its two articles, and bench/story_events.json links
articles of different pairs that report one event (how it was labelled is in the file); every
other two articles are two events. Purity is the pairwise precision of the stories (of all
article pairs put in one story, the share that are one event), recall its pairwise recall:
where a story that grows into a theme shows (an article counts in the story whose record lists it
at the end, after merges and splits; `--split-threshold 0` streams without splits). Figures are given for the whole set and for two
halves (pairs split by a hash of their id, events by a hash of their first article), so that
a change tuned on one half is reported on the other.

Dated streams: the pairs carry no dates, so that stream is a backfill of undated texts, where
only content can keep two events on one theme apart. The same articles are streamed again with
synthetic dates (each event on a day of a month, its reports within two days): as a live stream,
received as published, and as a backfill of a dated archive, received at once. They show what
publication times add to the decision (`_freshness` and the story window) when they are known.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from statistics import fmean as mean
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import check_floors, half_of, record  # noqa: E402
from newsflow.pipeline.dedup import DedupOptions, StoryIndex, story_similarity  # noqa: E402
from newsflow.pipeline.embed import DOWN_KERNELS, TextEncoder  # noqa: E402
from newsflow.pipeline.entities import EntityTagger  # noqa: E402
from newsflow.pipeline.extract import extract_article  # noqa: E402
from newsflow.pipeline.features import StoryFeatures, article_features, estimated_containment  # noqa: E402
from newsflow.pipeline.options import EMBED_PRECISION, EMBED_PRECISIONS  # noqa: E402
from newsflow.pipeline.records import CleanArticle, RawArticle, Source  # noqa: E402

WORD = re.compile(r"\w+")
NER_BATCH = 32  # the worker's batch size


def clean(article_id: str, text: str) -> CleanArticle:
    raw = RawArticle(article_id, text.encode(), Source(f"{article_id}.txt", "bench", "text/plain", "", None))
    result = extract_article(raw)
    assert isinstance(result, CleanArticle), result
    return result


def prf(pred: list[bool], gold: list[bool]) -> tuple[float, float, float]:
    tp = sum(p and g for p, g in zip(pred, gold, strict=True))
    fp = sum(p and not g for p, g in zip(pred, gold, strict=True))
    fn = sum(g and not p for p, g in zip(pred, gold, strict=True))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def pearson(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    vx = sum((x - mx) ** 2 for x in xs) ** 0.5
    vy = sum((y - my) ** 2 for y in ys) ** 0.5
    return cov / (vx * vy) if vx and vy else 0.0


def jaccard(a: str, b: str) -> float:
    sa, sb = set(WORD.findall(a.lower())), set(WORD.findall(b.lower()))
    return len(sa & sb) / len(sa | sb) if sa | sb else 0.0


def copy_variants(text: str, rng: random.Random) -> list[str]:
    """Return re-publications of a text: other boilerplate, truncated, reordered, lightly edited."""
    paras = [p for p in text.split("\n") if p.strip()]
    words = text.split()
    edited = list(words)
    for i in rng.sample(range(len(edited)), k=max(1, len(edited) // 25)):
        edited[i] = edited[i].upper() if i % 2 else "the"
    return [
        "Breaking news from our wire desk.\n" + text + "\nShare this story. Follow us for more updates.",
        " ".join(words[: max(30, int(len(words) * 0.6))]),
        "\n".join(paras[1:] + paras[:1])
        if len(paras) > 1
        else " ".join(words[len(words) // 2 :] + words[: len(words) // 2]),
        " ".join(edited),
    ]


def featurize(
    tagger: EntityTagger, items: list[tuple[str, str]], encoder: TextEncoder | None = None
) -> dict[str, tuple[CleanArticle, StoryFeatures]]:
    """Return each text cleaned and its features, as the worker computes them (NER in batches)."""
    cleaned = [clean(article_id, text) for article_id, text in items]
    out: dict[str, tuple[CleanArticle, StoryFeatures]] = {}
    for start in range(0, len(cleaned), NER_BATCH):
        chunk = cleaned[start : start + NER_BATCH]
        for a, tags in zip(chunk, tagger.tag_batch(chunk), strict=True):
            out[a.article_id] = (a, article_features(a, tags, encoder))
    return out


STREAM_ORDERS = 5
EVENTS = Path(__file__).with_name("story_events.json")


def is_judged(pair: dict[str, Any]) -> bool:
    """A pair scored same (overall <= 2) or not (>= 3); those in between are left out."""
    return bool(pair["overall"] <= 2.0 or pair["overall"] >= 3.0)


class Events:
    """Which articles of the pairs report one event (see the module docstring and the labels'
    file): a pair judged same links its articles, and so does a same-event group; a pair judged
    in between, or an ambiguous group, leaves its articles out of each other's scoring unless
    something else links them. Labels never overrule a judged pair."""

    def __init__(self, pairs: list[dict[str, Any]], labels: dict[str, Any]) -> None:
        parent: dict[str, str] = {}

        def root(x: str) -> str:
            parent.setdefault(x, x)
            while parent[x] != x:
                x = parent[x]
            return x

        unsure: list[tuple[str, str]] = []
        different: list[tuple[str, str]] = []
        for pair in pairs:
            a, b = pair["a"]["id"], pair["b"]["id"]
            root(a), root(b)
            if pair["overall"] <= 2.0:
                parent[root(b)] = root(a)
            elif pair["overall"] < 3.0:
                unsure.append((a, b))
            else:
                different.append((a, b))
        for group in labels["same_event"]:
            for other in group[1:]:
                parent[root(other)] = root(group[0])
        for group in labels["ambiguous"]:
            unsure.extend(itertools.combinations(group, 2))
        self.event = {x: root(x) for x in parent}
        contradicted = [f"{a}/{b}" for a, b in different if self.event[a] == self.event[b]]
        if contradicted:
            raise ValueError(f"event labels join pairs judged different: {', '.join(contradicted)}")
        # Only what no judgement or label links stays out of the scoring.
        self.ambiguous = {
            frozenset((a, b))
            for a, b in unsure
            if a in self.event and b in self.event and self.event[a] != self.event[b]
        }
        self.labelled = sum(x in self.event for group in labels["same_event"] for x in group)
        first: dict[str, str] = {}
        for x in sorted(self.event):
            first.setdefault(self.event[x], x)
        self.half = {x: half_of(first[self.event[x]]) for x in self.event}

    def purity(self, story_of: dict[str, str], half: str | None = None) -> tuple[float, float]:
        """Return the pairwise precision and recall of the stories against the events."""
        ids = sorted(x for x in story_of if half is None or self.half[x] == half)
        both = together = same = 0
        for a, b in itertools.combinations(ids, 2):
            if frozenset((a, b)) in self.ambiguous:
                continue
            one_event, one_story = self.event[a] == self.event[b], story_of[a] == story_of[b]
            both += one_event and one_story
            together += one_story
            same += one_event
        return both / together if together else 1.0, both / same if same else 1.0


def stream_stories(
    done: dict[str, tuple[CleanArticle, StoryFeatures]],
    seed: int,
    times: dict[str, tuple[float, float]] | None = None,
    options: DedupOptions | None = None,
) -> tuple[dict[str, str], int, int]:
    """Put every article through one index, in a shuffled order, as a stream would; return each
    article's story at the end (the story whose record lists it, after the merges and splits a
    consumer follows), and the numbers of merges and splits. With `times` (article id -> its
    publication time and the time it is received), articles arrive in the order received and
    carry those times.

    Pair by pair, each article meets a story of one; in a stream it meets stories that grew from
    many articles, on neighbouring subjects too (the pairs judged different are mostly on related
    subjects): this is where a story that drifts into a theme shows, as false matches."""
    ids = sorted(done)
    random.Random(seed).shuffle(ids)
    if times is not None:
        ids.sort(key=lambda x: times[x][1])  # stable: equal receipt times keep the shuffled order
    index = StoryIndex(options)
    story_of: dict[str, str] = {}
    merges = splits = 0
    for article_id in ids:
        features = done[article_id][1]
        if times is not None:
            published, received = times[article_id]
            features = replace(features, timestamp=published, received=received)
        story_of[article_id] = index.assign(features).story_id
        # As the records tell a consumer: a merged story's members are its survivor's, a split
        # story's members its own.
        for story, survivor, _ in index.merged:
            story_of.update(dict.fromkeys(story.members, survivor))
        for story, _ in index.splits:
            story_of.update(dict.fromkeys(story.members, story.story_id))
        merges, splits = merges + len(index.merged), splits + len(index.splits)
        index.merged.clear()
        index.splits.clear()
    return story_of, merges, splits


# Dated streams. The pairs carry no dates, so each event is given one: a day in a span of
# DATED_SPAN_DAYS, its reports published within REPORT_HOURS of it (one event, one day or two;
# events on one theme, days or weeks apart). Synthetic, and said so in the report: what it shows
# is what the time signals do when dates are known, not how dated news is spread.
DATED_SPAN_DAYS = 30
REPORT_HOURS = 48.0
DATED_START = 1_577_836_800.0  # 2020-01-01 UTC, when the pairs' news was published


DATED_MODES = {
    "live": "live stream: received as published, in that order",
    "backfill": "backfill: an archive with its dates, received at once in any order",
}


# The dated table's columns, as (measure, part): purity 0 or recall 1, of all 0, half A 1 or B 2.
DATED_COLUMNS = ((0, 0), (1, 0), (0, 1), (0, 2), (1, 1), (1, 2))


def dated_times(events: Events, seed: int, live: bool) -> dict[str, tuple[float, float]]:
    """Return each article's (publication, receipt) time: received within the hour of its
    publication in a live stream, all at the end of the span in a backfill of an archive."""
    rng = random.Random(seed)
    day: dict[str, float] = {}
    times = {}
    end = DATED_START + (DATED_SPAN_DAYS + 3) * 86400
    for article_id in sorted(events.event):
        event = events.event[article_id]
        if event not in day:
            day[event] = DATED_START + rng.uniform(0, DATED_SPAN_DAYS * 86400)
        published = day[event] + rng.uniform(0, REPORT_HOURS * 3600)
        delay = rng.uniform(0, 3600)  # drawn in both modes: one seed, the same dates
        times[article_id] = (published, published + delay if live else end)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--dump", type=Path, help="write one JSON line per pair: pair_id, same_story, score")
    parser.add_argument("--record", action="store_true")
    parser.add_argument(
        "--model", help="a spaCy pipeline name or path for the entities (default: the stage's)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 below the floors in bench/floors.json")
    parser.add_argument(
        "--embed-precision",
        choices=EMBED_PRECISIONS,
        default=EMBED_PRECISION,
        help=f"the embedding model's arithmetic (NEWSFLOW_WORKER_EMBED_PRECISION; default {EMBED_PRECISION})",
    )
    parser.add_argument(
        "--embed-down",
        choices=DOWN_KERNELS,
        help="int8: the feed-forward-down products' kernel (default: by this CPU, see NEWSFLOW_WORKER_EMBED_DOWN)",
    )
    parser.add_argument(
        "--events", type=Path, default=EVENTS, help=f"event labels across pairs (default {EVENTS.name})"
    )
    parser.add_argument(
        "--split-threshold",
        type=float,
        default=DedupOptions().split_threshold,
        help="the streams' split threshold (default: the stage's; 0: no splits, to see what they do)",
    )
    parser.add_argument(
        "--names-to-differ",
        type=int,
        default=DedupOptions().names_to_differ,
        help="the names rule's count, for pairs and streams (default: the stage's; 0: no names rule)",
    )
    args = parser.parse_args()
    options = DedupOptions(split_threshold=args.split_threshold, names_to_differ=args.names_to_differ)
    data = args.data_dir / "stories-dev" if (args.data_dir / "stories-dev").is_dir() else args.data_dir
    path = data / "pairs.jsonl" if data.is_dir() else data
    pairs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    tagger = EntityTagger(args.model) if args.model else EntityTagger()

    started = time.perf_counter()
    texts = {p[side]["id"]: p[side]["text"] for p in pairs for side in ("a", "b")}
    encoder = TextEncoder.load(precision=args.embed_precision, down=args.embed_down)
    done = featurize(tagger, list(texts.items()), encoder)
    rows: list[dict[str, Any]] = []
    for pair in pairs:
        (_, fa), (_, fb) = done[pair["a"]["id"]], done[pair["b"]["id"]]
        index = StoryIndex(options)
        story_a = index.assign(fa).story_id
        score = story_similarity(fb, index.stories[story_a], options=options)
        decision = index.assign(fb)
        if decision.duplicate_of:
            score = max(score, estimated_containment(fa, fb))
        rows.append(
            {
                "pair_id": pair["pair_id"],
                "same_story": decision.story_id == story_a,
                "score": round(score, 4),
                "overall": pair["overall"],
                "jaccard": jaccard(pair["a"]["text"], pair["b"]["text"]),
                "half": half_of(pair["pair_id"]),
            }
        )
    elapsed = time.perf_counter() - started
    events = Events(pairs, json.loads(args.events.read_text()))
    judged_pairs = [p for p in pairs if is_judged(p)]
    # per order: pairs' (P, R, F1), purity and recall (all, A, B), largest story, merges, splits
    streams = []
    dated: dict[str, list[list[tuple[float, float]]]] = {mode: [] for mode in DATED_MODES}
    for seed in range(STREAM_ORDERS):
        story_of, merges, splits = stream_stories(done, seed, options=options)
        verdicts = [story_of[p["a"]["id"]] == story_of[p["b"]["id"]] for p in judged_pairs]
        streams.append(
            (
                prf(verdicts, [p["overall"] <= 2.0 for p in judged_pairs]),
                [events.purity(story_of, half) for half in (None, "A", "B")],
                max(Counter(story_of.values()).values()),
                merges,
                splits,
            )
        )
        for mode in DATED_MODES:
            times = dated_times(events, seed, live=mode == "live")
            story_of, *_ = stream_stories(done, seed, times, options)
            dated[mode].append([events.purity(story_of, half) for half in (None, "A", "B")])

    def figures(subset: list[dict[str, Any]]) -> tuple[float, float, float, float]:
        judged = [r for r in subset if is_judged(r)]
        p, r, f1 = prf([row["same_story"] for row in judged], [row["overall"] <= 2.0 for row in judged])
        return p, r, f1, pearson([row["score"] for row in subset], [-row["overall"] for row in subset])

    judged = [r for r in rows if is_judged(r)]
    gold = [r["overall"] <= 2.0 for r in judged]
    p, r, f1, corr = figures(rows)
    best_j = max(
        ((t / 100, prf([row["jaccard"] >= t / 100 for row in judged], gold)) for t in range(1, 100)),
        key=lambda x: x[1][2],
    )
    corr_j = pearson([row["jaccard"] for row in rows], [-row["overall"] for row in rows])

    # Copies: every variant of a text must be found a copy; the other article of a pair must not
    # be (unless the two are the same text).
    rng = random.Random(13)
    trials: list[tuple[str, str, bool]] = []  # (article a, candidate id, is a copy of a)
    variants: dict[str, str] = {}
    for pair in pairs:
        a, _ = done[pair["a"]["id"]]
        if len(a.text.split()) < 30:  # too short to make copies of (after cleaning)
            continue
        for i, text in enumerate(copy_variants(a.text, rng)):
            variants[f"{a.article_id}-v{i}"] = text
            trials.append((a.article_id, f"{a.article_id}-v{i}", True))
        trials.append((a.article_id, pair["b"]["id"], pair["a"]["text"] == pair["b"]["text"]))
    done |= featurize(tagger, list(variants.items()), encoder)
    copy_pred, copy_gold = [], []
    for a_id, candidate, is_copy in trials:
        index = StoryIndex()
        index.assign(done[a_id][1])
        decision = index.assign(done[candidate][1])
        copy_pred.append(decision.duplicate_of == a_id)
        copy_gold.append(is_copy)
    cp, cr, cf1 = prf(copy_pred, copy_gold)

    report = "\n".join(
        [
            f"{len(pairs)} pairs from {path} ({len(judged)} judged: {sum(gold)} same, {len(gold) - sum(gold)} not); "
            f"{len(pairs) / elapsed:.1f} pairs/s; embeddings in {args.embed_precision}"
            + (f" (feed-forward-down products: {encoder.down})" if encoder.down else ""),
            "",
            "| method | precision | recall | F1 | Pearson(score, -overall) |",
            "|---|---|---|---|---|",
            f"| word-set Jaccard, best threshold {best_j[0]:.2f} (baseline) | {best_j[1][0]:.3f} | {best_j[1][1]:.3f} | "
            f"{best_j[1][2]:.3f} | {corr_j:.3f} |",
            f"| newsflow StoryIndex (same story) | {p:.3f} | {r:.3f} | {f1:.3f} | {corr:.3f} |",
            *(
                "| newsflow, half {} ({} pairs) | {:.3f} | {:.3f} | {:.3f} | {:.3f} |".format(
                    half,
                    sum(row["half"] == half for row in rows),
                    *figures([x for x in rows if x["half"] == half]),
                )
                for half in "AB"
            ),
            "",
            f"F1 ratio newsflow/baseline: {f1 / best_j[1][2]:.3f}",
            "",
            f"stream: all {len(texts)} articles through one index, {STREAM_ORDERS} shuffled orders, split threshold {options.split_threshold} "
            f"(largest story {max(x[2] for x in streams)} articles; {mean(x[3] for x in streams):.1f} story merges and {mean(x[4] for x in streams):.1f} splits per order); judged pairs: "
            f"precision {mean(x[0][0] for x in streams):.3f}, recall {mean(x[0][1] for x in streams):.3f}, "
            f"F1 {mean(x[0][2] for x in streams):.3f} (min {min(x[0][2] for x in streams):.3f})",
            "",
            f"| stream purity ({len(events.event)} articles, {len(set(events.event.values()))} events; "
            f"{events.labelled} labelled in {args.events.name}) | purity | recall | purity, worst order |",
            "|---|---|---|---|",
            *(
                f"| {name} | {mean(x[1][i][0] for x in streams):.3f} | {mean(x[1][i][1] for x in streams):.3f} "
                f"| {min(x[1][i][0] for x in streams):.3f} |"
                for i, name in enumerate(("all", "half A", "half B"))
            ),
            "",
            "(the purity halves split events, by a hash of their first article; the pairs' halves split pairs)",
            "",
            f"dated streams (synthetic dates: each event on a day of {DATED_SPAN_DAYS}, its reports within "
            f"{REPORT_HOURS:.0f} h; {STREAM_ORDERS} draws) | purity | recall | purity, half A | half B | recall, half A | half B |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {DATED_MODES[mode]} | "
                + " | ".join(
                    f"{mean(draw[part][measure] for draw in dated[mode]):.3f}"
                    for measure, part in DATED_COLUMNS
                )
                + " |"
                for mode in DATED_MODES
            ),
            "",
            f"copies: {sum(copy_gold)} generated variants, {len(copy_gold) - sum(copy_gold)} independent articles: "
            f"precision {cp:.3f}, recall {cr:.3f}, F1 {cf1:.3f}",
        ]
    )
    print(report)
    if args.dump:
        with args.dump.open("w") as fh:
            for row in rows:
                fh.write(json.dumps({k: row[k] for k in ("pair_id", "same_story", "score")}) + "\n")
    if args.record:
        record("Story dedup quality", report)
    measured = {
        "story_f1": f1,
        "story_purity": mean(x[1][0][0] for x in streams),
        "story_purity_dated": mean(x[0][0] for x in dated["backfill"]),
        "story_stream_f1": mean(x[0][2] for x in streams),
        "copies_f1": cf1,
    }
    return check_floors(measured) if args.check else 0


if __name__ == "__main__":
    sys.exit(main())
