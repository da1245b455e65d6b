"""Learned per-outlet boilerplate lives in a changelog-backed table and survives a restart."""

from __future__ import annotations

from pathlib import Path

from newsflow.settings import KafkaSettings
from tests.integration.kafka_helpers import produce_files, read_records, worker_process

FOOTER = "The Harbour Times is owned by Coastal Media Group and registered in England under no. 1234."
TOPICS = ["ferries", "tides", "cranes", "fishing", "lighthouse", "regatta", "dredging", "pier", "storm"]


def _write_article(folder: Path, topic: str) -> Path:
    path = folder / f"{topic}.txt"
    path.write_text(
        f"The council debated the {topic} plan on Monday evening.\n"
        f"Residents of the harbour district had mixed views on the {topic} proposal.\n"
        f"{FOOTER}\n"
    )
    return path


def test_a_restarted_worker_still_drops_the_footer_it_learned(
    kafka: KafkaSettings, worker_log: Path, tmp_path: Path
):
    first_batch = tmp_path / "first"
    first_batch.mkdir()
    for topic in TOPICS[:-1]:
        _write_article(first_batch, topic)
    with worker_process(kafka, worker_log, "it-boilerplate") as worker:
        first_ids = produce_files(kafka, [first_batch], outlet="harbourtimes")
        first = dict(read_records(kafka, kafka.topic_enriched, want=len(first_ids), worker=worker))
    # Nothing was known about the outlet at first: the general rules keep the footer.
    assert any(FOOTER in first[i]["text"] for i in first_ids)

    later = tmp_path / "later"
    later.mkdir()
    (later_id,) = produce_files(kafka, [_write_article(later, TOPICS[-1])], outlet="harbourtimes")
    with worker_process(kafka, worker_log, "it-boilerplate") as worker:  # same app: same tables
        records = dict(
            read_records(
                kafka, kafka.topic_enriched, want=0, worker=worker, done=lambda rs: later_id in dict(rs)
            )
        )
    record = records[later_id]
    assert FOOTER not in record["text"]
    assert record["extraction"]["boilerplate_removed"] >= 1
    assert record["text"].startswith(f"The council debated the {TOPICS[-1]} plan")
