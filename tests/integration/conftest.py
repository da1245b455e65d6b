from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from newsflow.settings import KafkaSettings
from tests.integration.kafka_helpers import ensure_topics, unique_kafka


@pytest.fixture
def kafka(tmp_path: Path) -> Iterator[KafkaSettings]:
    """Fresh topics on the real broker for this test (no broker is a failure, not a skip)."""
    settings = unique_kafka()
    ensure_topics(settings)
    yield settings


@pytest.fixture
def worker_log(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    path = tmp_path / "worker.log"
    yield path
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and path.exists():
        print(f"--- worker log ({path}) ---\n" + path.read_text(errors="replace")[-8000:])


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
