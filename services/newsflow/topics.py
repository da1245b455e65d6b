"""Create the project's topics explicitly (the broker's auto-create is off on purpose).

Usage: newsflow-topics            (reads NEWSFLOW_KAFKA_* / NEWSFLOW_TOPIC_* variables)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.conn import create_conn
from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    NodeNotReadyError,
    RequestTimedOutError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    UnsupportedSaslMechanismError,
    for_code,
)

from newsflow.logs import configure as configure_logging
from newsflow.logs import escape_controls
from newsflow.settings import (
    CommandLine,
    KafkaSettings,
    LogSettings,
    client_options,
    env_help,
    load_settings_or_exit,
)

log = logging.getLogger("newsflow.topics")
# How often a wait for the broker says that it is still waiting.
NOTE_WAITING_SECONDS = 5.0

# Dead letters are evidence: keep them a month. Stories are compacted so a consumer can build
# the current view of every story from the topic alone.
DEAD_LETTER_RETENTION_MS = 30 * 24 * 3600 * 1000
# The workers' shared results are only worth minutes: followers start at the end, and the topic
# keeps a quarter of an hour (in 5-minute segments, so that old ones go) for a look at it.
RECENT_RESULTS = {"retention.ms": str(15 * 60 * 1000), "segment.ms": str(5 * 60 * 1000)}


# Compacted topics are read from their start by every (re)starting reader: roll segments hourly
# (the active one is never compacted) and compact once a tenth is superseded, so what a reader
# replays stays close to one record per key.
COMPACTED = {"cleanup.policy": "compact", "segment.ms": str(3600 * 1000), "min.cleanable.dirty.ratio": "0.1"}


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(kafka: KafkaSettings) -> list[TopicSpec]:
    """Return every topic the pipeline needs, with its partition count and config."""
    size = message_size_config(kafka)
    return [
        # Stamped by the broker on arrival, whoever writes to it (a replicator, a connector, a client
        # stamping crawl times): the end-to-end latency is measured from that stamp.
        TopicSpec(kafka.topic_raw, kafka.raw_partitions, {**size, "message.timestamp.type": "LogAppendTime"}),
        TopicSpec(kafka.topic_enriched, kafka.raw_partitions, size),
        TopicSpec(kafka.topic_dead_letter, 1, {**size, "retention.ms": str(DEAD_LETTER_RETENTION_MS)}),
        # One partition: the dedup stage is a single writer, so its decisions never depend on
        # how raw articles were spread over partitions and workers.
        TopicSpec(kafka.topic_features, 1, size),
        TopicSpec(kafka.topic_stories, 1, {**size, **COMPACTED}),
        # The writer's memory of every article in the window, rebuilt at start: compacted, so it
        # holds one record per article (expired ones are deleted by tombstones).
        TopicSpec(kafka.topic_dedup_state, 1, {**size, **COMPACTED}),
        # What the writer learned of each outlet's boilerplate, followed by every clean stage.
        TopicSpec(kafka.topic_boilerplate, 1, {**size, **COMPACTED}),
        # What each clean stage computed, for the others (see pipeline/recent.py).
        TopicSpec(kafka.topic_recent, 1, {**size, **RECENT_RESULTS}),
    ]


def committed_reader(kafka: KafkaSettings, *topics: str) -> AIOKafkaConsumer:
    """Return an unstarted consumer of committed records only, with no group (it commits nothing).

    Given topics, it reads them from their beginning; otherwise the caller assigns and seeks.
    """
    return AIOKafkaConsumer(
        *topics,
        auto_offset_reset="earliest",
        **client_options(kafka),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=kafka.max_message_bytes,
    )


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Return every partition of `topic` ([] if there is no such topic), asking the broker.

    (`consumer.partitions_for_topic` only knows topics the consumer already follows.)
    """
    cluster = await consumer._client.fetch_all_metadata()  # noqa: SLF001 - no public call for it
    return [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]


def message_size_config(kafka: KafkaSettings) -> dict[str, str]:
    """Return the topic config that admits messages up to the configured size."""
    return {"max.message.bytes": str(kafka.max_message_bytes)}


async def _retry_until_answered(
    attempt: Callable[[], Awaitable[object]],
    retriable: type[Exception] | tuple[type[Exception], ...],
    timeout: float,
    pause: float,
    failure: str,
    waiting: str = "still waiting",
) -> None:
    """Await `attempt` until it stops raising `retriable`; raise TimeoutError(failure) after `timeout` s.

    Every NOTE_WAITING_SECONDS a warning says that it is still `waiting`, and on what.
    """
    started = time.monotonic()
    deadline, next_note = started + timeout, started + NOTE_WAITING_SECONDS
    while True:
        try:
            await attempt()
            return
        except retriable as exc:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(failure) from exc
            if now >= next_note:  # a wait that is not over in a moment is said, not silent
                log.warning("%s so far (%.0fs of %.0fs): %r", waiting, now - started, timeout, exc)
                next_note = now + NOTE_WAITING_SECONDS
            await asyncio.sleep(pause)


