"""Every Prometheus metric the worker exports, declared in one place.

Labels are bounded: stage, outcome and reason come from fixed vocabularies in the code,
topic and partition from the topic layout; no article ids. Outlets label only the extraction-quality
series, and only the first `MAX_OUTLET_LABELS` outlets a worker sees: the rest count as "other".
"""

from __future__ import annotations

from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from newsflow.logs import printable

# Per-article stage work runs from ~1 ms (plain text) to a second (huge HTML pages); a parse is
# cut off at NEWSFLOW_EXTRACT_MAX_PARSE_SECONDS (10 s by default), which a p99 panel must show.
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Produce-to-enriched includes batching waits and consumer polls: tens of ms to minutes on backlog.
E2E_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


# Outlets with series of their own, per worker (each adds a handful of series).
MAX_OUTLET_LABELS = 200
OTHER_OUTLETS = "other"
# An outlet is named by its input: in a label, as in a log line, it is made printable and
# bounded (a 100 kB name made each scrape 100 kB larger per series).
MAX_OUTLET_LABEL_CHARS = 100


class OutletLabels:
    """The `outlet` label of an article: its outlet (printable, at most MAX_OUTLET_LABEL_CHARS), for
    the first `limit` outlets seen, else "other"."""

    def __init__(self, limit: int = MAX_OUTLET_LABELS) -> None:
        self.limit = limit
        self.known: set[str] = set()

    def __call__(self, outlet: str) -> str:
        outlet = printable(outlet[: MAX_OUTLET_LABEL_CHARS * 2])[:MAX_OUTLET_LABEL_CHARS]
        if outlet in self.known:
            return outlet
        if len(self.known) < self.limit:
            self.known.add(outlet)
            return outlet
        return OTHER_OUTLETS


class WorkerMetrics(NamedTuple):
    messages: Counter
    dead_letters: Counter
    stage_seconds: Histogram
    end_to_end_seconds: Histogram
    batch_size: Histogram
    consumer_lag: Gauge
    build_info: Info
    model_load_seconds: Gauge
    dedup_decisions: Counter
    dedup_merges: Counter
    dedup_splits: Counter
    dedup_index_articles: Gauge
    dedup_stories_open: Gauge
    desk_rebuild_seconds: Gauge
    dedup_snapshots: Counter
    extracted_articles: Counter
    extracted_chars: Counter
    boilerplate_lines: Counter
    reused: Counter
    shared_results: Counter
    replica_following: Gauge


# An article's extraction.status (enriched-article.schema.json).
EXTRACTION_STATUSES = ("ok", "truncated", "not_article", "empty")

# What befalls the dedup writer's snapshots (worker/snapshot.py): written, or failed to be (a
# fork refused, the child's write failed or was killed as stuck); at a rebuild, one loaded, or one
# there but not used (unreadable, of another topic, too old, its marker gone, other options).
SNAPSHOT_EVENTS = ("written", "write_failed", "loaded", "not_used")

# Series that dashboards and alerts rate(): created at 0 on start-up, so the first increase after
# a (re)start is seen instead of the series appearing with its first value already counted.
INITIAL_SERIES: dict[str, list[tuple[str, ...]]] = {
    "messages": [
        ("decode", "in"),
        *(("extract", status) for status in EXTRACTION_STATUSES),
        *((stage, "rejected") for stage in ("decode", "extract", "enrich", "dedup")),
        ("enrich", "unsendable"),
        ("dedup", "in"),
        ("dedup", "duplicate"),
        ("output", "out"),
    ],
    # Every (stage, reason) a dead letter can have (dead-letter.schema.json): the rate of dead
    # letters is 0, not no data, on a worker that has written none yet.
    "dead_letters": [
        ("decode", "bad_headers"),
        ("decode", "unsupported_type"),
        *(
            ("extract", r)
            for r in ("empty", "too_large", "undecodable", "bad_envelope", "timeout", "internal_error")
        ),
        ("enrich", "internal_error"),
        ("dedup", "bad_features"),
        ("dedup", "internal_error"),
    ],
    "dedup_decisions": [("new_story",), ("joined_story",), ("copy",), ("no_story",)],
    "dedup_snapshots": [(event,) for event in SNAPSHOT_EVENTS],
    "reused": [("entities",), ("features",)],
    "shared_results": [("sent",), ("failed",), ("dropped",), ("adopted",), ("known",), ("refused",)],
}


def create_metrics(registry: CollectorRegistry) -> WorkerMetrics:
    metrics = _declare(registry)
    for name, label_sets in INITIAL_SERIES.items():
        family: Any = getattr(metrics, name)
        for labels in label_sets:
            family.labels(*labels)
    return metrics


