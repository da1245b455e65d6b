from __future__ import annotations

import os
import subprocess
import sys

import pytest

from newsflow.settings import KafkaSettings, SettingsError, env_help, from_env
from newsflow.worker.settings import WorkerSettings


def test_defaults_without_environment():
    assert from_env(KafkaSettings, {}).topic_raw == "newsflow.articles.raw"


def test_environment_overrides_and_types():
    s = from_env(WorkerSettings, {"NEWSFLOW_WORKER_BATCH_SIZE": "8", "NEWSFLOW_WORKER_BATCH_SECONDS": "0.1"})
    assert s.batch_size == 8 and s.batch_seconds == 0.1


def test_bad_value_names_the_variable():
    with pytest.raises(SettingsError, match="NEWSFLOW_WORKER_BATCH_SIZE"):
        from_env(WorkerSettings, {"NEWSFLOW_WORKER_BATCH_SIZE": "many"})


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
    assert len(lines) == 1 and lines[0].startswith("newsflow-worker: error: cannot load a model:")


def test_the_readme_configuration_table_is_the_one_the_declarations_make():
    from pathlib import Path

    from newsflow.localrun import RunSettings
    from newsflow.producer.settings import ProducerSettings
    from newsflow.settings import markdown_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("<!-- settings:begin")[1].split("-->", 1)[1].split("<!-- settings:end -->")[0]
    expected = markdown_table(KafkaSettings, WorkerSettings, ProducerSettings, RunSettings)
    assert block.strip() == expected, "README is stale: regenerate it with `python -m newsflow.settings`"
    assert "`NEWSFLOW_DEDUP_STORY_THRESHOLD` | `0.42` |" in expected
