#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, combined broker+controller) on loopback,
# assembled from the official org.apache.kafka jars on Maven Central.
#
#   deploy/local-kafka/kafka.sh fetch    resolve the jars into the cache (idempotent)
#   deploy/local-kafka/kafka.sh start    fetch, format storage if there is none, start, wait until it serves
#   deploy/local-kafka/kafka.sh stop     SIGTERM, wait for a clean shutdown (SIGKILL after 30 s); data is kept
#   deploy/local-kafka/kafka.sh reset    stop and delete the broker's data (the next start is a new cluster)
#   deploy/local-kafka/kafka.sh status   say whether it runs and where
#
# Environment (defaults in brackets):
#   NEWSFLOW_KAFKA_PORT [19092]          client listener on 127.0.0.1
#   NEWSFLOW_KAFKA_CONTROLLER_PORT [port+1]
#   NEWSFLOW_KAFKA_HOME [<repo>/.cache/kafka]   jars and per-port run dirs (git-ignored)
#   NEWSFLOW_KAFKA_HEAP [512m]
#   NEWSFLOW_KAFKA_START_TIMEOUT [60]    seconds to wait for the broker to serve
#   NEWSFLOW_KAFKA_SASL_USERS [unset]    "user:password,..." makes the client listener SASL_SSL
#       (SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN for those users; a CA and server certificate are
#       made at the first start, `kafka.sh cafile` prints the CA to trust). Brokers talk to
#       themselves on a plaintext loopback listener on port+2. The first user may do anything;
#       `kafka.sh allow-read USER PREFIX...` lets another read topics starting with PREFIX.
#   NEWSFLOW_KAFKA_TLS_CLIENT_AUTH [requested]  with SASL users: "required" for mutual TLS; client
#       certificates come from `kafka.sh client-cert NAME` (prints the cert and key files).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
port=${NEWSFLOW_KAFKA_PORT:-19092}
cport=${NEWSFLOW_KAFKA_CONTROLLER_PORT:-$((port + 1))}
home=${NEWSFLOW_KAFKA_HOME:-$root/.cache/kafka}
libs=$home/kafka-$version/libs
run=$home/run-$port
pidfile=$run/kafka.pid
timeout=${NEWSFLOW_KAFKA_START_TIMEOUT:-60}

say() { echo "local-kafka: $*" >&2; }
die() { say "error: $*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

fetch() {
  if [ -f "$libs/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch the Kafka jars: apt-get install maven"
  command -v java >/dev/null || die "Java 17+ is needed to run Kafka: apt-get install openjdk-17-jre-headless"
  say "fetching Apache Kafka $version jars from Maven Central into $libs (first run only)"
  rm -rf "$libs" && mkdir -p "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$libs" >&2 \
    || die "Maven could not resolve org.apache.kafka:kafka_2.13:$version (is Maven Central reachable?)"
  [ -f "$libs/kafka_2.13-$version.jar" ] || die "kafka_2.13-$version.jar missing after fetch"
  touch "$libs/.complete"
}

sasl_users=${NEWSFLOW_KAFKA_SASL_USERS:-}
iport=$((port + 2))
tls=$run/tls
client_auth=${NEWSFLOW_KAFKA_TLS_CLIENT_AUTH:-requested}
case "$client_auth" in requested | required) ;; *) die "NEWSFLOW_KAFKA_TLS_CLIENT_AUTH is requested or required, not '$client_auth'" ;; esac

make_tls() {
  [ -f "$tls/server.pem" ] && return 0
  command -v openssl >/dev/null || die "openssl is needed for the SASL_SSL listener"
  mkdir -p "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=newsflow local CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.pem" >/dev/null 2>&1 || die "making the CA failed"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$tls/server.key.pem" \
    -out "$tls/server.csr" >/dev/null 2>&1 || die "making the server key failed"
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$tls/san.ext"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
    -days 3650 -extfile "$tls/san.ext" -out "$tls/server.crt" >/dev/null 2>&1 || die "signing failed"
  # Kafka's PEM keystore: the unencrypted PKCS#8 key, then the certificate chain.
  openssl pkcs8 -topk8 -nocrypt -in "$tls/server.key.pem" -out "$tls/server.p8" 2>/dev/null
  cat "$tls/server.p8" "$tls/server.crt" "$tls/ca.pem" >"$tls/server.pem"
}

