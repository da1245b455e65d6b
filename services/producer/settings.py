"""Producer settings (NEWSFLOW_PRODUCER_*), built once in main()."""

from __future__ import annotations

from dataclasses import dataclass

from newsflow.settings import env


@dataclass(frozen=True)
class ProducerSettings:
    max_file_bytes: int = env(
        "NEWSFLOW_PRODUCER_MAX_FILE_BYTES", 5_000_000, "files larger than this are skipped"
    )
    metrics_port: int = env("NEWSFLOW_PRODUCER_METRICS_PORT", 0, "port of /metrics (0: no endpoint)")
    watch_seconds: float = env(
        "NEWSFLOW_PRODUCER_WATCH_SECONDS",
        0.0,
        "rescan the inputs this often and send new files (0: one pass)",
    )
    linger_ms: int = env("NEWSFLOW_PRODUCER_LINGER_MS", 5, "batching delay of the Kafka producer")
