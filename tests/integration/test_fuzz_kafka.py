"""Fuzzed bad inputs mixed with good articles through the real broker: every input accounted for once,
the good ones enriched, the worker alive and within its memory budget."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from newsflow.settings import KafkaSettings
from tests.conftest import SEEDS
from tests.integration.fuzz import fuzz_run
from tests.integration.story_corpus import build_corpus, write_corpus

RSS_BUDGET_MIB = 1536


@pytest.mark.timeout(600)
def test_fuzzed_inputs_are_all_accounted_for_and_good_ones_come_out(kafka: KafkaSettings, tmp_path: Path):
    write_corpus(tmp_path / "corpus", build_corpus(stories=6))
    good = sorted(SEEDS.glob("*.txt")) + sorted((tmp_path / "corpus").rglob("*.json"))
    report = fuzz_run(kafka, good, bad=60, rng=random.Random(2026), workdir=tmp_path)
    print(report.line())
    assert report.worker_alive
    assert (report.lost, report.duplicated) == (0, 0), report.line()
    assert report.good_out == report.good == 32
    assert report.enriched + report.dead_lettered == 60 + 32
    assert report.peak_rss_mib < RSS_BUDGET_MIB
