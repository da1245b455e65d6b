#!/usr/bin/env bash
# make test: set up, lint and type-check, start a dedicated local Kafka, run every test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
NEWSFLOW_BOOTSTRAP_TEST_TOOLS=1 scripts/bootstrap.sh

scripts/lint.sh
# The quality floors (bench/floors.json) on a full run; `make test ARGS=tests/unit` skips them.
[ $# -gt 0 ] || scripts/quality.sh

# Its own port, so tests never touch a broker that `make run` (or a developer) is using.
export NEWSFLOW_KAFKA_PORT=${NEWSFLOW_TEST_KAFKA_PORT:-19192}
export NEWSFLOW_KAFKA_BOOTSTRAP=127.0.0.1:$NEWSFLOW_KAFKA_PORT
# A fresh broker each time: nothing left from an earlier run can change this one.
trap 'deploy/local-kafka/kafka.sh reset' EXIT
deploy/local-kafka/kafka.sh reset >/dev/null 2>&1
deploy/local-kafka/kafka.sh start
.venv/bin/python -m pytest "$@"
