"""Producer settings (NEWSFLOW_PRODUCER_*), built once in main()."""

from __future__ import annotations

from dataclasses import dataclass

from newsflow.pipeline.options import ExtractOptions
from newsflow.settings import KafkaSettings, SettingsError, env

# What a raw message carries besides the file: its key, headers (a URL, a title) and framing.
MESSAGE_OVERHEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class ProducerSettings:
    # The extraction stage's own bound: what it would refuse is not worth sending.
    max_file_bytes: int = env(
        "NEWSFLOW_PRODUCER_MAX_FILE_BYTES",
        ExtractOptions().max_input_bytes,
        "content larger than this (after decompression) is skipped",
        minimum=1,
    )
    metrics_port: int = env(
        "NEWSFLOW_PRODUCER_METRICS_PORT", 0, "port of /metrics (0: no endpoint)", minimum=0, maximum=65535
    )
    watch_seconds: float = env(
        "NEWSFLOW_PRODUCER_WATCH_SECONDS",
        0.0,
        "watch the input folders, rescanning at least this often (0: one pass; --watch: 5)",
        minimum=0,
    )
    linger_ms: int = env("NEWSFLOW_PRODUCER_LINGER_MS", 5, "batching delay of the Kafka producer", minimum=0)
    outlet_map: str = env(
        "NEWSFLOW_PRODUCER_OUTLET_MAP",
        "",
        "outlets of WARC hosts, host=outlet,... (default: the host name without www.)",
    )
    quiet_seconds: float = env(
        "NEWSFLOW_PRODUCER_QUIET_SECONDS",
        2.0,
        "watch mode: a file is sent once its size and mtime have not changed for this long",
        minimum=0,
    )
    state_file: str = env(
        "NEWSFLOW_PRODUCER_STATE_FILE",
        ".cache/producer/sent.jsonl",
        "watch mode: the record of files sent (acknowledged by the broker), kept across restarts",
    )
    forget_hours: float = env(
        "NEWSFLOW_PRODUCER_FORGET_HOURS",
        24.0,
        "watch mode: a sent file that is gone is dropped from the state file once sent this long ago "
        "(so it does not grow for ever; put back, it is sent again); 0 keeps every file",
        minimum=0,
    )
    host: str = env(
        "NEWSFLOW_PRODUCER_HOST",
        "127.0.0.1",
        "address /metrics and POST /articles listen on (0.0.0.0 in a container; the ingest has no authentication)",
    )
    http_port: int = env(
        "NEWSFLOW_PRODUCER_HTTP_PORT",
        0,
        "port of POST /articles and /healthz (0: off)",
        minimum=0,
        maximum=65535,
    )
    http_max_body_bytes: int = env(
        "NEWSFLOW_PRODUCER_HTTP_MAX_BODY_BYTES",
        10_000_000,
        "largest POST /articles body (413 above)",
        minimum=1,
    )

    def unsendable_with(self, kafka: KafkaSettings) -> str | None:
        """Why files this producer reads could not be sent to this broker (None if they can)."""
        if self.max_file_bytes > kafka.max_message_bytes - MESSAGE_OVERHEAD_BYTES:
            return (
                f"NEWSFLOW_PRODUCER_MAX_FILE_BYTES={self.max_file_bytes} leaves no room under "
                f"NEWSFLOW_KAFKA_MAX_MESSAGE_BYTES={kafka.max_message_bytes} for a message's key and "
                f"headers ({MESSAGE_OVERHEAD_BYTES // 1024} KiB): the largest files could not be sent"
            )
        return None

    def __post_init__(self) -> None:
        parse_outlet_map(self.outlet_map)  # refused now, naming the variable, not dropped in part


def parse_outlet_map(text: str) -> dict[str, str]:
    """Return {host: outlet} from 'host=outlet,host2=outlet2' (www. is ignored on hosts); an
    entry that is not host=outlet is a SettingsError."""
    found = {}
    for part in filter(str.strip, text.split(",")):
        host, equals, outlet = part.partition("=")
        if not equals or not host.strip() or not outlet.strip():
            raise SettingsError(f"NEWSFLOW_PRODUCER_OUTLET_MAP: {part.strip()!r} is not host=outlet")
        found[host.strip().lower().removeprefix("www.")] = outlet.strip()
    return found
