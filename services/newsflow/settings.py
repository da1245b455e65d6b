"""Typed, frozen settings built once from NEWSFLOW_* environment variables.

Each field declares its variable and help text in its metadata, so `--help`, the README table
and the docker-compose consistency test all read the same declaration.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")


class SettingsError(ValueError):
    """A variable is set to a value its field cannot take; the message names the variable."""


def env(
    name: str,
    default: Any,
    help: str,  # noqa: A002 - argparse's word
    secret: bool = False,
    minimum: float | None = None,
    choices: tuple[str, ...] | None = None,
    maximum: float | None = None,
) -> Any:
    """Declare a settings field read from environment variable `name`.

    A secret is also read from the file named by `<name>_FILE`, and is never shown (repr, --help).
    A value outside [`minimum`, `maximum`], not finite, or not one of `choices` (any case) is
    refused with the variable named.
    """
    metadata = {
        "env": name,
        "help": help,
        "secret": secret,
        "minimum": minimum,
        "maximum": maximum,
        "choices": choices,
    }
    return field(default=default, repr=not secret, metadata=metadata)


def _check(value: Any, raw: str, f: dataclasses.Field[Any], name: str) -> Any:
    minimum, maximum, choices = (f.metadata.get(k) for k in ("minimum", "maximum", "choices"))
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingsError(f"{name}={raw!r} is not a finite number")
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name}={raw!r} is below {minimum:g}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name}={raw!r} is above {maximum:g}")
    if choices is not None:
        if value.lower() not in choices:
            raise SettingsError(f"{name}={raw!r} is not one of {choices}")
        return value.lower()
    return value


def _parse(raw: str, kind: Any, name: str) -> Any:
    try:
        if kind in (bool, "bool"):
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
    except ValueError as exc:
        raise SettingsError(
            f"{name}={raw!r} is not a valid {kind if isinstance(kind, str) else kind.__name__}"
        ) from exc
    return raw


def from_env(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
    """Return an instance of the settings dataclass `cls` with fields overridden from the environment."""
    environ = os.environ if environ is None else environ
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = f.metadata.get("env")
        if name and f.metadata.get("secret") and name in environ and f"{name}_FILE" in environ:
            raise SettingsError(f"{name} and {name}_FILE are both set: set one")
        if name and name in environ:
            kwargs[f.name] = _check(_parse(environ[name], f.type, name), environ[name], f, name)
        elif name and f.metadata.get("secret") and f"{name}_FILE" in environ:
            path = environ[f"{name}_FILE"]
            try:
                with open(path, encoding="utf-8") as fh:
                    kwargs[f.name] = fh.read().rstrip("\r\n")
            except OSError as exc:
                raise SettingsError(f"{name}_FILE={path!r} cannot be read: {exc.strerror}") from exc
    return cls(**kwargs)


def reader_gone() -> int:
    """Return a command's exit status once its output's reader has closed the pipe (`| head`: it
    has all it wanted), with stdout sent nowhere: Python would report the pipe again at exit."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def load_settings_or_exit(prog: str, *classes: type[Any]) -> tuple[Any, ...]:
    """Return one instance of each settings class from the environment, or exit 2 with a one-line error."""
    try:
        loaded = tuple(from_env(cls) for cls in classes)
        for settings in loaded:
            if isinstance(settings, KafkaSettings):
                check_kafka(settings)
                client_options(settings)  # a bad security setting is a usage error, now
        return loaded
    except SettingsError as exc:
        sys.stderr.write(f"{prog}: error: {exc}\n")
        raise SystemExit(2) from None


def env_vars(cls: type[Any]) -> list[tuple[str, Any, str]]:
    """Return (variable, default, help) for every field of a settings dataclass."""
    return [
        (
            f.metadata["env"],
            f.default,
            f.metadata["help"]
            + (f" (or a file: {f.metadata['env']}_FILE)" if f.metadata.get("secret") else ""),
        )
        for f in dataclasses.fields(cls)
        if "env" in f.metadata
    ]


def to_env(settings: Any) -> dict[str, str]:
    """Return the environment that makes `from_env` rebuild these settings (for a child process)."""
    return {
        f.metadata["env"]: str(getattr(settings, f.name))
        for f in dataclasses.fields(settings)
        if "env" in f.metadata
    }


