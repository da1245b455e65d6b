from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from newsflow.settings import KafkaSettings, LogSettings, SettingsError, check_kafka, env_help, from_env
from newsflow.worker.settings import WorkerSettings
from tests.conftest import SEEDS


def test_defaults_without_environment():
    assert from_env(KafkaSettings, {}).topic_raw == "newsflow.articles.raw"


def test_environment_overrides_and_types():
    s = from_env(WorkerSettings, {"NEWSFLOW_WORKER_BATCH_SIZE": "8", "NEWSFLOW_WORKER_BATCH_SECONDS": "0.1"})
    assert s.batch_size == 8 and s.batch_seconds == 0.1


def test_bad_value_names_the_variable():
    with pytest.raises(SettingsError, match="NEWSFLOW_WORKER_BATCH_SIZE"):
        from_env(WorkerSettings, {"NEWSFLOW_WORKER_BATCH_SIZE": "many"})
    with pytest.raises(SettingsError, match="NEWSFLOW_WORKER_EMBED_PRECISION='float16' is not one of"):
        from_env(WorkerSettings, {"NEWSFLOW_WORKER_EMBED_PRECISION": "float16"})
    assert (
        from_env(WorkerSettings, {"NEWSFLOW_WORKER_EMBED_PRECISION": "float32"}).embed_precision == "float32"
    )


@pytest.mark.parametrize(
    ("cls", "variable", "value", "message"),
    [
        (WorkerSettings, "NEWSFLOW_WORKER_BATCH_SIZE", "0", "is below 1"),
        (KafkaSettings, "NEWSFLOW_RAW_PARTITIONS", "0", "is below 1"),
        (LogSettings, "NEWSFLOW_LOG_LEVEL", "verbose", "is not one of"),
        # Faust's take waits for a whole batch when its wait is 0: not "no wait" but "wait forever".
        (WorkerSettings, "NEWSFLOW_WORKER_BATCH_SECONDS", "0", "is below"),
        (WorkerSettings, "NEWSFLOW_DEDUP_STORY_THRESHOLD", "nan", "is not a finite number"),
        (WorkerSettings, "NEWSFLOW_WORKER_METRICS_PORT", "99999", "is above 65535"),
    ],
)
def test_values_out_of_range_or_choice_are_refused_before_anything_starts(cls, variable, value, message):
    with pytest.raises(SettingsError, match=f"{variable}='{value}' {message}"):
        from_env(cls, {variable: value})


def test_choices_are_taken_in_any_case():
    assert from_env(LogSettings, {"NEWSFLOW_LOG_LEVEL": "WARNING"}).level == "warning"
    assert from_env(LogSettings, {"NEWSFLOW_LOG_LEVEL": "critical"}).level == "critical"


