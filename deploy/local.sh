#!/usr/bin/env bash
# The local serving topology, for development and for bench/availability.bench.ts:
#   PostgreSQL, Redis, NATS (reused when they answer; started otherwise), N `mastery serve --via-stream`
#   processes on ports BASE+1..BASE+N, one `mastery worker` (stream consumer), HAProxy on LB_PORT.
#
#   deploy/local.sh start            # SERVERS=2 LB_PORT=8080 BASE_PORT=8090 by default
#   deploy/local.sh status
#   deploy/local.sh restart-server 1 # graceful, overlapped: a new process starts on the slot's other port,
#                                    # warms up, joins HAProxy (slow start), then the old one drains and exits
#   deploy/local.sh kill-server 2    # SIGKILL, then start again
#   deploy/local.sh restart-worker   # SIGKILL the stream worker, then start again
#   deploy/local.sh stop
#
# Environment: MASTERY_PG_URL, MASTERY_PG_SCHEMA, MASTERY_REDIS_URL, MASTERY_REDIS_PREFIX, MASTERY_NATS_URL,
# MASTERY_NATS_STREAM, MASTERY_NATS_SUBJECT_PREFIX, MASTERY_JWT_SECRET and MASTERY_PSEUDONYM_KEY (without
# them the servers run with --demo, i.e. the PUBLIC demo secrets: development only), LOCAL_DIR (state, logs),
# LOCAL_BUILD=0 (do not build dist/ before starting; see build() below), NODE_ARGS (node flags, see below), LB_LOG=host:port (HAProxy's per-request
# log, `option httplog`, as syslog over UDP to that address: queue time vs server time per request).
set -euo pipefail
cd "$(dirname "$0")/.."
SERVERS=${SERVERS:-2}
LB_PORT=${LB_PORT:-8080}
BASE_PORT=${BASE_PORT:-8090}
DIR=${LOCAL_DIR:-.mastery/local}
export MASTERY_PG_URL=${MASTERY_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
export MASTERY_PG_SCHEMA=${MASTERY_PG_SCHEMA:-mastery_local}
export MASTERY_REDIS_URL=${MASTERY_REDIS_URL:-redis://127.0.0.1:6379}
export MASTERY_REDIS_PREFIX=${MASTERY_REDIS_PREFIX:-mastery_local}
export MASTERY_NATS_URL=${MASTERY_NATS_URL:-nats://127.0.0.1:4222}
export MASTERY_NATS_STREAM=${MASTERY_NATS_STREAM:-MASTERY_LOCAL}
export MASTERY_NATS_SUBJECT_PREFIX=${MASTERY_NATS_SUBJECT_PREFIX:-mastery_local.events}
export LOG_LEVEL=${LOG_LEVEL:-warn}
# HAProxy (on loopback) forwards the client's address in X-Forwarded-For; the servers trust it from there
# (serving/rateLimit.ts: requests without a valid token are limited per client address).
export MASTERY_TRUST_PROXY=${MASTERY_TRUST_PROXY:-loopback}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
# NODE_ARGS: extra node flags for the servers and the worker, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" (which
# NODE_OPTIONS does not allow; each profile is written when its process exits, i.e. after `stop`).
read -r -a NODE_ARGS_ARR <<<"${NODE_ARGS:-}"
MASTERY=(node "${NODE_ARGS_ARR[@]}" bin/mastery.js)
DEMO=()
if [[ -z "${MASTERY_JWT_SECRET:-}" || -z "${MASTERY_PSEUDONYM_KEY:-}" ]]; then DEMO=(--demo); fi
mkdir -p "$DIR"
DIR_ABS=$(cd "$DIR" && pwd)

hostport() { local u=${1#*://}; u=${u#*@}; u=${u%%/*}; echo "$u"; }
tcp_up() { local hp; hp=$(hostport "$1"); (exec 3<>"/dev/tcp/${hp%:*}/${hp#*:}") 2>/dev/null; }
pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

services() {
  if ! tcp_up "$MASTERY_PG_URL"; then
    echo "PostgreSQL not answering at $(hostport "$MASTERY_PG_URL"); starting the Debian cluster"
    pg_ctlcluster "$(ls /etc/postgresql | sort -V | tail -1)" main start
  fi
  if ! tcp_up "$MASTERY_REDIS_URL"; then
    echo "Redis not answering; starting redis-server"
    redis-server --port "$(hostport "$MASTERY_REDIS_URL" | cut -d: -f2)" --daemonize yes --save "" \
      --pidfile "$PWD/$DIR/redis.pid"
  fi
  if ! tcp_up "$MASTERY_NATS_URL"; then
    echo "NATS not answering; starting nats-server with JetStream"
    nohup nats-server -js -sd "$DIR/nats" -p "$(hostport "$MASTERY_NATS_URL" | cut -d: -f2)" \
      >"$DIR/nats.log" 2>&1 &
    echo $! >"$DIR/nats.pid"
  fi
  for _ in $(seq 50); do
    tcp_up "$MASTERY_PG_URL" && tcp_up "$MASTERY_REDIS_URL" && tcp_up "$MASTERY_NATS_URL" && return 0
    sleep 0.2
  done
  echo "deploy/local.sh: PostgreSQL, Redis or NATS did not come up; see $DIR/*.log" >&2
  return 1
}

# The servers and the worker run the compiled build (dist/): bin/mastery.js falls back to the TypeScript
# through tsx when dist/ is missing or older than a source file, and that start (and every restart) then
# transpiles the whole tree on the spot. So `start` builds first when needed (incremental tsc, seconds when
# little changed). LOCAL_BUILD=0 skips it (the servers then run whatever bin/mastery.js picks).
build() {
  [[ ${LOCAL_BUILD:-1} == 0 ]] && return 0
  if [[ -f dist/.build-stamp ]] && [[ -z $(find bin models features training storage registry serving experiments \
    monitoring -name '*.ts' -newer dist/.build-stamp -print -quit) ]]; then
    return 0
  fi
  echo "building dist/ (npm run build) so the servers start from compiled JavaScript"
  npm run --silent build
}

# Each server i has two slots, so a graceful restart can start the new process before the old one leaves
# (like `mastery serve --workers`' rolling restart): slot a on port BASE+i with server<i>.duckdb (HAProxy
# server s<i>), slot b on port BASE+SERVERS+i with server<i>b.duckdb (s<i>b, in maintenance while unused).
# Each slot has its own DuckDB file because the old process holds its file's lock until it exits.
slot_of() { cat "$DIR/server$1.slot" 2>/dev/null || echo a; }
other_slot() { [[ $1 == a ]] && echo b || echo a; }
port_of() { if [[ $2 == a ]]; then echo $((BASE_PORT + $1)); else echo $((BASE_PORT + SERVERS + $1)); fi; }
lb_name() { if [[ $2 == a ]]; then echo "s$1"; else echo "s$1b"; fi; }
db_of() { if [[ $2 == a ]]; then echo "$DIR/server$1.duckdb"; else echo "$DIR/server$1b.duckdb"; fi; }

# start_server I [SLOT [PIDFILE]]
start_server() {
  local i=$1 slot=${2:-$(slot_of "$1")} pidfile=${3:-$DIR/server$1.pid} monitor=(--no-monitor)
  [[ $i == 1 ]] && monitor=()
  nohup "${MASTERY[@]}" serve "${DEMO[@]}" --via-stream --port "$(port_of "$i" "$slot")" --db "$(db_of "$i" "$slot")" \
    "${monitor[@]}" >>"$DIR/server$i.log" 2>&1 &
  echo $! >"$pidfile"
}

# HAProxy's runtime API (admin level, on a unix socket in $DIR): enable/drain/maintenance of a server.
hap() {
  if ! command -v socat >/dev/null; then
    echo "deploy/local.sh: socat not found; the overlapped restart talks to HAProxy's runtime API with it (apt-get install socat)" >&2
    return 1
  fi
  echo "$*" | socat stdio "unix-connect:$DIR_ABS/haproxy.sock"
}
lb_status() { # name -> UP / DOWN / MAINT / DRAIN ... (HAProxy's stats CSV, column 18)
  curl -fs "http://127.0.0.1:$((LB_PORT + 1))/;csv" 2>/dev/null | awk -F, -v s="$1" '$1 == "mastery_servers" && $2 == s {print $18}'
}

# wait_ready I [SLOT]: the process on that slot answers /readyz 200 (it has warmed up; serving/warmUp.ts).
wait_ready() {
  local port; port=$(port_of "$1" "${2:-$(slot_of "$1")}")
  for _ in $(seq 600); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "deploy/local.sh: server $1 (port $port) not ready after 60 s; see $DIR/server$1.log" >&2
  return 1
}

# Overlapped graceful restart of server I: the new process starts on the other slot and warms up while
# the old one serves; HAProxy then takes it in (UP after its checks, its share ramping over the slow start)
# and only after that stops sending new requests to the old one (drain), which is then SIGTERMed (finish
# in-flight requests, close keep-alive connections, exit; <= 10 s) and put in maintenance. Two processes
# serve slot I at every moment: the other servers never carry its share alone (on 2 cores a single
# Node process is one core, and the 30 s after a stop-then-start restart had p99 1.2 s at 500 req/s).
restart_overlapped() {
  local i=$1 cur new next_pid="$DIR/server$1.next.pid"
  cur=$(slot_of "$i")
  new=$(other_slot "$cur")
  start_server "$i" "$new" "$next_pid"
  if ! wait_ready "$i" "$new"; then
    stop_pidfile "$next_pid" KILL 2
    return 1
  fi
  hap "enable server mastery_servers/$(lb_name "$i" "$new")" >/dev/null
  for _ in $(seq 100); do [[ $(lb_status "$(lb_name "$i" "$new")") == UP* ]] && break; sleep 0.1; done
  # The slow start (deploy/haproxy.cfg `slowstart`) ramps the new process's share; the old one keeps
  # its share meanwhile.
  sleep "${RESTART_OVERLAP_S:-10}"
  hap "set server mastery_servers/$(lb_name "$i" "$cur") state drain" >/dev/null
  stop_pidfile "$DIR/server$i.pid" TERM 12
  hap "set server mastery_servers/$(lb_name "$i" "$cur") state maint" >/dev/null
  mv "$next_pid" "$DIR/server$i.pid"
  echo "$new" >"$DIR/server$i.slot"
}

start_worker() {
  nohup "${MASTERY[@]}" worker "${DEMO[@]}" --db "$DIR/worker.duckdb" --stream "$MASTERY_NATS_STREAM" \
    --subject-prefix "$MASTERY_NATS_SUBJECT_PREFIX" --durable "${MASTERY_NATS_STREAM,,}-worker" \
    >>"$DIR/worker.log" 2>&1 &
  echo $! >"$DIR/worker.pid"
}

# Until HAProxy itself sees every server UP (its stats CSV) and the worker has connected (its first log
# line): `start` returns when the topology serves, not when the processes merely exist. Traffic sent before
# that waited in HAProxy's queue for the first health checks (1-2 s at start in bench/availability.bench.ts).
wait_topology() {
  local stats="http://127.0.0.1:$((LB_PORT + 1))/;csv" up
  for _ in $(seq 300); do
    up=$(curl -fs "$stats" 2>/dev/null | awk -F, '$1 == "mastery_servers" && $2 ~ /^s[0-9]+b?$/ && $18 == "UP"' | wc -l)
    if [[ $up -ge $SERVERS ]] && grep -q "worker:" "$DIR/worker.log" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "deploy/local.sh: HAProxy does not see all $SERVERS servers UP, or the worker did not start, after 30 s; see $DIR/*.log" >&2
  return 1
}

start_lb() {
  if [[ ! -x $HAPROXY ]]; then
    echo "deploy/local.sh: HAProxy not found at $HAPROXY; install Debian's package (apt-get install haproxy) or set HAPROXY=/path/to/haproxy" >&2
    return 1
  fi
  { MASTERY_LB_PORT=$LB_PORT MASTERY_LB_STATS_PORT=$((LB_PORT + 1)) envsubst '${MASTERY_LB_PORT} ${MASTERY_LB_STATS_PORT}' \
      <deploy/haproxy.cfg |
      if [[ -n ${LB_LOG:-} ]]; then
        # One syslog line per request (queue, connect, server and total times: %Tw/%Tc/%Tr/%Ta) to LB_LOG.
        sed "/^frontend mastery_api/a\\    log $LB_LOG local0 info\n    option httplog"
      else cat; fi
    for i in $(seq "$SERVERS"); do
      # The slot in use serves; the other waits in maintenance for the next overlapped restart.
      for slot in a b; do
        local state=""
        [[ $slot != $(slot_of "$i") ]] && state=" disabled"
        echo "    server $(lb_name "$i" "$slot") 127.0.0.1:$(port_of "$i" "$slot") check$state"
      done
    done
  } >"$DIR/haproxy.cfg"
  # The runtime API (restart-server enables / drains / disables slots through it).
  sed -i "/^global/a\\    stats socket $DIR_ABS/haproxy.sock mode 600 level admin" "$DIR/haproxy.cfg"
  "$HAPROXY" -c -q -f "$DIR/haproxy.cfg"
  "$HAPROXY" -D -f "$DIR/haproxy.cfg" -p "$DIR/haproxy.pid"
}

stop_pidfile() { # file signal timeout_s
  local f=$1 sig=${2:-TERM} t=${3:-12}
  pid_alive "$f" || { rm -f "$f"; return 0; }
  local pid; pid=$(cat "$f")
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq $((t * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  rm -f "$f"
}

case "${1:-}" in
  start)
    services
    build
    # Server 1 first: it creates the PostgreSQL tables (concurrent CREATE TABLE IF NOT EXISTS of the
    # same table in a new schema can fail in PostgreSQL), then the others together.
    pid_alive "$DIR/server1.pid" || start_server 1
    wait_ready 1
    for i in $(seq 2 "$SERVERS"); do pid_alive "$DIR/server$i.pid" || start_server "$i"; done
    for i in $(seq 2 "$SERVERS"); do wait_ready "$i"; done
    pid_alive "$DIR/worker.pid" || start_worker
    pid_alive "$DIR/haproxy.pid" || start_lb
    wait_topology
    echo "ready: http://127.0.0.1:$LB_PORT (HAProxy stats http://127.0.0.1:$((LB_PORT + 1))/), $SERVERS servers, 1 worker; logs in $DIR"
    ;;
  restart-server)
    if pid_alive "$DIR/haproxy.pid" && pid_alive "$DIR/server$2.pid" && command -v socat >/dev/null; then
      restart_overlapped "$2"
    else
      # Nothing to overlap with (HAProxy or the server not running, or no socat): stop, then start.
      stop_pidfile "$DIR/server$2.pid" TERM 12
      start_server "$2"
      wait_ready "$2"
    fi
    ;;
  kill-server)
    stop_pidfile "$DIR/server$2.pid" KILL 2
    start_server "$2"
    wait_ready "$2"
    ;;
  restart-worker)
    stop_pidfile "$DIR/worker.pid" KILL 2
    start_worker
    ;;
  status)
    for f in "$DIR"/*.pid; do
      [[ -e $f ]] || continue
      if pid_alive "$f"; then echo "$(basename "$f" .pid): running ($(cat "$f"))"; else echo "$(basename "$f" .pid): dead"; fi
    done
    ;;
  stop)
    stop_pidfile "$DIR/haproxy.pid" TERM 5
    for i in $(seq "$SERVERS"); do
      stop_pidfile "$DIR/server$i.next.pid" TERM 12
      stop_pidfile "$DIR/server$i.pid" TERM 12
      rm -f "$DIR/server$i.slot"
    done
    stop_pidfile "$DIR/worker.pid" TERM 12
    # Only what this script started: the NATS / Redis it launched (pid files), never shared services.
    stop_pidfile "$DIR/nats.pid" TERM 5
    stop_pidfile "$DIR/redis.pid" TERM 5
    ;;
  *)
    echo "usage: deploy/local.sh start|status|restart-server I|kill-server I|restart-worker|stop (SERVERS, LB_PORT, BASE_PORT)" >&2
    exit 2
    ;;
esac
