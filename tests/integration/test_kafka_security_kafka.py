"""Every client over SASL_SSL (SCRAM and PLAIN) against a broker of the test's own; a wrong password is
a one-line error at once; a reading principal is refused beyond the output topics; no secret is shown."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.helpers import create_ssl_context

from newsflow.settings import KafkaSettings
from tests.conftest import ROOT, SEEDS
from tests.integration.kafka_helpers import free_port

KAFKA_SH = ROOT / "deploy" / "local-kafka" / "kafka.sh"


class SecureBroker:
    def __init__(self, client_auth: str = "requested") -> None:
        self.port = free_port()
        self.password, self.reader_password = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
        self.env = {
            **os.environ,
            "NEWSFLOW_KAFKA_PORT": str(self.port),
            "NEWSFLOW_KAFKA_CONTROLLER_PORT": str(free_port()),
            "NEWSFLOW_KAFKA_SASL_USERS": f"newsflow:{self.password},reader:{self.reader_password}",
            "NEWSFLOW_KAFKA_TLS_CLIENT_AUTH": client_auth,
        }

    def run(self, *args: str) -> str:
        return subprocess.run(
            [str(KAFKA_SH), *args], env=self.env, check=True, capture_output=True, text=True
        ).stdout.strip()

    def client_env(self, user: str, mechanism: str, password_file: Path) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_KAFKA_")}
        return {
            **clean,
            "NEWSFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.port}",
            "NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "NEWSFLOW_KAFKA_SASL_MECHANISM": mechanism,
            "NEWSFLOW_KAFKA_SASL_USERNAME": user,
            "NEWSFLOW_KAFKA_SASL_PASSWORD_FILE": str(password_file),
            "NEWSFLOW_KAFKA_SSL_CAFILE": self.run("cafile"),
        }


@pytest.fixture
def broker() -> Iterator[SecureBroker]:
    b = SecureBroker()
    b.run("start")
    try:
        b.run("allow-read", "reader", KafkaSettings().topic_enriched, KafkaSettings().topic_stories)
        yield b
    finally:
        b.run("reset")


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def _secret(tmp_path: Path, name: str, value: str) -> Path:
    path = tmp_path / name
    path.write_text(value + "\n")
    return path


@pytest.mark.timeout(600)
def test_the_pipeline_runs_over_sasl_ssl_and_refuses_what_it_must(broker: SecureBroker, tmp_path: Path):
    env = broker.client_env("newsflow", "SCRAM-SHA-512", _secret(tmp_path, "pw", broker.password))
    wrong = {**env, "NEWSFLOW_KAFKA_SASL_PASSWORD_FILE": str(_secret(tmp_path, "bad", "not-the-password"))}

    # A wrong password: a one-line error, a non-zero exit, at once; the password is never shown.
    for args in (["newsflow.topics"], ["newsflow.producer", str(SEEDS)], ["newsflow.worker"]):
        started = time.monotonic()
        refused = cli(wrong, *args, timeout=60)
        assert refused.returncode != 0, args
        assert time.monotonic() - started < 45, f"{args} took too long to give up"
        last = refused.stderr.strip().splitlines()[-1]
        assert "refused the credentials of 'newsflow'" in last, refused.stderr[-2000:]
        assert broker.password not in refused.stderr + refused.stdout
        assert "not-the-password" not in refused.stderr + refused.stdout

    # The right one: topics, a worker (Faust, the transactional writer, the replica), the producer, tail.
    assert cli(env, "newsflow.topics").returncode == 0
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "newsflow.worker"],
            env={**env, "NEWSFLOW_WORKER_METRICS_PORT": "0", "NEWSFLOW_WORKER_DATA_DIR": str(tmp_path / "w")},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        sent = cli(env, "newsflow.producer", str(SEEDS))
        assert sent.returncode == 0, sent.stderr
        tail = cli(env, "newsflow.tail", "--from", "beginning", "--max", "2", "--json", timeout=240)
        assert tail.returncode == 0, tail.stderr
        assert len(tail.stdout.splitlines()) == 2
        # A reading principal (PLAIN) reads the output topics...
        reader_env = broker.client_env("reader", "PLAIN", _secret(tmp_path, "rpw", broker.reader_password))
        read = cli(reader_env, "newsflow.tail", "--topic", "stories", "--from", "beginning", "--max", "1")
        assert read.returncode == 0 and read.stdout.strip(), read.stderr
    finally:
        worker.terminate()
        worker.wait(timeout=60)

    # ...and nothing else: to it the broker shows only those two topics.
    async def visible() -> set[str]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=f"127.0.0.1:{broker.port}",
            security_protocol="SASL_SSL",
            ssl_context=create_ssl_context(cafile=broker.run("cafile")),
            sasl_mechanism="PLAIN",
            sasl_plain_username="reader",
            sasl_plain_password=broker.reader_password,
            group_id=None,
        )
        await consumer.start()
        try:
            cluster = await consumer._client.fetch_all_metadata()
            return set(cluster.topics())
        finally:
            await consumer.stop()

    kafka = KafkaSettings()
    assert asyncio.run(visible()) == {kafka.topic_enriched, kafka.topic_stories}


@pytest.fixture
def mtls_broker() -> Iterator[SecureBroker]:
    b = SecureBroker(client_auth="required")
    b.run("start")
    try:
        yield b
    finally:
        b.run("reset")


@pytest.mark.timeout(300)
def test_mutual_tls_takes_a_client_certificate_the_ca_signed_and_refuses_others(
    mtls_broker: SecureBroker, tmp_path: Path
):
    env = mtls_broker.client_env("newsflow", "SCRAM-SHA-256", _secret(tmp_path, "pw", mtls_broker.password))
    stranger_key, stranger_cert = tmp_path / "stranger.key", tmp_path / "stranger.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=stranger"]
        + ["-keyout", str(stranger_key), "-out", str(stranger_cert)],
        check=True,
        capture_output=True,
    )
    # No certificate, or one from another CA: a one-line error at once, not a retry loop.
    for extra in (
        {},
        {"NEWSFLOW_KAFKA_SSL_CERTFILE": str(stranger_cert), "NEWSFLOW_KAFKA_SSL_KEYFILE": str(stranger_key)},
    ):
        started = time.monotonic()
        refused = cli({**env, **extra}, "newsflow.topics", timeout=60)
        assert refused.returncode != 0
        assert time.monotonic() - started < 30
        assert "refused the TLS client" in refused.stderr.strip().splitlines()[-1], refused.stderr[-2000:]

    # The certificate the broker's CA signed: the topics tool and the producer work over mutual TLS.
    certfile, keyfile = mtls_broker.run("client-cert", "newsflow").split()
    signed = {**env, "NEWSFLOW_KAFKA_SSL_CERTFILE": certfile, "NEWSFLOW_KAFKA_SSL_KEYFILE": keyfile}
    assert cli(signed, "newsflow.topics").returncode == 0
    sent = cli(signed, "newsflow.producer", str(SEEDS))
    assert sent.returncode == 0, sent.stderr

    expected = len(list(SEEDS.iterdir()))

    async def raw_count() -> int:
        from newsflow.settings import KafkaSettings as Settings
        from newsflow.settings import client_options, from_env
        from newsflow.topics import committed_reader

        kafka = from_env(Settings, signed)
        assert client_options(kafka)["ssl_context"] is not None
        consumer = committed_reader(kafka, kafka.topic_raw)
        await consumer.start()
        count, deadline = 0, time.monotonic() + 30
        try:
            while count < expected and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=1000)
                count += sum(len(records) for records in batches.values())
            return count
        finally:
            await consumer.stop()

    assert asyncio.run(raw_count()) == expected
