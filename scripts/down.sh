#!/usr/bin/env bash
# make down: stop what make up started (producer first, so nothing is left half-sent), then Kafka.
# The broker keeps its data for the next make up; --reset deletes it, the view's database and the
# producer's record of what it sent.
set -euo pipefail
cd "$(dirname "$0")/.."
trap '' INT HUP  # a second Ctrl-C must not leave things half-stopped
state=${NEWSFLOW_UP_STATE:-.cache/up}
say() { echo "make down: $*" >&2; }

stop() {  # name: SIGTERM, wait up to 30 s, then SIGKILL
  local pidfile=$state/$1.pid pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  # Only a process of ours: after a reboot the pid may belong to another.
  if ps -o args= -p "$pid" 2>/dev/null | grep -q newsflow && kill -TERM "$pid" 2>/dev/null; then
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      say "$1 did not stop in 30 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped $1"
  fi
  rm -f "$pidfile"
}
[ -d "$state" ] && touch "$state/stopping"  # tells a waiting make up that this is on purpose
for name in producer web worker; do stop "$name"; done

port=$(cat "$state/kafka.port" 2>/dev/null || echo "${NEWSFLOW_KAFKA_PORT:-19492}")
if [ "${1:-}" = --reset ]; then
  NEWSFLOW_KAFKA_PORT=$port deploy/local-kafka/kafka.sh reset
  rm -rf "$state"
  say "deleted the broker's data and $state/"
else
  NEWSFLOW_KAFKA_PORT=$port deploy/local-kafka/kafka.sh stop
fi