listener_config() {
  if [ -z "$sasl_users" ]; then
    cat <<PROPS
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
PROPS
    return 0
  fi
  local plain_users="" pair
  IFS=, read -ra pairs <<<"$sasl_users"
  for pair in "${pairs[@]}"; do plain_users+=" user_${pair%%:*}=\"${pair#*:}\""; done
  cat <<PROPS
listeners=SASL_SSL://127.0.0.1:$port,INTERNAL://127.0.0.1:$iport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=SASL_SSL://127.0.0.1:$port,INTERNAL://127.0.0.1:$iport
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;
ssl.keystore.type=PEM
ssl.keystore.location=$tls/server.pem
# Client certificates signed by the local CA (kafka.sh client-cert) are checked when presented
# (listener-prefixed: Kafka ignores the broker-wide ssl.client.auth on SASL listeners);
# NEWSFLOW_KAFKA_TLS_CLIENT_AUTH=required makes every client present one (mutual TLS).
ssl.truststore.type=PEM
ssl.truststore.location=$tls/ca.pem
listener.name.sasl_ssl.ssl.client.auth=$client_auth
# The first user (the services) and the loopback broker listener may do anything; any other user
# only what an ACL allows (kafka.sh allow-read).
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:${pairs[0]%%:*};User:ANONYMOUS
allow.everyone.if.no.acl.found=false
PROPS
}

client_cert() {
  # kafka.sh client-cert NAME: a client certificate (CN=NAME) signed by the local CA; prints
  # "CERTFILE KEYFILE" for NEWSFLOW_KAFKA_SSL_CERTFILE and NEWSFLOW_KAFKA_SSL_KEYFILE.
  local name=${1:?usage: kafka.sh client-cert NAME}
  [ -f "$tls/ca.key" ] || die "no local CA yet: start the broker with NEWSFLOW_KAFKA_SASL_USERS first"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" -keyout "$tls/client-$name.key" \
    -out "$tls/client-$name.csr" >/dev/null 2>&1 || die "making the client key failed"
  openssl x509 -req -in "$tls/client-$name.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
    -days 3650 -out "$tls/client-$name.pem" >/dev/null 2>&1 || die "signing the client certificate failed"
  echo "$tls/client-$name.pem $tls/client-$name.key"
}

allow_read() {
  # kafka.sh allow-read USER PREFIX...: USER may read (and describe) topics starting with PREFIX.
  local user=$1; shift
  local prefix
  for prefix in "$@"; do
    java_run kafka.admin.AclCommand --bootstrap-server "127.0.0.1:$iport" --add --allow-principal "User:$user" \
      --operation Read --operation Describe --topic "$prefix" --resource-pattern-type prefixed >/dev/null \
      || die "adding the ACL for $user on $prefix failed"
  done
  say "$user may read topics starting with: $*"
}

scram_args() {
  local pair
  IFS=, read -ra pairs <<<"$sasl_users"
  for pair in "${pairs[@]}"; do
    printf '%s\n' "--add-scram=SCRAM-SHA-256=[name=${pair%%:*},password=${pair#*:}]" \
      "--add-scram=SCRAM-SHA-512=[name=${pair%%:*},password=${pair#*:}]"
  done
}

