"""SIGTERM mid-stream: the worker hands its work back and exits within 10 s; a new one finishes the
stream, and a read_committed consumer sees every article once.

The pages are long (about 0.5 s each to extract), so a batch of 64 takes far longer than the
10 s the stop may take: the worker must hand the rest of its batch back, not finish it.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from newsflow.settings import KafkaSettings
from tests.integration.crash import CommittedReader, start_worker
from tests.integration.kafka_helpers import produce_files

STOP_BUDGET_SECONDS = 10.0


@pytest.mark.timeout(600)
def test_sigterm_exits_within_10s_and_the_next_worker_finishes_the_stream(
    kafka: KafkaSettings, tmp_path: Path
):
    corpus = tmp_path / "corpus" / "longform"
    corpus.mkdir(parents=True)
    for n in range(64):
        body = "".join(
            f"<div><p>Paragraph {i} of report {n} on the bridge works in district {i % 17}.</p></div>"
            for i in range(4000)
        )
        (corpus / f"page-{n:02d}.html").write_text(f"<html><body><article>{body}</article></body></html>")
    files = sorted(corpus.glob("*.html"))
    with CommittedReader(kafka) as reader:
        sent = produce_files(kafka, files)  # all waiting: the first batch is a full one
        worker = start_worker(
            kafka,
            tmp_path / "worker.log",
            "graceful",
            {"NEWSFLOW_WORKER_BATCH_SIZE": "64", "NEWSFLOW_WORKER_BATCH_SECONDS": "2"},
        )
        time.sleep(15)  # loaded, assigned and well into one batch of 64 long pages (about 30 s of work)
        assert worker.poll() is None
        asked = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
        took = time.monotonic() - asked
        assert code == 0
        assert took < STOP_BUDGET_SECONDS, f"stopping took {took:.1f}s"
        worker = start_worker(kafka, tmp_path / "worker.log", "graceful", {})
        try:
            deadline = time.monotonic() + 240
            while {k for _, _, k, _ in reader.collected.records} < set(sent):
                assert time.monotonic() < deadline and worker.poll() is None
                time.sleep(0.2)
            time.sleep(2)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    out = Counter(k for _, _, k, _ in reader.collected.records)
    assert set(out) == set(sent) and len(sent) == 64
    assert max(out.values()) == 1
    print(f"SIGTERM to exit: {took:.1f}s")
