#!/usr/bin/env bash
# make run: local Kafka up, the pipeline once over the given paths (default seeds/), Kafka down.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export NEWSFLOW_KAFKA_PORT=${NEWSFLOW_KAFKA_PORT:-19092}
export NEWSFLOW_KAFKA_BOOTSTRAP=${NEWSFLOW_KAFKA_BOOTSTRAP:-127.0.0.1:$NEWSFLOW_KAFKA_PORT}
export NEWSFLOW_WORKER_METRICS_PORT=${NEWSFLOW_WORKER_METRICS_PORT:-0}
# A fresh broker each time: nothing left from an earlier run can change this one.
trap 'deploy/local-kafka/kafka.sh reset' EXIT
deploy/local-kafka/kafka.sh reset >/dev/null 2>&1
deploy/local-kafka/kafka.sh start
.venv/bin/python -m newsflow.localrun "$@"