def markdown_table(*classes: type[Any]) -> str:
    """Return the README's configuration table: one row per variable, from the same declarations."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for cls in classes:
        for name, default, help_ in env_vars(cls):
            shown = "(none)" if default == "" else f"`{default}`"
            meaning = help_.replace("|", "\\|")
            rows.append(f"| `{name}` | {shown} | {meaning} |")
    return "\n".join(rows)


# host:port, the host a name, an IPv4 address or an IPv6 one in brackets.
_SERVER = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")
# What Kafka accepts as a topic name.
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


def check_kafka(kafka: KafkaSettings) -> None:
    """Refuse, naming the variable, a bootstrap list or topic names the broker would only refuse
    later (or, for a port over 65535, silently wrap): the topics must be distinct too."""
    servers = [s.strip() for s in kafka.bootstrap.split(",")]
    for server in servers:
        match = _SERVER.fullmatch(server)
        if match is None or not 0 < int(match.group(1)) < 65536:
            raise SettingsError(
                f"NEWSFLOW_KAFKA_BOOTSTRAP={kafka.bootstrap!r} is not host:port[,host:port...]"
            )
    seen: dict[str, str] = {}
    for f in dataclasses.fields(kafka):
        if not f.name.startswith("topic_"):
            continue
        name, topic = f.metadata["env"], getattr(kafka, f.name)
        if not _TOPIC.fullmatch(topic) or topic in (".", ".."):
            raise SettingsError(
                f"{name}={topic!r} is not a Kafka topic name (letters, digits, '.', '_', '-')"
            )
        if topic in seen:
            raise SettingsError(f"{name}={topic!r} is also {seen[topic]}: each topic has one use")
        seen[topic] = name


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Return the connection keywords every aiokafka client of the services takes (security included)."""
    if kafka.security_protocol not in SECURITY_PROTOCOLS:
        raise SettingsError(
            f"NEWSFLOW_KAFKA_SECURITY_PROTOCOL={kafka.security_protocol!r} is not one of {SECURITY_PROTOCOLS}"
        )
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap,
        "security_protocol": kafka.security_protocol,
    }
    if "SSL" in kafka.security_protocol:
        from aiokafka.helpers import create_ssl_context

        try:
            options["ssl_context"] = create_ssl_context(
                cafile=kafka.ssl_cafile or None,
                certfile=kafka.ssl_certfile or None,
                keyfile=kafka.ssl_keyfile or None,
            )
        except OSError as exc:
            raise SettingsError(
                f"NEWSFLOW_KAFKA_SSL_*: cannot load {exc.filename or 'a file'}: {exc.strerror}"
            ) from exc
    if kafka.security_protocol.startswith("SASL"):
        if kafka.sasl_mechanism not in SASL_MECHANISMS:
            raise SettingsError(
                f"NEWSFLOW_KAFKA_SASL_MECHANISM={kafka.sasl_mechanism!r} is not one of {SASL_MECHANISMS}"
            )
        if not kafka.sasl_username:
            raise SettingsError("NEWSFLOW_KAFKA_SASL_USERNAME is empty, and SASL needs a user")
        options |= {
            "sasl_mechanism": kafka.sasl_mechanism,
            "sasl_plain_username": kafka.sasl_username,
            "sasl_plain_password": kafka.sasl_password,
        }
    return options