def _declare(registry: CollectorRegistry) -> WorkerMetrics:
    return WorkerMetrics(
        messages=Counter(
            "newsflow_worker_messages_total",
            "Messages handled per stage and outcome: in (decode, dedup), the extraction status (extract), "
            "rejected (dead-lettered), unsendable (enrich: a batch retried), duplicate (dedup: a redelivery), out (output).",
            ["stage", "outcome"],
            registry=registry,
        ),
        dead_letters=Counter(
            "newsflow_worker_dead_letters_total",
            "Inputs sent to the dead-letter topic, by stage and reason.",
            ["stage", "reason"],
            registry=registry,
        ),
        stage_seconds=Histogram(
            "newsflow_worker_stage_seconds",
            "Processing time per article and stage, one observation per article (entities and dedup run a batch at once: each of its articles observes the batch's time over their number).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        ),
        end_to_end_seconds=Histogram(
            "newsflow_worker_end_to_end_seconds",
            "Time from the raw article's arrival in Kafka (the raw topic's broker-set timestamp) to the enriched record being sent.",
            buckets=E2E_BUCKETS,
            registry=registry,
        ),
        batch_size=Histogram(
            "newsflow_worker_batch_size",
            "Articles per processed batch.",
            ["stage"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        ),
        consumer_lag=Gauge(
            "newsflow_worker_consumer_lag_messages",
            "Messages between the end of a partition and this worker's position.",
            ["topic", "partition"],
            registry=registry,
        ),
        build_info=Info("newsflow_build", "Version of newsflow and of its key libraries.", registry=registry),
        model_load_seconds=Gauge(
            "newsflow_ner_model_load_seconds",
            "Time it took to load the NER model at start-up.",
            registry=registry,
        ),
        dedup_decisions=Counter(
            "newsflow_dedup_decisions_total",
            "Dedup decisions: new_story, joined_story (same event, other report), copy, or no_story (a page with no text left after cleaning, or a short text that joined no story).",
            ["decision"],
            registry=registry,
        ),
        dedup_merges=Counter(
            "newsflow_dedup_story_merges_total",
            "Open stories merged into another (a report linked two that told one event); see merged_into.",
            registry=registry,
        ),
        dedup_splits=Counter(
            "newsflow_dedup_story_splits_total",
            "Stories split from another (its members told two events); see split_from.",
            registry=registry,
        ),
        dedup_index_articles=Gauge(
            "newsflow_dedup_index_articles",
            "Articles held in the dedup index (within the window).",
            registry=registry,
        ),
        dedup_stories_open=Gauge(
            "newsflow_dedup_stories_open",
            "Stories still open for new members (within the window).",
            registry=registry,
        ),
        desk_rebuild_seconds=Gauge(
            "newsflow_dedup_rebuild_seconds",
            "Time the dedup writer last took to rebuild its state from the state topic.",
            registry=registry,
        ),
        dedup_snapshots=Counter(
            "newsflow_dedup_snapshots_total",
            "The dedup writer's snapshots of its state: written, write_failed (a restart then replays "
            "the whole state topic), and at a rebuild loaded or not_used (one there but unusable).",
            ["event"],
            registry=registry,
        ),
        # Per-outlet extraction quality: a layout change shows as shorter texts, more empty
        # extractions or more boilerplate (the NewsflowOutletExtraction* alerts).
        extracted_articles=Counter(
            "newsflow_extraction_articles_total",
            "Articles cleaned, by outlet and extraction status (ok, not_article, truncated, empty).",
            ["outlet", "status"],
            registry=registry,
        ),
        extracted_chars=Counter(
            "newsflow_extraction_text_chars_total",
            "Characters of text kept after cleaning, by outlet (divided by the articles: mean length).",
            ["outlet"],
            registry=registry,
        ),
        boilerplate_lines=Counter(
            "newsflow_extraction_boilerplate_lines_total",
            "Lines removed as boilerplate (rules and the outlet's learned lines), by outlet.",
            ["outlet"],
            registry=registry,
        ),
        # A text seen lately (a page fetched again, a wire story carried verbatim) is not run
        # through the NER model or the sentence encoder again (pipeline/recent.py).
        reused=Counter(
            "newsflow_stage_reused_total",
            "Articles whose NER spans (entities) or embedding (features) were those of the same "
            "text computed lately, not computed again.",
            ["stage"],
            registry=registry,
        ),
        replica_following=Gauge(
            "newsflow_replica_following",
            "1 once this worker has caught up with a topic it keeps a copy of (boilerplate rules, "
            "others' recent results); 0 before that, and after its reader failed (a missing topic, "
            "an authorization error) until it catches up again.",
            ["topic"],
            registry=registry,
        ),
        shared_results=Counter(
            "newsflow_recent_shared_total",
            "NER spans and embeddings shared between workers: sent by this one, failed to send, or "
            "dropped (its outbox full, or unsent or unanswered at a stop); read back from the "
            "shared topic: adopted (another worker's), known (mostly its own), or refused (another "
            "model's, code version's or precision's, or malformed).",
            ["outcome"],
            registry=registry,
        ),
    )