def _newsflow_run(**variables: str) -> subprocess.CompletedProcess[str]:
    """newsflow-run on the seeds with these variables, against a port where no broker listens."""
    environ = {**os.environ, "NEWSFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:9", **variables}
    return subprocess.run(
        [sys.executable, "-m", "newsflow.localrun", str(SEEDS)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_newsflow_run_reads_the_producer_settings():
    # A bad NEWSFLOW_PRODUCER_* value stops it with one line, before it contacts Kafka.
    proc = _newsflow_run(NEWSFLOW_PRODUCER_MAX_FILE_BYTES="lots")
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "newsflow-run: error: NEWSFLOW_PRODUCER_MAX_FILE_BYTES='lots' is not a valid int"
    )
    # and the worker's, which it would otherwise learn of only when its worker exits
    proc = _newsflow_run(NEWSFLOW_PRODUCER_MAX_FILE_BYTES="1000", NEWSFLOW_WORKER_BATCH_SIZE="0")
    assert (proc.returncode, proc.stderr.strip()) == (
        2,
        "newsflow-run: error: NEWSFLOW_WORKER_BATCH_SIZE='0' is below 1",
    )


def test_help_lists_every_variable():
    text = env_help(KafkaSettings, WorkerSettings)
    assert "NEWSFLOW_KAFKA_BOOTSTRAP" in text and "NEWSFLOW_WORKER_METRICS_PORT" in text


def test_topic_names_use_no_underscore():
    # Kafka's metric names collide for '.' and '_'.
    assert all("_" not in v for k, v in vars(KafkaSettings()).items() if k.startswith("topic_"))


def test_worker_without_its_model_fails_with_one_line():
    env = {**os.environ, "NEWSFLOW_NER_MODEL": "no_such_spacy_model", "NEWSFLOW_WORKER_METRICS_PORT": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "newsflow.worker"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "newsflow-worker: error: NEWSFLOW_NER_MODEL='no_such_spacy_model' is not an installed spaCy pipeline "
        "(a package or a folder)"
    ]


def test_the_readme_configuration_table_is_the_one_the_declarations_make():
    from pathlib import Path

    from newsflow.settings import documented_settings, markdown_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("<!-- settings:begin")[1].split("-->", 1)[1].split("<!-- settings:end -->")[0]
    expected = markdown_table(*documented_settings())
    assert block.strip() == expected, "README is stale: regenerate it with `python -m newsflow.settings`"
    assert "`NEWSFLOW_DEDUP_STORY_THRESHOLD` | `0.42` |" in expected


def test_a_secret_comes_from_a_file_and_is_never_shown(tmp_path):
    from newsflow.settings import client_options

    secret = tmp_path / "pw"
    secret.write_text("hunter2-xyz\n")
    env = {
        "NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "NEWSFLOW_KAFKA_SASL_USERNAME": "svc",
        "NEWSFLOW_KAFKA_SASL_PASSWORD_FILE": str(secret),
    }
    kafka = from_env(KafkaSettings, env)
    assert kafka.sasl_password == "hunter2-xyz"
    assert "hunter2" not in repr(kafka) and "hunter2" not in env_help(KafkaSettings)
    assert client_options(kafka)["sasl_plain_password"] == "hunter2-xyz"
    with pytest.raises(SettingsError, match="NEWSFLOW_KAFKA_SASL_PASSWORD_FILE=.* cannot be read"):
        from_env(KafkaSettings, {**env, "NEWSFLOW_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "missing")})
    # Both ways at once is a mistake to say, not one of them picked in silence.
    with pytest.raises(
        SettingsError,
        match="^NEWSFLOW_KAFKA_SASL_PASSWORD and NEWSFLOW_KAFKA_SASL_PASSWORD_FILE are both set",
    ):
        from_env(KafkaSettings, {**env, "NEWSFLOW_KAFKA_SASL_PASSWORD": "other"})


def test_bad_security_settings_are_usage_errors():
    from newsflow.settings import client_options

    with pytest.raises(SettingsError, match="NEWSFLOW_KAFKA_SECURITY_PROTOCOL"):
        client_options(from_env(KafkaSettings, {"NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "TLS"}))
    with pytest.raises(SettingsError, match="NEWSFLOW_KAFKA_SASL_USERNAME"):
        client_options(from_env(KafkaSettings, {"NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}))
    bad = subprocess.run(
        [sys.executable, "-m", "newsflow.topics"],
        env={
            **os.environ,
            "NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "NEWSFLOW_KAFKA_SASL_MECHANISM": "MD5",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "SASL_MECHANISM" in bad.stderr


def test_the_producers_http_ingest_needs_its_port_set():
    proc = subprocess.run(
        [sys.executable, "-m", "newsflow.producer", "--serve"],
        env={k: v for k, v in os.environ.items() if k != "NEWSFLOW_PRODUCER_HTTP_PORT"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stderr) == (
        2,
        "newsflow-producer: error: --serve needs a port: set NEWSFLOW_PRODUCER_HTTP_PORT\n",
    )


def test_a_watch_state_file_that_cannot_be_used_is_one_line_naming_its_variable(tmp_path):
    # Said at once, without waiting for a broker (none listens on port 1).
    proc = subprocess.run(
        [sys.executable, "-m", "newsflow.producer", "--watch", str(tmp_path)],
        env={
            **os.environ,
            "NEWSFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:1",
            "NEWSFLOW_PRODUCER_STATE_FILE": str(tmp_path),  # a folder
        },
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 1
    assert proc.stderr == (
        f"newsflow-producer: error: cannot use the watch state file {str(tmp_path)!r} "
        "(NEWSFLOW_PRODUCER_STATE_FILE): Is a directory\n"
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"NEWSFLOW_KAFKA_BOOTSTRAP": "nohostport"},
            "NEWSFLOW_KAFKA_BOOTSTRAP='nohostport' is not host:port",
        ),
        ({"NEWSFLOW_KAFKA_BOOTSTRAP": "broker:99999"}, "is not host:port"),  # would wrap to 34463
        ({"NEWSFLOW_KAFKA_BOOTSTRAP": "a:9092,"}, "is not host:port"),
        ({"NEWSFLOW_TOPIC_RAW": "bad topic"}, "NEWSFLOW_TOPIC_RAW='bad topic' is not a Kafka topic name"),
        ({"NEWSFLOW_TOPIC_RAW": ""}, "NEWSFLOW_TOPIC_RAW='' is not a Kafka topic name"),
        (
            {"NEWSFLOW_TOPIC_RAW": "loop", "NEWSFLOW_TOPIC_ENRICHED": "loop"},
            "NEWSFLOW_TOPIC_ENRICHED='loop' is also NEWSFLOW_TOPIC_RAW",
        ),
    ],
)
def test_a_broker_address_or_topic_the_broker_would_refuse_later_is_refused_now(environ, message):
    with pytest.raises(SettingsError, match=re.escape(message)):
        check_kafka(from_env(KafkaSettings, environ))


def test_bootstrap_lists_of_names_addresses_and_bracketed_ipv6_are_taken():
    check_kafka(
        from_env(KafkaSettings, {"NEWSFLOW_KAFKA_BOOTSTRAP": "kafka-1:9092, 10.0.0.2:9093,[::1]:19092"})
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"NEWSFLOW_PRODUCER_OUTLET_MAP": "a.com=A,b.org:B"},
            "NEWSFLOW_PRODUCER_OUTLET_MAP: 'b.org:B' is not host=outlet",
        ),
        ({"NEWSFLOW_PRODUCER_OUTLET_MAP": "=A"}, "'=A' is not host=outlet"),
    ],
)
def test_producer_settings_that_would_be_dropped_in_part_or_fail_later_are_refused(environ, message):
    from newsflow.producer.settings import ProducerSettings

    with pytest.raises(SettingsError, match=re.escape(message)):
        from_env(ProducerSettings, environ)


def test_an_outlet_map_is_read_whole():
    from newsflow.producer.settings import parse_outlet_map

    assert parse_outlet_map(" www.A.com = Alpha ,, b.org=B ") == {"a.com": "Alpha", "b.org": "B"}


@pytest.mark.parametrize("variable", ["NEWSFLOW_DEDUP_STORY_THRESHOLD", "NEWSFLOW_DEDUP_COPY_CONTAINMENT"])
def test_a_similarity_threshold_over_one_is_refused(variable):
    with pytest.raises(SettingsError, match=f"{variable}='1.5' is above 1"):
        from_env(WorkerSettings, {variable: "1.5"})


def test_a_ner_model_that_is_not_installed_is_refused_before_anything_starts():
    with pytest.raises(
        SettingsError, match="NEWSFLOW_NER_MODEL='en_core_web_xl' is not an installed spaCy pipeline"
    ):
        from_env(WorkerSettings, {"NEWSFLOW_NER_MODEL": "en_core_web_xl"})
    assert from_env(WorkerSettings, {"NEWSFLOW_NER_MODEL": "en_core_web_md"}).ner_model == "en_core_web_md"
    with pytest.raises(SettingsError, match="NEWSFLOW_NER_MODEL='' is not"):  # not the current folder
        from_env(WorkerSettings, {"NEWSFLOW_NER_MODEL": ""})


def test_a_file_size_limit_over_the_message_size_is_refused_by_the_producer_and_make_run():
    environ = {**os.environ, "NEWSFLOW_PRODUCER_MAX_FILE_BYTES": "20000000"}
    for command in (["newsflow.producer", "seeds"], ["newsflow.localrun", "--check", "seeds"]):
        done = subprocess.run(
            [sys.executable, "-m", *command], env=environ, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2 and done.stderr.endswith(
            "NEWSFLOW_PRODUCER_MAX_FILE_BYTES=20000000 leaves no room under NEWSFLOW_KAFKA_MAX_MESSAGE_BYTES=8388608 "
            "for a message's key and headers (64 KiB): the largest files could not be sent\n"
        ), done.stderr


def test_the_local_runs_one_worker_runs_its_models_side_by_side_unless_told_otherwise(monkeypatch):
    from newsflow import localrun

    monkeypatch.delenv("NEWSFLOW_WORKER_COMPUTE_THREADS", raising=False)
    monkeypatch.setattr(localrun.os, "sched_getaffinity", lambda _pid: {0, 1})
    assert localrun.worker_env()["NEWSFLOW_WORKER_COMPUTE_THREADS"] == "2"
    monkeypatch.setattr(localrun.os, "sched_getaffinity", lambda _pid: {0})
    assert "NEWSFLOW_WORKER_COMPUTE_THREADS" not in localrun.worker_env()
    monkeypatch.setattr(localrun.os, "sched_getaffinity", lambda _pid: set(range(8)))
    monkeypatch.setenv("NEWSFLOW_WORKER_COMPUTE_THREADS", "1")
    assert localrun.worker_env()["NEWSFLOW_WORKER_COMPUTE_THREADS"] == "1"


def test_a_stories_view_database_that_cannot_be_opened_is_one_line_naming_the_setting(tmp_path):
    (tmp_path / "feed.jsonl").write_text('{"a": 1}\n')
    for db, why in [
        (tmp_path, "unable to open database file"),  # a folder
        (tmp_path / "feed.jsonl", "file is not a database"),
        (tmp_path / "feed.jsonl" / "view.sqlite3", "File exists"),  # its folder cannot be made
    ]:
        environ = {**os.environ, "NEWSFLOW_WEB_DB": str(db), "NEWSFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:9"}
        done = subprocess.run(
            [sys.executable, "-m", "newsflow.web"], env=environ, capture_output=True, text=True, timeout=60
        )
        assert (done.returncode, done.stderr) == (
            2,
            f"newsflow-web: error: NEWSFLOW_WEB_DB: cannot open {db} as the view's database: {why}\n",
        )


@pytest.mark.parametrize(
    ("module", "argv"),
    [
        ("newsflow.producer.__main__", ["--bogus"]),
        ("newsflow.producer.__main__", ["--outlet"]),
        ("newsflow.deadletters", ["bogus"]),
        ("newsflow.tail", ["--no-such-option"]),
        ("newsflow.localrun", ["--bogus"]),
    ],
)
def test_a_usage_error_is_one_line(module, argv, capsys):
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.count("\n") == 1 and ": error: " in err and err.endswith("(see --help)\n"), err


@pytest.mark.parametrize(
    ("module", "argv"),
    [
        ("newsflow.producer", ["seeds"]),
        ("newsflow.worker", []),
        ("newsflow.web", []),
        ("newsflow.topics", []),
    ],
)
def test_every_service_reads_the_log_level(module, argv):
    # One variable for the stack (compose sets it for all): a value a service would ignore or
    # misread is refused by each, in one line naming it.
    done = subprocess.run(
        [sys.executable, "-m", module, *argv],
        env={**os.environ, "NEWSFLOW_LOG_LEVEL": "verbose", "NEWSFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "NEWSFLOW_LOG_LEVEL='verbose' is not one of" in done.stderr


@pytest.mark.parametrize(
    ("level", "quiet", "expected"),
    [
        ("info", False, "INFO"),
        ("debug", True, "WARNING"),
        ("error", True, "ERROR"),
        ("error", False, "ERROR"),
    ],
)
def test_quiet_never_makes_a_service_noisier_than_its_log_level(level, quiet, expected, monkeypatch):
    import logging

    from newsflow.logs import configure

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # basicConfig configures a root without handlers
    monkeypatch.setattr(root, "level", root.level)
    configure(level, quiet=quiet)
    assert logging.getLevelName(root.level) == expected
