#!/usr/bin/env bash
# make up: the long-running local stack, the docker-compose stack's twin on a machine without Docker.
#
# Kafka (its storage kept between runs, unlike make run), the topics, one worker, the producer
# watching inbox/ (seeded with seeds/ the first time) and the stories view (API and page). Logs and
# pid files are in .cache/up/. Stops on Ctrl-C, or from another shell with `make down`
# (`make down ARGS=--reset` also deletes the broker's data, the view's database and the inbox record).
#
#   NEWSFLOW_UP_INBOX [inbox]        the folder the producer watches: drop article files into it
#   NEWSFLOW_UP_DETACH [0]           1: start everything and return (stop it with make down)
#   NEWSFLOW_UP_STATE [.cache/up]     logs, pid files, the view's database, the producer's record (make down reads it too)
#   NEWSFLOW_KAFKA_PORT [19492], NEWSFLOW_WEB_PORT [8080], NEWSFLOW_WORKER_METRICS_PORT [9101],
#   NEWSFLOW_PRODUCER_METRICS_PORT [9102]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

export NEWSFLOW_KAFKA_PORT=${NEWSFLOW_KAFKA_PORT:-19492}
export NEWSFLOW_KAFKA_BOOTSTRAP=${NEWSFLOW_KAFKA_BOOTSTRAP:-127.0.0.1:$NEWSFLOW_KAFKA_PORT}
export NEWSFLOW_WEB_PORT=${NEWSFLOW_WEB_PORT:-8080}
export NEWSFLOW_WORKER_METRICS_PORT=${NEWSFLOW_WORKER_METRICS_PORT:-9101}
export NEWSFLOW_PRODUCER_METRICS_PORT=${NEWSFLOW_PRODUCER_METRICS_PORT:-9102}
state=${NEWSFLOW_UP_STATE:-.cache/up}
export NEWSFLOW_WORKER_DATA_DIR=${NEWSFLOW_WORKER_DATA_DIR:-$state/worker}
export NEWSFLOW_PRODUCER_STATE_FILE=${NEWSFLOW_PRODUCER_STATE_FILE:-$state/producer-sent.jsonl}
export NEWSFLOW_WEB_DB=${NEWSFLOW_WEB_DB:-$state/stories.sqlite3}
# One worker on this machine: its two models side by side where there are two cores (as make run).
if [ "$(nproc)" -ge 2 ]; then
  export NEWSFLOW_WORKER_COMPUTE_THREADS=${NEWSFLOW_WORKER_COMPUTE_THREADS:-2}
fi
inbox=${NEWSFLOW_UP_INBOX:-inbox}
py=.venv/bin/python

say() { echo "make up: $*" >&2; }
# A pid file names a live process of ours (not another that reused the pid after a reboot).
alive() {
  [ -f "$state/$1.pid" ] && ps -o args= -p "$(cat "$state/$1.pid")" 2>/dev/null | grep -q newsflow
}
stop_all() { trap '' INT TERM HUP; scripts/down.sh; exit "${1:-0}"; }

mkdir -p "$state"
for name in worker producer web; do
  if alive "$name"; then
    say "already running ($name pid $(cat "$state/$name.pid")); make down stops it"
    exit 1
  fi
done
echo "$NEWSFLOW_KAFKA_PORT" >"$state/kafka.port"
rm -f "$state/stopping"
# From here on, Ctrl-C, a kill or a closed terminal stop whatever has been started.
trap 'stop_all 0' INT TERM HUP
if [ ! -d "$inbox" ]; then
  mkdir -p "$inbox" && cp seeds/* "$inbox/"
  say "created $inbox/ with the seed articles"
fi

deploy/local-kafka/kafka.sh start
$py -m newsflow.topics >"$state/topics.log" 2>&1 || { cat "$state/topics.log" >&2; stop_all 1; }

start() {  # name, command...: run in the background, log and pid in the state folder
  local name=$1; shift
  # A session of its own: Ctrl-C reaches this script only, which stops the services in order.
  setsid "$@" >>"$state/$name.log" 2>&1 </dev/null &
  echo $! >"$state/$name.pid"
}
start worker $py -m newsflow.worker
start web $py -m newsflow.web
start producer $py -m newsflow.producer --watch --no-progress "$inbox"

answers() {  # url [metric]: the URL answers (and, given a metric, says it with a value above 0)
  $py -c "
import sys, urllib.request
body = urllib.request.urlopen(sys.argv[1], timeout=2).read().decode()
if len(sys.argv) > 2:
    values = [float(ln.split()[-1]) for ln in body.splitlines() if ln.startswith(sys.argv[2] + ' ')]
    sys.exit(0 if values and values[0] > 0 else 1)
" "$@" 2>/dev/null
}
# Each service must be up and answering (a port taken makes one exit at once), not just started.
wait_for() {  # name, url, what, tries (half a second apart), [metric above 0 once ready]
  for i in $(seq 1 "$4"); do
    answers "$2" ${5:+"$5"} && return 0
    if ! alive "$1" || [ "$i" = "$4" ]; then
      tail -5 "$state/$1.log" >&2
      say "error: the $3 did not answer at $2"
      stop_all 1
    fi
    sleep 0.5
  done
}
wait_for web "http://127.0.0.1:$NEWSFLOW_WEB_PORT/healthz" "stories view" 61
# The worker serves /metrics at once, and says its NER model's load time once it has loaded it
# (seconds; more on a busy machine); the embedding model and a warm-up follow (a few seconds more)
# before it consumes. Files dropped in meanwhile wait in Kafka.
wait_for worker "http://127.0.0.1:$NEWSFLOW_WORKER_METRICS_PORT/metrics" "worker" 241 newsflow_ner_model_load_seconds
wait_for producer "http://127.0.0.1:$NEWSFLOW_PRODUCER_METRICS_PORT/metrics" "producer" 61

cat >&2 <<MSG
make up: running. Drop article files into $inbox/ (a folder per outlet: $inbox/<outlet>/...).
  stories page   http://127.0.0.1:$NEWSFLOW_WEB_PORT/
  stories API    http://127.0.0.1:$NEWSFLOW_WEB_PORT/api/stories  (OpenAPI: /api/openapi.json)
  worker metrics http://127.0.0.1:$NEWSFLOW_WORKER_METRICS_PORT/metrics
  producer       http://127.0.0.1:$NEWSFLOW_PRODUCER_METRICS_PORT/metrics
  Kafka          $NEWSFLOW_KAFKA_BOOTSTRAP  (the CLIs reach it with NEWSFLOW_KAFKA_BOOTSTRAP=$NEWSFLOW_KAFKA_BOOTSTRAP:
                 e.g. NEWSFLOW_KAFKA_BOOTSTRAP=$NEWSFLOW_KAFKA_BOOTSTRAP .venv/bin/newsflow-tail)
  logs           $state/{worker,producer,web}.log
MSG
if [ "${NEWSFLOW_UP_DETACH:-0}" = 1 ]; then
  trap - INT TERM HUP
  say "detached; make down stops it"
  exit 0
fi
say "Ctrl-C (or make down) stops it"
# Until a service ends (make down from another shell ends them all).
while alive worker && alive web && alive producer; do sleep 1; done
[ -f "$state/stopping" ] && exit 0  # make down, from another shell
say "error: a service stopped (see $state/*.log); stopping the rest"
stop_all 1
