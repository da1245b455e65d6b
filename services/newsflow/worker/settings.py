"""Worker settings (NEWSFLOW_WORKER_*, NEWSFLOW_EXTRACT_*, NEWSFLOW_NER_*, NEWSFLOW_DEDUP_*)."""

from __future__ import annotations

from dataclasses import dataclass

from newsflow.pipeline.options import (
    EMBED_DOWN,
    EMBED_DOWN_KERNELS,
    EMBED_PRECISION,
    EMBED_PRECISIONS,
    NER_MAX_CHARS,
    NER_MODEL,
    DedupOptions,
    ExtractOptions,
    model_installed,
)
from newsflow.pipeline.recent import RECENT_INPUTS
from newsflow.settings import SettingsError, env

# The stages' own defaults: each is written once, in pipeline/options.py.
_EXTRACT = ExtractOptions()
_DEDUP = DedupOptions()


@dataclass(frozen=True)
class WorkerSettings:
    app_id: str = env(
        "NEWSFLOW_WORKER_APP_ID",
        "newsflow-worker",
        "Faust app id: the consumer group and the writer's transactional id",
    )
    data_dir: str = env("NEWSFLOW_WORKER_DATA_DIR", ".cache/worker", "Faust data dir")
    metrics_port: int = env(
        "NEWSFLOW_WORKER_METRICS_PORT", 9101, "port of /metrics (0: no endpoint)", minimum=0, maximum=65535
    )
    metrics_host: str = env(
        "NEWSFLOW_WORKER_METRICS_HOST", "127.0.0.1", "address /metrics listens on (0.0.0.0 in a container)"
    )
    batch_size: int = env(
        "NEWSFLOW_WORKER_BATCH_SIZE", 32, "articles cleaned and tagged per batch", minimum=1
    )
    # Faust's take waits this long after every batch unless the batch fills, even with articles
    # waiting: under a trickle it is most of an article's latency, once per stage. Under load the
    # batches still fill, from what arrived while the last one ran (bench/RESULTS.md, run notes of 12-02 18:52).
    batch_seconds: float = env(
        # Above 0: Faust's take waits for a full batch when `within` is 0.
        "NEWSFLOW_WORKER_BATCH_SECONDS",
        0.02,
        "longest wait to fill a batch (above 0)",
        minimum=0.001,
    )
    dedup_batch_size: int = env(
        "NEWSFLOW_WORKER_DEDUP_BATCH_SIZE",
        64,
        "articles the dedup writer decides per Kafka transaction",
        minimum=1,
    )
    dedup_batch_seconds: float = env(
        "NEWSFLOW_WORKER_DEDUP_BATCH_SECONDS",
        0.02,
        "longest wait to fill a dedup transaction (above 0)",
        minimum=0.001,
    )
    snapshot_seconds: float = env(
        "NEWSFLOW_WORKER_SNAPSHOT_SECONDS",
        300.0,
        "the dedup writer snapshots its desk into the data dir this often, for fast restarts (0: never)",
        minimum=0,
    )
    session_timeout_seconds: float = env(
        "NEWSFLOW_WORKER_SESSION_TIMEOUT_SECONDS",
        10.0,
        "how long the group waits for a silent worker before moving its partitions",
        minimum=6,  # Kafka's group.min.session.timeout.ms: a shorter one is refused at the join
        maximum=90,  # Faust's broker_request_timeout: a longer one stops the worker at its start
    )
    instance_id: str = env(
        "NEWSFLOW_WORKER_INSTANCE_ID",
        "",
        "static group membership: a worker restarted under the same id takes its partitions back at once",
    )
    stop_seconds: float = env(
        "NEWSFLOW_WORKER_STOP_SECONDS",
        8.0,
        "after SIGTERM, exit at the latest this long after (a stop waits for Kafka otherwise)",
        minimum=1,
    )
    compute_threads: int = env(
        "NEWSFLOW_WORKER_COMPUTE_THREADS",
        1,
        "1: the models take turns on one core; 2 or more: the sentence embeddings run beside NER, each model on half of them (1.3-1.7x the rate where a second core is free; scale with workers first)",
        minimum=1,
    )
    embed_precision: str = env(
        "NEWSFLOW_WORKER_EMBED_PRECISION",
        EMBED_PRECISION,
        "arithmetic of the embedding model: int8 (the encoder 1.5-2x as fast, by CPU) or float32 (the model's own numbers)",
        choices=EMBED_PRECISIONS,
    )
    embed_down: str = env(
        "NEWSFLOW_WORKER_EMBED_DOWN",
        EMBED_DOWN,
        "int8: kernel of the embedding's feed-forward-down products: blocks (8-bit, fast with VNNI), float (faster without), or auto (blocks if the CPU has VNNI or Arm dotprod; pin it for a fleet of mixed CPUs)",
        choices=("auto", *EMBED_DOWN_KERNELS),
    )
    recent_texts: int = env(
        "NEWSFLOW_WORKER_RECENT_TEXTS",
        RECENT_INPUTS,
        "texts whose NER spans and embedding are kept, so a text seen again is not computed again (0: none, and none shared)",
        minimum=0,
    )
    share_recent: bool = env(
        "NEWSFLOW_WORKER_SHARE_RECENT",
        True,
        "publish the NER spans and embeddings computed here and take the other workers' (NEWSFLOW_TOPIC_RECENT)",
    )
    max_input_bytes: int = env(
        "NEWSFLOW_EXTRACT_MAX_INPUT_BYTES",
        _EXTRACT.max_input_bytes,
        "larger inputs are dead-lettered (too_large)",
        minimum=1,
    )
    max_parse_seconds: float = env(
        "NEWSFLOW_EXTRACT_MAX_PARSE_SECONDS",
        _EXTRACT.max_parse_seconds,
        "wall-clock bound on parsing one input; slower ones are dead-lettered (timeout; 0: no bound)",
        minimum=0,
    )
    max_read_elements: int = env(
        "NEWSFLOW_EXTRACT_MAX_READ_ELEMENTS",
        _EXTRACT.max_read_elements,
        "a page is read only as far as its first this many elements (news pages have a few thousand)",
        minimum=1,
    )
    min_article_words: int = env(
        "NEWSFLOW_EXTRACT_MIN_ARTICLE_WORDS",
        _EXTRACT.min_article_words,
        "fewer words: extraction.status is not_article (joins a story, never opens one)",
        minimum=0,
    )
    ner_model: str = env(
        "NEWSFLOW_NER_MODEL", NER_MODEL, "installed spaCy pipeline used for NER (e.g. a larger English model)"
    )
    ner_max_chars: int = env(
        "NEWSFLOW_NER_MAX_CHARS",
        NER_MAX_CHARS,
        "NER reads at most this many characters per article (names found there are counted past it)",
        minimum=1,
    )
    story_threshold: float = env(
        "NEWSFLOW_DEDUP_STORY_THRESHOLD",
        _DEDUP.story_threshold,
        "meaning similarity at which an article joins a story",
        minimum=0,
        maximum=1,  # a similarity or a share
    )
    copy_containment: float = env(
        "NEWSFLOW_DEDUP_COPY_CONTAINMENT",
        _DEDUP.copy_containment,
        "shared-shingle share that makes a copy",
        minimum=0,
        maximum=1,  # a similarity or a share
    )
    split_threshold: float = env(
        "NEWSFLOW_DEDUP_SPLIT_THRESHOLD",
        _DEDUP.split_threshold,
        "a story whose members form two groups less alike than this is split in two (0: never)",
        minimum=0,
        maximum=1,  # a similarity or a share
    )
    story_window_hours: float = env(
        "NEWSFLOW_DEDUP_WINDOW_HOURS",
        _DEDUP.window_hours,
        "stories older than this are closed and forgotten; a report over 24 h from a story's counts less toward this edge",
        minimum=0,
    )
    closed_retention_hours: float = env(
        "NEWSFLOW_DEDUP_CLOSED_RETENTION_HOURS",
        _DEDUP.closed_retention_hours,
        "a closed story's record is deleted (tombstone on the stories topic) this long after it closed (0: kept)",
        minimum=0,
    )

    def __post_init__(self) -> None:
        if not model_installed(self.ner_model):
            raise SettingsError(
                f"NEWSFLOW_NER_MODEL={self.ner_model!r} is not an installed spaCy pipeline (a package or a folder)"
            )