class BrokerRefused(KafkaError):  # type: ignore[misc]  # aiokafka ships no types
    """The broker answers but refuses us (credentials, TLS): retrying will not help."""

    def __str__(self) -> str:  # KafkaError's would start with the class name
        return str(self.args[0])


async def _probe(kafka: KafkaSettings) -> None:
    """Connect to the first bootstrap server as every client does; BrokerRefused if it refuses us."""
    options = client_options(kafka)
    host, _, port = kafka.bootstrap.split(",")[0].strip().rpartition(":")
    args = {k: v for k, v in options.items() if k != "bootstrap_servers"}
    try:
        conn = await create_conn(host, int(port), request_timeout_ms=5000, **args)
    except SaslAuthenticationFailed as exc:
        raise BrokerRefused(
            f"Kafka at {kafka.bootstrap} refused the credentials of {kafka.sasl_username!r} "
            f"({kafka.sasl_mechanism}): check NEWSFLOW_KAFKA_SASL_USERNAME/_PASSWORD"
        ) from exc
    except (IllegalSaslStateError, UnsupportedSaslMechanismError) as exc:
        # A listener without SASL answers the handshake with an error, or one without this mechanism.
        raise BrokerRefused(
            f"Kafka at {kafka.bootstrap} does not take SASL {kafka.sasl_mechanism} there ({exc}): check "
            "NEWSFLOW_KAFKA_SECURITY_PROTOCOL and NEWSFLOW_KAFKA_SASL_MECHANISM against its listener"
        ) from exc
    except ssl.SSLError as exc:
        raise BrokerRefused(
            f"TLS with Kafka at {kafka.bootstrap} failed ({exc.reason or exc}): check "
            "NEWSFLOW_KAFKA_SECURITY_PROTOCOL and NEWSFLOW_KAFKA_SSL_CAFILE"
        ) from exc
    except KafkaConnectionError as exc:
        # With TLS 1.3 a refused client certificate is an alert read after our handshake is done:
        # the connection then closes with it as the cause.
        if isinstance(exc.__cause__, ssl.SSLError):
            raise BrokerRefused(
                f"Kafka at {kafka.bootstrap} refused the TLS client "
                f"({exc.__cause__.reason or exc.__cause__}): check NEWSFLOW_KAFKA_SSL_CERTFILE and _KEYFILE "
                "(a certificate its CA signed, if the listener requires one)"
            ) from exc
        raise
    except (TimeoutError, OSError) as exc:
        raise KafkaConnectionError(str(exc)) from exc
    conn.close()


class MissingTopic(KafkaError):  # type: ignore[misc]  # aiokafka ships no types
    """A topic the client needs is not on the broker (which newsflow's deployments never let
    create topics on first use: newsflow-topics makes them, with their partitions and config)."""

    def __str__(self) -> str:  # KafkaError's would start with the class name
        return str(self.args[0])


async def wait_for_broker(kafka: KafkaSettings, timeout: float = 60.0, topics: Collection[str] = ()) -> None:
    """Return once the broker answers a metadata request; raise TimeoutError after `timeout` s.

    A broker that refuses the credentials or the TLS handshake raises BrokerRefused at once, and
    one without all of `topics` MissingTopic.
    """
    found: list[str] = []

    async def list_topics() -> None:
        await _probe(kafka)
        admin = AIOKafkaAdminClient(**client_options(kafka), request_timeout_ms=5000)
        try:
            await admin.start()
            found[:] = await admin.list_topics()
        finally:
            await admin.close()

    await _retry_until_answered(
        list_topics,
        # A broker that is starting or resuming (paused, failing over) may answer the bootstrap
        # with metadata that names no broker yet, or time out: the same as not answering.
        (KafkaConnectionError, NodeNotReadyError, RequestTimedOutError),
        timeout,
        0.5,
        f"Kafka at {kafka.bootstrap} did not answer within {timeout:.0f}s",
        f"Kafka at {kafka.bootstrap} has not answered",
    )
    if missing := sorted(set(topics).difference(found)):
        raise MissingTopic(
            f"topic {', '.join(map(repr, missing))} does not exist on {kafka.bootstrap} (newsflow-topics creates it)"
        )


class TopicCreationError(KafkaError):  # type: ignore[misc]  # aiokafka ships no types
    """The broker refused to create a topic the pipeline needs (its configuration, a policy, ACLs)."""


class TopicLayoutError(KafkaError):  # type: ignore[misc]  # aiokafka ships no types
    """An existing topic's partitions contradict what the pipeline needs."""


