"""`make run` (scripts/run.sh) as an operator stops it: a TERM (a supervisor, `timeout`, a closed
terminal) stops the pipeline and its worker before the broker goes; a run never takes over a
broker it did not start."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import ROOT
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
    assert code == 130, output[-3000:]
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
