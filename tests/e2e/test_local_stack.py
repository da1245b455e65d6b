"""`make up` as a user runs it: the long-running stack, articles dropped into its inbox, the stories
API and page (in Debian's headless Chromium), then `make down`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path
from typing import IO, Any

import pytest

from newsflow.pipeline import jsonio
from tests.conftest import FIXTURES, ROOT, SEEDS
from tests.integration.kafka_helpers import free_port

# Kept after the run (out/ is git-ignored): what the page looked like in a real browser.
ARTEFACTS = ROOT / "out" / "test-artefacts"
# Its own broker, apart from the test broker and from a developer's `make up` (19492).
STACK_KAFKA_PORT = int(os.environ.get("NEWSFLOW_TEST_STACK_KAFKA_PORT", "19592"))
TIMEOUT = 180.0


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return jsonio.loads(response.read())


def chromium(*args: str, profile: Path) -> bytes:
    """Run Debian's Chromium headless (a throwaway profile, no network but loopback) and return stdout."""
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is needed (scripts/bootstrap.sh installs it for make test)"
    command = [
        binary,
        "--headless",
        "--no-sandbox",  # tests run as root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, timeout=90, check=True).stdout


def png_size_and_colours(data: bytes) -> tuple[int, int, int]:
    """Return a PNG's width, height and how many distinct byte values its pixels hold (blank: 1-2)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


# What a terminal's shell leaves at their default and a test run may not: a run started in the
# background (`make test &`) inherits SIGINT and SIGQUIT ignored, and Python ignores SIGPIPE and
# SIGXFSZ; exec passes ignored signals on, and a shell cannot trap one ignored when it started.
_AS_FROM_A_TERMINAL = (
    "import os, signal, sys\n"
    "for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGPIPE, signal.SIGXFSZ):\n"
    "    signal.signal(s, signal.SIG_DFL)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def make_up(env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start `make up` in a session of its own, with the signals a terminal leaves it (so that the
    Ctrl-C the test sends reaches it); the pid is make's (exec keeps it)."""
    return subprocess.Popen(
        [sys.executable, "-c", _AS_FROM_A_TERMINAL, "make", "up"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )


@pytest.fixture
def stack(tmp_path: Path):  # type: ignore[no-untyped-def]
    inbox = tmp_path / "inbox"
    env = {
        **os.environ,
        "NEWSFLOW_KAFKA_PORT": str(STACK_KAFKA_PORT),
        "NEWSFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{STACK_KAFKA_PORT}",
        "NEWSFLOW_WEB_PORT": str(free_port()),
        "NEWSFLOW_WORKER_METRICS_PORT": str(free_port()),
        "NEWSFLOW_PRODUCER_METRICS_PORT": str(free_port()),
        "NEWSFLOW_UP_INBOX": str(inbox),
        "NEWSFLOW_UP_STATE": str(tmp_path / "state"),
    }
    env.pop("NEWSFLOW_KAFKA_CONTROLLER_PORT", None)
    log = (tmp_path / "up.log").open("w+b")
    up = make_up(env, log)
    try:
        yield up, env, inbox, tmp_path
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)
            up.wait(timeout=60)
        subprocess.run(["scripts/down.sh", "--reset"], cwd=ROOT, env=env, capture_output=True, timeout=120)
        log.seek(0)
        print("--- make up ---\n" + log.read().decode(errors="replace")[-4000:])
        log.close()
        for name in ("worker", "producer", "web"):
            path = tmp_path / "state" / f"{name}.log"
            if path.exists():
                print(f"--- {name}.log ---\n" + path.read_text(errors="replace")[-3000:])


def test_make_up_serves_the_seed_story_in_a_browser_and_make_down_stops_it(stack):  # type: ignore[no-untyped-def]
    up, env, inbox, tmp = stack
    api = f"http://127.0.0.1:{env['NEWSFLOW_WEB_PORT']}"
    seeds = sorted(p.name for p in SEEDS.glob("*.txt"))

    # make up seeds its new inbox; then a user drops a few more files in, a folder per outlet.
    deadline = time.monotonic() + TIMEOUT
    while not inbox.is_dir() or sorted(p.name for p in inbox.glob("*.txt")) != seeds:
        assert up.poll() is None, "make up ended early"
        assert time.monotonic() < deadline, "make up did not create its inbox"
        time.sleep(0.5)
    shutil.copytree(FIXTURES / "articles", inbox, dirs_exist_ok=True)
    dropped = {"harbourtimes", "valleypost"}

    # The API lists the seed story with both seed articles, and the dropped outlets' stories.
    stories: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        assert up.poll() is None, "make up ended early"
        try:
            stories = get_json(f"{api}/api/stories?limit=50")["stories"]
        except OSError:
            stories = []
        if any(s["member_count"] == 2 and s["outlets"] == ["unknown"] for s in stories) and dropped <= {
            o for s in stories for o in s["outlets"]
        }:
            break
        time.sleep(1)
    else:
        pytest.fail(f"the stories never showed up: {stories}")
    (seed_story,) = [s for s in stories if s["outlets"] == ["unknown"]]
    detail = get_json(f"{api}/api/stories/{seed_story['story_id']}")
    assert len(detail["members"]) == 2
    assert "ukraine" in seed_story["top_entities"]

    # The page, rendered by a real browser after its script has run (virtual time lets the live
    # refresh fire once): the seed story is on it, and the script swapped in a fresh list.
    dom = chromium("--virtual-time-budget=8000", "--dump-dom", f"{api}/", profile=tmp / "profile-dom")
    page = dom.decode()
    assert seed_story["headline"].split()[0] in page and f"/stories/{seed_story['story_id']}" in page
    assert "live, updated" in page, "the live refresh did not run in the browser"

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for name, url in [("front-page", f"{api}/"), ("seed-story", f"{api}/stories/{seed_story['story_id']}")]:
        shot = ARTEFACTS / f"{name}.png"
        shot.unlink(missing_ok=True)
        chromium("--window-size=1200,900", f"--screenshot={shot}", url, profile=tmp / f"profile-{name}")
        width, height, colours = png_size_and_colours(shot.read_bytes())
        assert (width, height) == (1200, 900) and colours > 20, f"{shot} looks blank"

    # make down stops every process and the broker; make up returns cleanly.
    pids = [int((tmp / "state" / f"{n}.pid").read_text()) for n in ("worker", "producer", "web")]
    subprocess.run(["make", "down"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    assert up.wait(timeout=60) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{api}/healthz", timeout=2)  # noqa: S310 - loopback only

    # make up again: the broker kept its data, the view its database; Ctrl-C stops it all.
    log = (tmp / "up-again.log").open("wb")
    again = make_up(env, log)
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            assert again.poll() is None, "make up ended early"
            try:
                if get_json(f"{api}/healthz")["caught_up"]:
                    break
            except OSError:
                pass
            time.sleep(1)
        detail = get_json(f"{api}/api/stories/{seed_story['story_id']}")
        assert len(detail["members"]) == 2  # nothing sent twice, nothing lost
        pids = [int((tmp / "state" / f"{n}.pid").read_text()) for n in ("worker", "producer", "web")]
        os.killpg(again.pid, signal.SIGINT)  # what Ctrl-C in its terminal does
        # make itself dies of the SIGINT once its recipe is done (GNU make's way); the recipe
        # stopped everything in order first.
        assert again.wait(timeout=90) in (0, -signal.SIGINT)
    finally:
        log.close()
    stopped = (tmp / "up-again.log").read_text()
    for line in ("stopped producer", "stopped web", "stopped worker", "local-kafka: stopped"):
        assert line in stopped, stopped
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_make_up_fails_and_stops_everything_when_the_worker_cannot_start(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))  # the worker's metrics port, held by someone else
    taken.listen()
    env = {
        **os.environ,
        "NEWSFLOW_KAFKA_PORT": str(STACK_KAFKA_PORT),
        "NEWSFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{STACK_KAFKA_PORT}",
        "NEWSFLOW_WEB_PORT": str(free_port()),
        "NEWSFLOW_WORKER_METRICS_PORT": str(taken.getsockname()[1]),
        "NEWSFLOW_PRODUCER_METRICS_PORT": str(free_port()),
        "NEWSFLOW_UP_INBOX": str(tmp_path / "inbox"),
        "NEWSFLOW_UP_STATE": str(tmp_path / "state"),
        "NEWSFLOW_UP_DETACH": "1",
    }
    env.pop("NEWSFLOW_KAFKA_CONTROLLER_PORT", None)
    try:
        up = subprocess.run(
            ["make", "up"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT
        )
    finally:
        taken.close()
        subprocess.run(["scripts/down.sh", "--reset"], cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert up.returncode != 0, up.stderr[-3000:]
    assert "make up: error: the worker did not answer" in up.stderr
    assert "make up: running" not in up.stderr
    marker = f"NEWSFLOW_UP_STATE={tmp_path / 'state'}".encode()
    left = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                left.append(environ.parent.name)
        except OSError:
            continue  # ended meanwhile, or not ours to read
    assert left == [], "services of the failed start outlived it"