write_config() {
  mkdir -p "$run"
  [ -z "$sasl_users" ] || make_tls
  { cat <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
controller.listener.names=CONTROLLER
PROPS
    listener_config
    cat <<PROPS
log.dirs=$run/data
# Topics are created by the project (newsflow-topics), never implicitly by a typo'd produce.
auto.create.topics.enable=false
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
# Few partitions for the internal topics: they are created on first use, 50 would take seconds.
transaction.state.log.num.partitions=4
# A single local node: no reason to wait for more members before the first rebalance.
group.initial.rebalance.delay.ms=0
PROPS
  } >"$run/server.properties"
  cat >"$run/log4j.properties" <<PROPS
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$run/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.controller=INFO
log4j.logger.state.change.logger=WARN
PROPS
}

java_run() {
  java -Xms128m -Xmx"${NEWSFLOW_KAFKA_HEAP:-512m}" -XX:+UseG1GC \
       -Dlog4j.configuration="file:$run/log4j.properties" -cp "$libs/*" "$@"
}

start() {
  fetch
  if running; then say "already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; return 0; fi
  if port_open "$port"; then
    die "port $port is taken by another process; stop it or set NEWSFLOW_KAFKA_PORT"
  fi
  if port_open "$cport"; then
    die "controller port $cport is taken by another process; set NEWSFLOW_KAFKA_CONTROLLER_PORT"
  fi
  write_config
  if [ -f "$run/data/meta.properties" ]; then
    # Kafka recovers its own logs after a crash or kill; the topics and offsets stay.
    say "starting on the existing data in $run/data (kafka.sh reset deletes it)"
  else
    rm -rf "$run/data"
    local cluster_id
    cluster_id=$(python3 -c 'import base64,uuid;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
    local scram=()
    [ -z "$sasl_users" ] || mapfile -t scram < <(scram_args)
    java_run kafka.tools.StorageTool format --cluster-id="$cluster_id" --config="$run/server.properties" \
        "${scram[@]}" >"$run/format.log" 2>&1 \
      || die "formatting KRaft storage failed, see $run/format.log"
  fi
  local t0=$SECONDS
  nohup java -Xms128m -Xmx"${NEWSFLOW_KAFKA_HEAP:-512m}" -XX:+UseG1GC \
       -Dlog4j.configuration="file:$run/log4j.properties" -cp "$libs/*" \
       kafka.Kafka "$run/server.properties" >"$run/stdout.log" 2>&1 &
  echo $! >"$pidfile"
  while ! grep -q "Kafka Server started" "$run/server.log" 2>/dev/null; do
    if ! running; then
      tail -n 20 "$run/stdout.log" "$run/server.log" >&2 2>/dev/null || true
      die "broker exited during start-up; logs in $run"
    fi
    if (( SECONDS - t0 > timeout )); then
      stop
      die "broker did not serve within ${timeout}s; logs in $run"
    fi
    sleep 0.3
  done
  until port_open "$port"; do sleep 0.2; done
  say "Apache Kafka $version (KRaft) serving on 127.0.0.1:$port after $((SECONDS - t0))s (pid $(cat "$pidfile"))"
}

stop() {
  if ! running; then rm -f "$pidfile"; say "not running on port $port"; return 0; fi
  local pid
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then say "broker did not stop in 30s, killing"; kill -KILL "$pid"; fi
  rm -f "$pidfile"
  say "stopped (port $port)"
}

reset() {
  stop
  rm -rf "$run/data" "$tls"
  say "data deleted (port $port)"
}

status() {
  if running; then echo "running: pid $(cat "$pidfile"), bootstrap 127.0.0.1:$port, Kafka $version"
  else echo "not running (port $port)"; return 3; fi
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  reset) reset ;;
  status) status ;;
  bootstrap) echo "127.0.0.1:$port" ;;
  cafile) echo "$tls/ca.pem" ;;
  allow-read) shift; allow_read "$@" ;;
  client-cert) shift; client_cert "$@" ;;
  *) echo "usage: $0 fetch|start|stop|reset|status|bootstrap|cafile|client-cert NAME|allow-read USER PREFIX..." >&2; exit 2 ;;
esac
