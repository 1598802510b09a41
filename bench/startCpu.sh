#!/usr/bin/env bash
# CPU-seconds of one `mastery serve --via-stream` start (deploy/local.sh's server command) up to listening,
# and up to ready (/readyz 200: warmed up, serving/warmUp.ts), from /proc/<pid>/stat (utime + stime).
# The store is an empty schema of its own (the warm-up then reads its probe students), like a server of a
# new deployment or of bench/availability.bench.ts. Needs PostgreSQL, Redis and NATS; a built dist/.
#
#   bench/startCpu.sh [ROOT [PORT [RUNS]]]     # ROOT: the checkout to start (default: this one)
#   bench/startCpu.sh /work/base 41490 3       # A/B: run it on two worktrees in turn
# NODE_ARGS: node flags for the server (as in deploy/local.sh). Prints one line per run: CPU-s to listening, to ready, the warm-up's share, and wall seconds.
set -euo pipefail
ROOT=${1:-$(cd "$(dirname "$0")/.." && pwd)}
PORT=${2:-41490}
RUNS=${3:-1}
TAG=${START_TAG:-startcpu}_$$
DIR=${TMPDIR:-/tmp}/$TAG
mkdir -p "$DIR"
export MASTERY_PG_URL=${MASTERY_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
export MASTERY_PG_SCHEMA=$TAG MASTERY_REDIS_PREFIX=$TAG MASTERY_NATS_STREAM=${TAG^^}
export MASTERY_NATS_SUBJECT_PREFIX=$TAG.events MASTERY_REDIS_URL=${MASTERY_REDIS_URL:-redis://127.0.0.1:6379}
export MASTERY_NATS_URL=${MASTERY_NATS_URL:-nats://127.0.0.1:4222} LOG_LEVEL=warn
TICKS=$(getconf CLK_TCK)
cpu_s() { local st rest; st=$(cat "/proc/$1/stat"); rest=${st##*) }; set -- $rest; echo "scale=2; (${12} + ${13}) / $TICKS" | bc; }
cleanup() {
  [[ -n ${PID:-} ]] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  psql "$MASTERY_PG_URL" -qc "DROP SCHEMA IF EXISTS $TAG CASCADE" >/dev/null 2>&1 || true
  redis-cli -u "$MASTERY_REDIS_URL" --scan --pattern "$TAG*" | xargs -r redis-cli -u "$MASTERY_REDIS_URL" del >/dev/null
  (cd "$ROOT" && node --input-type=module -e "import { connect } from 'nats';
    const nc = await connect({ servers: process.env.MASTERY_NATS_URL });
    await (await nc.jetstreamManager()).streams.delete(process.env.MASTERY_NATS_STREAM).catch(() => false);
    await nc.close();") || true
  rm -rf "$DIR"
}
trap cleanup EXIT
for run in $(seq "$RUNS"); do
  rm -f "$DIR/server.duckdb" "$DIR/server.duckdb.wal"
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086 # NODE_ARGS: node flags, word-split like deploy/local.sh does
  (cd "$ROOT" && exec node ${NODE_ARGS:-} bin/mastery.js serve --demo --via-stream --port "$PORT" --db "$DIR/server.duckdb" \
    --no-monitor >>"$DIR/server.log" 2>&1) &
  PID=$!
  listening="" ready=""
  for _ in $(seq 1200); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz" || true)
    if [[ -z $listening && $code != 000 ]]; then listening=$(cpu_s "$PID"); fi
    if [[ $code == 200 ]]; then ready=$(cpu_s "$PID"); break; fi
    sleep 0.05
  done
  wall=$(echo "$(date +%s.%N) - $t0" | bc)
  [[ -z $ready ]] && { echo "run $run: not ready after 60 s; see $DIR/server.log" >&2; exit 1; }
  printf 'run %d (%s): listening %.2f CPU-s, ready %.2f CPU-s (warm-up %.2f), %.1f s wall, load %s\n' \
    "$run" "$ROOT" "$listening" "$ready" "$(echo "$ready - $listening" | bc)" "$wall" "$(cut -d' ' -f1 /proc/loadavg)"
  kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
  PID=""
done
