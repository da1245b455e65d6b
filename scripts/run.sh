#!/usr/bin/env bash
# make run: local Kafka up, the pipeline once over the given paths (default seeds/), Kafka down.
#   NEWSFLOW_RUN_KAFKA_PORT [19292]   the port of this run's own broker, started empty and deleted at
#                                     the end (never the one `make kafka-start` or `make up` keeps)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export NEWSFLOW_KAFKA_PORT=${NEWSFLOW_RUN_KAFKA_PORT:-19292}
export NEWSFLOW_KAFKA_BOOTSTRAP=127.0.0.1:$NEWSFLOW_KAFKA_PORT
export NEWSFLOW_WORKER_METRICS_PORT=${NEWSFLOW_WORKER_METRICS_PORT:-0}
# The worker's files too are this run's (two runs on two ports do not share them).
run_dir=${NEWSFLOW_KAFKA_HOME:-.cache/kafka}/run-$NEWSFLOW_KAFKA_PORT
export NEWSFLOW_WORKER_DATA_DIR=$run_dir/worker
# A wrong path or setting, or --help, answers before a broker is started for nothing.
for arg in "$@"; do
  case "$arg" in -h | --help) exec .venv/bin/python -m newsflow.localrun --help ;; esac
done
.venv/bin/python -m newsflow.localrun --check "$@" </dev/null
if deploy/local-kafka/kafka.sh status >/dev/null 2>&1; then
  echo "make run: error: a broker already runs on 127.0.0.1:$NEWSFLOW_KAFKA_PORT (another make run?);" \
    "stop it or set NEWSFLOW_RUN_KAFKA_PORT to a free port" >&2
  exit 1
fi
# Data on that port that an earlier make run did not leave is another broker's, kept on purpose.
if [ -d "$run_dir/data" ] && [ ! -e "$run_dir/made-by-make-run" ]; then
  echo "make run: error: $run_dir/data holds another broker's data (make kafka-start or make up);" \
    "set NEWSFLOW_RUN_KAFKA_PORT to another port" >&2
  exit 1
fi
# A fresh broker each time: nothing left from an earlier run can change this one.
trap 'deploy/local-kafka/kafka.sh reset; rm -rf "$NEWSFLOW_WORKER_DATA_DIR"' EXIT
deploy/local-kafka/kafka.sh reset >/dev/null 2>&1
mkdir -p "$run_dir" && touch "$run_dir/made-by-make-run"
deploy/local-kafka/kafka.sh start
# In the background, so that a TERM or HUP for this script reaches the pipeline (which stops its
# worker) before the EXIT trap stops Kafka; bash runs no trap while a foreground child runs. Ctrl-C
# reaches every process of the terminal's group by itself.
# Its input stays this script's (`-` reads stdin; a background job's is /dev/null otherwise).
.venv/bin/python -m newsflow.localrun "$@" <&0 &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true' TERM HUP
trap ':' INT
set +e
while :; do
  wait "$child"
  status=$?
  # Above 128: the child's own end by a signal, or a trapped signal that interrupted the wait.
  if [ "$status" -le 128 ] || ! kill -0 "$child" 2>/dev/null; then break; fi
done
exit "$status"
