"""newsflow-deadletters against the real broker: list and filter, show, replay (dry run, twice), and
what became of each dead letter's article since (replayed, revised)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from newsflow.settings import KafkaSettings
from tests.integration.crash import CommittedReader
from tests.integration.kafka_helpers import kafka_env, send_raw, worker_process

TEXT = "The council approved the new budget on Tuesday after a long debate about schools and roads. "


def cli(kafka: KafkaSettings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsflow.deadletters", *args],
        env={**os.environ, **kafka_env(kafka)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def wait_for(reader: CommittedReader, keys: set[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not keys <= {k for _, _, k, _ in reader.collected.records}:
        assert time.monotonic() < deadline, f"waiting for {keys}"
        time.sleep(0.2)


def test_list_show_and_replay_twice_gives_one_output(kafka: KafkaSettings, tmp_path: Path):
    big = (TEXT * 6000).encode()  # 560 kB: over the first worker's limit and its dead letters' room
    plain = [("article-id", b"big"), ("content-type", b"text/plain"), ("outlet", b"metro")]
    envelope = [("article-id", b"no-text"), ("content-type", b"application/json"), ("outlet", b"wire")]
    small = {"NEWSFLOW_EXTRACT_MAX_INPUT_BYTES": "2000", "NEWSFLOW_KAFKA_MAX_MESSAGE_BYTES": "1048576"}
    with CommittedReader(kafka) as reader:
        with worker_process(kafka, tmp_path / "first.log", "dl-cli", small):
            send_raw(
                kafka, [(b"big", big, plain), (b"no-text", json.dumps({"title": "x"}).encode(), envelope)]
            )
            wait_for(reader, {"big", "no-text"})

        listed = cli(kafka, "list")
        assert listed.returncode == 0, listed.stderr
        header, *lines = listed.stdout.splitlines()
        assert header.split()[:3] == ["article", "failed", "at"]
        assert len(lines) == 2 and {line.split()[0] for line in lines} == {"big", "no-text"}
        assert all(
            line.index(" too_large " if "big" in line else " bad_envelope ") == header.index(" reason ")
            for line in lines
        )  # the columns under their names
        # Nothing enriched since they failed (nothing enriched at all): both open, at once.
        fresh = cli(kafka, "list", "--open", "--json")
        assert sorted(json.loads(line)["status"] for line in fresh.stdout.splitlines()) == ["open", "open"]
        assert "(2 open)" in fresh.stderr, fresh.stderr
        only = cli(kafka, "list", "--reason", "too_large", "--outlet", "metro", "--json")
        assert [json.loads(line)["article_id"] for line in only.stdout.splitlines()] == ["big"]
        assert cli(kafka, "list", "--since", "2099-01-01").stdout == ""
        # A reader that stops early (`| head`) ends the listing quietly.
        headed = subprocess.run(
            [
                "bash",
                "-c",
                f"set -o pipefail; {sys.executable} -m newsflow.deadletters list --json | head -c 100",
            ],
            env={**os.environ, **kafka_env(kafka)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (headed.returncode, len(headed.stdout), "Traceback" in headed.stderr) == (0, 100, False)

        shown = json.loads(cli(kafka, "show", "big").stdout)
        assert shown["reason"] == "too_large" and shown["payload_truncated"] is True
        assert shown["payload_bytes"] == len(big) and "payload_base64" not in shown
        saved = tmp_path / "big.txt"
        assert cli(kafka, "show", "big", "--payload", str(saved)).returncode == 0
        assert saved.read_bytes() == big  # fetched whole from the dead letter's origin
        piped = cli(kafka, "show", "big", "--payload", "-")  # the bytes alone on stdout
        assert piped.stdout.encode() == big and json.loads(piped.stderr)["reason"] == "too_large"
        unwritable = cli(kafka, "show", "big", "--payload", str(tmp_path))
        assert (unwritable.returncode, unwritable.stderr) == (
            1,
            f"newsflow-deadletters: error: cannot write {tmp_path}: Is a directory\n",
        )
        assert cli(kafka, "list", "--stage", "bogus").returncode == 2  # one of the stages, or a usage error

        dry = cli(kafka, "replay", "big", "--dry-run")
        assert dry.returncode == 0 and "would send 1 of 1" in dry.stderr
        assert [line.split()[0] for line in dry.stdout.splitlines()] == ["big"]  # which ones
        filtered = cli(kafka, "replay", "big", "--reason", "bad_envelope", "--dry-run")
        assert "not replayed, not passing the filters: big" in filtered.stderr
        missing = cli(kafka, "show", "nothing-like-it")
        assert missing.returncode == 1 and "no dead letter" in missing.stderr

        with worker_process(kafka, tmp_path / "second.log", "dl-cli"):  # default limits now
            for _ in range(2):
                done = cli(kafka, "replay", "big")
                assert done.returncode == 0 and "sent 1 of 1" in done.stderr, done.stderr
            deadline = time.monotonic() + 120
            while not any(t == kafka.topic_enriched for _, t, _, _ in reader.collected.records):
                assert time.monotonic() < deadline, "the replayed article did not come out"
                time.sleep(0.2)
            time.sleep(5)  # a second output, if there were one, would be here by now
            # The envelope, mended, sent again by the producer as a revision of the one that failed.
            mended = [("article-id", b"no-text-2"), ("content-type", b"text/plain"), ("outlet", b"wire")]
            send_raw(kafka, [(b"no-text-2", (TEXT * 3).encode(), [*mended, ("revision-of", b"no-text")])])
            wait_for(reader, {"no-text-2"})
    outputs = [(t, k, r) for _, t, k, r in reader.collected.records if k == "big"]
    assert [t for t, _, _ in outputs] == [kafka.topic_dead_letter, kafka.topic_enriched]
    assert outputs[1][2]["extraction"]["input_bytes"] == len(big)
    # Asked, the dead letters say what became of their articles since: neither is open now.
    listed = cli(kafka, "list", "--status")
    header, *lines = listed.stdout.splitlines()
    status = {line.split()[0]: line[header.index(" status ") + 1 :].split()[0] for line in lines}
    assert status == {"big": "enriched", "no-text": "revised"}, listed.stdout
    assert "as no-text-2:" in next(line for line in lines if line.startswith("no-text"))
    assert "(0 open)" in listed.stderr
    plain = cli(kafka, "list", "--json").stdout.splitlines()  # not asked: the topic alone, no status
    assert len(plain) == 2 and all("status" not in json.loads(line) for line in plain)
    checked = cli(kafka, "list", "--json", "--status").stdout.splitlines()
    as_json = {r["article_id"]: r for r in map(json.loads, checked)}
    assert (as_json["no-text"]["status"], as_json["no-text"]["revised_as"]) == ("revised", "no-text-2")
    assert cli(kafka, "list", "--open").stdout == ""
    again = cli(kafka, "replay", "--all", "--open", "--dry-run")
    (said,) = [line for line in again.stderr.splitlines() if "not replayed, out since: " in line]
    assert sorted(said.split("out since: ")[1].split(", ")) == [
        "big (enriched)",
        "no-text (revised as no-text-2)",
    ]
    assert "would send 0 of 0" in again.stderr
    assert "would send 1 of 1" in cli(kafka, "replay", "big", "--dry-run").stderr  # named, not --open: sent


def test_list_leaves_out_what_is_not_a_dead_letter_and_forgets_a_tombstones_key(kafka: KafkaSettings):
    # Written by hand: the topic is the operator's, and something else may write to it too.
    letter = {"stage": "clean", "reason": "bad_envelope", "failed_at": "2026-12-07T03:00:00Z", "headers": {}}
    send_raw(
        kafka,
        [
            (b"kept", json.dumps(letter).encode(), []),
            (b"noise", b"\x00 not json", []),
            (b"gone", json.dumps(letter).encode(), []),
            (b"gone", None, []),  # type: ignore[list-item] # a tombstone
            (None, json.dumps(letter).encode(), []),  # two without a key: two dead letters
            (None, json.dumps(letter).encode(), []),
        ],
        topic=kafka.topic_dead_letter,
    )
    listed = cli(kafka, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["article_id"] for line in listed.stdout.splitlines()] == ["kept", "@0/4", "@0/5"]
    assert "1 record(s) on the topic are not dead letters" in listed.stderr
    assert "Traceback" not in listed.stderr