class CommandLine(argparse.ArgumentParser):
    """argparse with the services' one-line errors ("prog: error: what (see --help)", exit 2), not
    the usage block above the error that argparse prints."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def env_help(*classes: type[Any], more: tuple[tuple[str, Any, str], ...] = ()) -> str:
    """Return the environment-variable table that `--help` prints (`more`: (name, default, help)
    of variables a script reads)."""
    rows = [*(row for cls in classes for row in env_vars(cls)), *more]
    width = max(len(r[0]) for r in rows)
    lines = ["environment variables:"]
    lines += [f"  {name:<{width}}  {help_} (default: {default!r})" for name, default, help_ in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class KafkaSettings:
    """Broker address and topic names, shared by every service."""

    bootstrap: str = env(
        "NEWSFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:19092", "Kafka bootstrap servers, host:port[,...]"
    )
    topic_raw: str = env("NEWSFLOW_TOPIC_RAW", "newsflow.articles.raw", "topic of raw article files")
    topic_enriched: str = env("NEWSFLOW_TOPIC_ENRICHED", "newsflow.articles.enriched", "output topic")
    topic_dead_letter: str = env(
        "NEWSFLOW_TOPIC_DEAD_LETTER", "newsflow.articles.dead-letter", "rejected inputs with reason and bytes"
    )
    topic_features: str = env(
        "NEWSFLOW_TOPIC_FEATURES",
        "newsflow.articles.features",
        "per-article dedup features (single partition)",
    )
    topic_stories: str = env(
        "NEWSFLOW_TOPIC_STORIES", "newsflow.stories", "compacted topic, one record per story"
    )
    topic_dedup_state: str = env(
        "NEWSFLOW_TOPIC_DEDUP_STATE",
        "newsflow.dedup.state",
        "the dedup writer's state (internal, compacted, transactional)",
    )
    topic_boilerplate: str = env(
        "NEWSFLOW_TOPIC_BOILERPLATE",
        "newsflow.boilerplate",
        "each outlet's learned boilerplate (internal, compacted, transactional)",
    )
    topic_recent: str = env(
        "NEWSFLOW_TOPIC_RECENT",
        "newsflow.recent-results",
        "NER spans and embeddings each worker computed, for the others (internal, kept 15 minutes)",
    )
    raw_partitions: int = env(
        "NEWSFLOW_RAW_PARTITIONS", 4, "partitions of the raw and enriched topics", minimum=1
    )
    replication_factor: int = env(
        "NEWSFLOW_TOPIC_REPLICATION_FACTOR",
        1,
        "replicas of each topic newsflow creates (3 on a cluster of three brokers or more, with the "
        "brokers' min.insync.replicas at 2: the writer's state topic cannot be rebuilt once lost)",
        minimum=1,
    )
    security_protocol: str = env(
        "NEWSFLOW_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    sasl_mechanism: str = env(
        "NEWSFLOW_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", "with SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
    )
    sasl_username: str = env("NEWSFLOW_KAFKA_SASL_USERNAME", "", "with SASL: the user")
    sasl_password: str = env("NEWSFLOW_KAFKA_SASL_PASSWORD", "", "with SASL: the password", secret=True)
    ssl_cafile: str = env(
        "NEWSFLOW_KAFKA_SSL_CAFILE", "", "with SSL: CA certificates to trust (PEM; default: the system's)"
    )
    ssl_certfile: str = env(
        "NEWSFLOW_KAFKA_SSL_CERTFILE", "", "with SSL: client certificate (PEM), if the broker asks for one"
    )
    ssl_keyfile: str = env("NEWSFLOW_KAFKA_SSL_KEYFILE", "", "with SSL: the client certificate's key (PEM)")
    # Kafka's own default (1 MiB) is below the 5 MB input files the producer accepts; a dead
    # letter carries its input as base64 (4/3 of the bytes) plus headers.
    max_message_bytes: int = env(
        "NEWSFLOW_KAFKA_MAX_MESSAGE_BYTES",
        8_388_608,
        "largest message sent and accepted (topic max.message.bytes; Kafka's 1 MiB default is below the 5 MB inputs, and a dead letter carries its input as base64)",
        minimum=1024,
    )


@dataclass(frozen=True)
class LogSettings:
    """What every service logs."""

    level: str = env(
        "NEWSFLOW_LOG_LEVEL",
        "info",
        "log level of every service: debug, info, warning, error or critical",
        choices=("debug", "info", "warning", "error", "critical"),
    )


def documented_settings() -> tuple[type[Any], ...]:
    """Return every settings class, in the order of the README's configuration table."""
    from newsflow.localrun import RunSettings
    from newsflow.producer.settings import ProducerSettings
    from newsflow.web.settings import WebSettings
    from newsflow.worker.settings import WorkerSettings

    return KafkaSettings, LogSettings, WorkerSettings, ProducerSettings, RunSettings, WebSettings


if __name__ == "__main__":  # python -m newsflow.settings: the README's configuration table
    sys.stdout.write(markdown_table(*documented_settings()) + "\n")