async def _check_layout(
    admin: AIOKafkaAdminClient, specs: list[TopicSpec], replication_factor: int = 1
) -> None:
    """Refuse a single-writer topic with more than one partition; warn of other counts that differ,
    and of fewer replicas than the settings ask for.

    Partition counts are never changed here (that would move keys). The single writer's topics
    must have one partition; the raw and enriched topics may have any number, which only sets
    how many workers can share the work, so a changed NEWSFLOW_RAW_PARTITIONS is said, not fatal.
    Replicas are an operator's to add (kafka-reassign-partitions.sh).
    """
    if not specs:
        return
    described = [t for t in await admin.describe_topics([s.name for s in specs]) if t.get("error_code") == 0]
    counts = {t["topic"]: len(t["partitions"]) for t in described}
    for t in described:
        replicas = min((len(p["replicas"]) for p in t["partitions"]), default=replication_factor)
        if replicas < replication_factor:
            log.warning(
                "topic %s has %d replicas; NEWSFLOW_TOPIC_REPLICATION_FACTOR (%d) applies to new topics only",
                t["topic"],
                replicas,
                replication_factor,
            )
    for spec in specs:
        count = counts.get(spec.name)
        if count is None or count == spec.partitions:
            continue
        if spec.partitions == 1:
            raise TopicLayoutError(
                f"topic {spec.name} has {count} partitions; the pipeline's single writer needs exactly 1 "
                "(recreate it, or point NEWSFLOW_TOPIC_* at a new one)"
            )
        log.warning(
            "topic %s keeps its %d partitions (the settings ask for %d, which applies to new topics only)",
            spec.name,
            count,
            spec.partitions,
        )


async def create_topics(kafka: KafkaSettings, specs: list[TopicSpec] | None = None) -> list[str]:
    """Create missing topics; return the names created.

    Existing topics keep their partitions (a change would move keys between partitions) but get
    the configuration of their spec, so an upgrade that raises e.g. the message size applies.
    """
    await wait_for_broker(kafka)
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        wanted = specs or topic_specs(kafka)
        await _check_layout(admin, [s for s in wanted if s.name in existing], kafka.replication_factor)
        for spec in wanted:
            if spec.name in existing:
                await _apply_config(admin, spec)
                continue
            if await _create(admin, spec, kafka.replication_factor):
                created.append(spec.name)
        await _wait_for_group_coordinator(admin)
    finally:
        await admin.close()
    return created


async def _create(
    admin: AIOKafkaAdminClient, spec: TopicSpec, replication_factor: int = 1, attempts: int = 5
) -> bool:
    """Create one topic; return False if it exists already (another worker made it first).

    The broker answers per topic, and aiokafka raises none of those errors: a refusal (its
    configuration, a policy, ACLs) raises TopicCreationError; a retriable one (a timeout, the
    controller moving) is tried again.
    """
    new = NewTopic(
        spec.name,
        num_partitions=spec.partitions,
        replication_factor=replication_factor,
        topic_configs=spec.config,
    )
    for attempt in range(attempts):
        try:
            response = await admin.create_topics([new])
        except TopicAlreadyExistsError:
            return False
        errors = [(code, message[0] if message else None) for _, code, *message in response.topic_errors]
        code, message = errors[0] if errors else (0, None)
        if code == 0:
            return True
        if code == TopicAlreadyExistsError.errno:
            return False
        error = for_code(code)
        if error.retriable and attempt + 1 < attempts:
            log.warning("creating topic %s: %s; trying again", spec.name, error.__name__)
            await asyncio.sleep(1.0)
            continue
        detail = f": {message}" if message else ""
        raise TopicCreationError(f"the broker refused to create topic {spec.name} ({error.__name__}{detail})")
    raise AssertionError("unreachable")


async def _wait_for_group_coordinator(admin: AIOKafkaAdminClient, timeout: float = 60.0) -> None:
    # A new broker creates its offsets topic on the first group lookup and answers "coordinator
    # not available" until it is loaded. Waiting here means a worker's first join just works,
    # instead of logging errors while it retries.
    await _retry_until_answered(
        lambda: admin.find_coordinator("newsflow-topics"),
        GroupCoordinatorNotAvailableError,
        timeout,
        0.2,
        f"Kafka has no group coordinator after {timeout:.0f}s",
        "Kafka has no group coordinator yet",
    )


async def _apply_config(admin: AIOKafkaAdminClient, spec: TopicSpec) -> None:
    # AlterConfigs sets the whole topic config: keys missing from the spec return to defaults.
    responses = await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, spec.name, spec.config)])
    for response in responses:
        for error_code, error_message, *_ in response.resources:
            if error_code:
                raise KafkaError(f"cannot configure topic {spec.name}: {error_message} (error {error_code})")


def main(argv: list[str] | None = None) -> int:
    parser = CommandLine(
        prog="newsflow-topics",
        description="Create newsflow's Kafka topics if they do not exist and apply their configuration.",
        epilog=env_help(KafkaSettings, LogSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    kafka, log_settings = load_settings_or_exit("newsflow-topics", KafkaSettings, LogSettings)
    configure_logging(log_settings.level)
    escape_controls()
    try:
        created = asyncio.run(create_topics(kafka))
    except (TimeoutError, KafkaError) as exc:
        sys.stderr.write(f"newsflow-topics: error: {exc}\n")
        return 1
    log.info("topics ready on %s (created: %s)", kafka.bootstrap, ", ".join(created) or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
