"""Shared bits of the bench scripts: machine description, result recording, timing."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
FLOORS = Path(__file__).resolve().parent / "floors.json"


def half_of(key: str) -> str:
    """Return "A" or "B": a fixed split of the dev data (by a hash of an item's id), so that a
    change chosen on one half is reported on the other."""
    return "AB"[zlib.crc32(key.encode()) % 2]


def check_floors(measured: dict[str, float]) -> int:
    """Return 0 if every measured figure is at least its floor in bench/floors.json, else 1 (saying which)."""
    floors = json.loads(FLOORS.read_text())
    below = [f"{k} {v:.3f} < floor {floors[k]:.3f}" for k, v in measured.items() if v < floors[k]]
    for k, v in measured.items():
        print(f"floor check: {k} {v:.3f} (floor {floors[k]:.3f}) {'BELOW' if v < floors[k] else 'ok'}")
    if below:
        sys.stderr.write(f"quality below its floor: {'; '.join(below)}\n")
    return 1 if below else 0


def machine() -> str:
    """Return a one-line description of this machine (CPU model, cores, memory, Python)."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def git_rev() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def record(title: str, body: str) -> None:
    """Append a dated section with the command and machine to bench/RESULTS.md."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["python", *sys.argv])
    section = (
        f"\n## {title} ({stamp}, commit {git_rev()})\n\n"
        f"- command: `{command}`\n- machine: {machine()}\n\n{body.rstrip()}\n"
    )
    with RESULTS.open("a") as fh:
        fh.write(section)


def publish(title: str, body: str, keep: bool) -> None:
    """Print a bench's result; with `keep` (its --record), append it to bench/RESULTS.md too."""
    print(body)
    if keep:
        record(title, body)


@contextlib.contextmanager
def local_broker() -> Iterator[str]:
    """Run a Kafka broker of the bench's own on a free port; yield its bootstrap; delete it after.
    `broker_pid(bootstrap)` gives its process."""
    kafka_sh = RESULTS.parent.parent / "deploy" / "local-kafka" / "kafka.sh"
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    env = {
        **os.environ,
        "NEWSFLOW_KAFKA_PORT": str(ports[0]),
        "NEWSFLOW_KAFKA_CONTROLLER_PORT": str(ports[1]),
    }
    subprocess.run([str(kafka_sh), "start"], env=env, check=True)
    try:
        yield f"127.0.0.1:{ports[0]}"
    finally:
        subprocess.run([str(kafka_sh), "reset"], env=env, check=False)


def broker_pid(bootstrap: str) -> int | None:
    """The process id of the local broker (deploy/local-kafka/kafka.sh) serving `bootstrap`, if known."""
    home = Path(os.environ.get("NEWSFLOW_KAFKA_HOME", RESULTS.parent.parent / ".cache" / "kafka"))
    pidfile = home / f"run-{bootstrap.rsplit(':', 1)[1]}" / "kafka.pid"
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def child_lines(script: str, *args: str) -> list[Any]:
    """Run a benchmark's child process (`python script args`: one BLAS thread, the services on its
    path and no other environment, so that each variant starts alike) and return the JSON values it
    printed, one a line."""
    out = subprocess.run(
        [sys.executable, script, *args],
        check=True,
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "services"), "PATH": "/usr/bin:/bin"},
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith(("[", "{"))]


def rss_mib(pid: int | None = None) -> float:
    """Return a process's resident memory in MiB (this process's by default), from /proc."""
    for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
