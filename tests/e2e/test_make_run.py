"""`make run` (scripts/run.sh) as a user runs it: records and dead letters in files; as an operator
stops it: a TERM (a supervisor, `timeout`, a closed terminal) stops the pipeline and its worker
before the broker goes; a run never takes over a broker it did not start."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from newsflow.pipeline import jsonio
from newsflow.pipeline.schema import schema_errors
from tests.conftest import ROOT, SEEDS
from tests.integration.kafka_helpers import free_port

KAFKA_SH = ROOT / "deploy" / "local-kafka" / "kafka.sh"
TIMEOUT = 180.0


def _env(port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "NEWSFLOW_RUN_KAFKA_PORT": str(port),
        "NEWSFLOW_KAFKA_CONTROLLER_PORT": str(free_port()),
        "PYTHONUNBUFFERED": "1",  # its lines as they are printed
    }
    env.pop("NEWSFLOW_KAFKA_BOOTSTRAP", None)
    return env


def _broker_runs(port: int) -> bool:
    env = {**os.environ, "NEWSFLOW_KAFKA_PORT": str(port)}
    return subprocess.run([str(KAFKA_SH), "status"], env=env, capture_output=True).returncode == 0


def _descendants(pid: int) -> set[int]:
    """The processes below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        children.setdefault(parent, []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_term_stops_the_pipeline_and_its_worker_then_the_broker(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        run = subprocess.Popen(
            ["scripts/run.sh"], cwd=ROOT, env=_env(port), stdout=log, stderr=log, start_new_session=True
        )
    try:
        deadline = time.monotonic() + TIMEOUT
        # The seeds are sent; the worker is starting or working on them.
        while b"producer: " not in log_path.read_bytes():
            assert run.poll() is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "make run never sent the seeds"
            time.sleep(0.2)
        below = _descendants(run.pid)
        assert any(b"newsflow.worker" in Path(f"/proc/{p}/cmdline").read_bytes() for p in below if _alive(p))
        run.send_signal(signal.SIGTERM)  # to the script alone, as `kill` or a supervisor sends it
        code = run.wait(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        subprocess.run(
            [str(KAFKA_SH), "reset"], env={**os.environ, "NEWSFLOW_KAFKA_PORT": str(port)}, check=False
        )
    output = log_path.read_text(errors="replace")
    assert code == 128 + signal.SIGTERM, output[-3000:]  # as a shell reports a TERM
    assert "interrupted; stopping the worker" in output
    assert "Traceback" not in output, output[-3000:]
    assert [p for p in below if _alive(p)] == [], "processes of the run outlived it"
    assert not _broker_runs(port)


def test_a_run_refuses_a_port_where_a_broker_already_runs_and_leaves_it_running() -> None:
    port = free_port()
    env = {**os.environ, "NEWSFLOW_KAFKA_PORT": str(port), "NEWSFLOW_KAFKA_CONTROLLER_PORT": str(free_port())}
    subprocess.run([str(KAFKA_SH), "start"], env=env, check=True, capture_output=True)
    try:
        run = subprocess.run(["scripts/run.sh"], cwd=ROOT, env=_env(port), capture_output=True, timeout=120)
        assert run.returncode == 1
        assert f"a broker already runs on 127.0.0.1:{port}" in run.stderr.decode()
        assert _broker_runs(port)
    finally:
        subprocess.run([str(KAFKA_SH), "reset"], env=env, check=False, capture_output=True)


def test_a_run_writes_the_enriched_records_and_the_dead_letters_to_files(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for seed in SEEDS.glob("*.txt"):
        shutil.copy(seed, inputs)
    garbage = bytes(range(256)) * 8  # no character encoding fits it
    (inputs / "broken.html").write_bytes(garbage)
    out = tmp_path / "out" / "enriched.jsonl"
    envelope = {"url": "https://tidings.example/ferries", "text": "Ferries resumed on Monday. " * 20}
    run = subprocess.run(
        ["scripts/run.sh", "--out", str(out), str(inputs), "-"],  # and JSON Lines on stdin
        cwd=ROOT,
        env=_env(free_port()),
        input=jsonio.dumps_line(envelope).decode(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    enriched = {r["source"]["path"]: r for r in map(jsonio.loads, out.read_bytes().splitlines())}
    (dead,) = [jsonio.loads(line) for line in (out.parent / "dead-letters.jsonl").read_bytes().splitlines()]
    seeds = [r for path, r in enriched.items() if path.endswith(".txt")]
    assert len(seeds) == 2 and len({r["story_id"] for r in seeds}) == 1  # the seeds, one story
    (from_stdin,) = [r for path, r in enriched.items() if not path.endswith(".txt")]
    assert from_stdin["source"]["outlet"] == "tidings.example"
    assert dead["reason"] == "undecodable" and base64.b64decode(dead["payload_base64"]) == garbage
    assert schema_errors("dead-letter", dead) == []
    assert "3 enriched in 2 stories, 1 dead-lettered" in run.stdout


@pytest.mark.parametrize(
    ("out", "error"),
    [
        ("{tmp}", "--out: {tmp} is a directory (give a file name)"),
        (
            "{tmp}/new/",
            "--out: {tmp}/new/ is a folder (give a file name)",
        ),
        # A folder on the way is a file: found before the run, not when its results are written.
        (
            "{tmp}/run.log/enriched.jsonl",
            "--out: {tmp}/run.log is not a directory, so {tmp}/run.log/enriched.jsonl cannot be created",
        ),
        (
            "{tmp}/run.log/a/enriched.jsonl",
            "--out: {tmp}/run.log is not a directory, so {tmp}/run.log/a/enriched.jsonl cannot be created",
        ),
        ("{tmp}/new/.", "--out: {tmp}/new/. is a folder (give a file name)"),
        (
            "{tmp}/gone/enriched.jsonl",
            "--out: {tmp}/gone is a link to nothing, so {tmp}/gone/enriched.jsonl cannot be created",
        ),
    ],
)
def test_an_out_path_that_cannot_be_written_is_refused_before_anything_runs(
    tmp_path: Path, out: str, error: str
) -> None:
    (tmp_path / "run.log").write_text("a file\n")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    run = subprocess.run(
        [sys.executable, "-m", "newsflow.localrun", "--out", out.format(tmp=tmp_path), str(SEEDS)],
        env={**os.environ, "NEWSFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (run.returncode, run.stderr) == (2, f"newsflow-run: error: {error.format(tmp=tmp_path)}\n")
    assert not (tmp_path / "new").exists()  # nothing created


def test_an_out_file_that_is_a_link_to_a_file_yet_to_be_is_written_through_it(tmp_path: Path) -> None:
    (tmp_path / "latest.jsonl").symlink_to(tmp_path / "run-1.jsonl")  # as open() would write it
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "newsflow.localrun",
            "--check",
            "--out",
            str(tmp_path / "latest.jsonl"),
            str(SEEDS),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (run.returncode, run.stderr) == (0, "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.jsonl"]  # nothing created


def test_a_path_that_does_not_exist_is_one_line_before_any_broker_starts(tmp_path: Path) -> None:
    port = free_port()
    run = subprocess.run(
        ["scripts/run.sh", str(tmp_path / "nowhere")],
        cwd=ROOT,
        env=_env(port),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (run.returncode, run.stderr) == (
        2,
        f"newsflow-run: error: {tmp_path / 'nowhere'}: No such file or directory\n",
    )
    assert not (ROOT / ".cache" / "kafka" / f"run-{port}").exists()  # no broker was even set up


def test_inputs_holding_no_file_to_read_are_one_line_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "report.pdf").write_bytes(b"%PDF-1.4")
    (tmp_path / "in" / ".draft.html").write_text("<p>not yet</p>")
    out = tmp_path / "enriched.jsonl"
    out.write_text("kept\n")
    run = subprocess.run(
        [sys.executable, "-m", "newsflow.localrun", "--out", str(out), str(tmp_path / "in")],
        env={**os.environ, "NEWSFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (run.returncode, run.stderr) == (
        2,
        f"newsflow-run: error: no file to read in {tmp_path / 'in'} "
        "(.html .htm .txt .json .jsonl .ndjson .warc, also .gz)\n",
    )
    assert out.read_text() == "kept\n"  # the last run's output stays
