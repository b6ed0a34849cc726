#!/usr/bin/env bash
# Run a local TokenForge cluster from deploy/cluster/Procfile on PostgreSQL, RabbitMQ and Redis.
#
#   deploy/cluster/run.sh            # Ctrl-C (or SIGTERM) drains and stops every process
#
# Every TOKENFORGE_* variable set beforehand wins over the defaults below (127.0.0.1 services,
# chains on the devnet the Procfile starts). Runs `tokenforge migrate` first, starts the devnet
# and waits for it, then starts the other processes, each output line prefixed with its name.
# When one process exits, the others are stopped too.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
[[ -x .venv/bin/tokenforge ]] && PATH="$root/.venv/bin:$PATH"

procfile=deploy/cluster/Procfile
devnet=http://127.0.0.1:$(sed -n 's/^devnet:.*--port \([0-9]*\).*/\1/p' "$procfile")
export TOKENFORGE_DATA_DIR=${TOKENFORGE_DATA_DIR:-.tokenforge/cluster}
export TOKENFORGE_DATABASE_URL=${TOKENFORGE_DATABASE_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/tokenforge}
export TOKENFORGE_BROKER_URL=${TOKENFORGE_BROKER_URL:-amqp://guest:guest@127.0.0.1:5672/}
export TOKENFORGE_CACHE_URL=${TOKENFORGE_CACHE_URL:-redis://127.0.0.1:6379/0}
export TOKENFORGE_METRICS_DIR=${TOKENFORGE_METRICS_DIR:-$TOKENFORGE_DATA_DIR/metrics}
export PROMETHEUS_MULTIPROC_DIR=$TOKENFORGE_METRICS_DIR
export TOKENFORGE_CHAINS=${TOKENFORGE_CHAINS:-'{
  "ethereum": {"network": "local", "endpoints": ["'$devnet/ethereum'"], "dev_fund_base_units": 1000000000000000000000},
  "solana": {"network": "local", "endpoints": ["'$devnet/solana'"], "dev_fund_base_units": 10000000000000}}'}

answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
# "scheme://user:pass@host:port/path" -> "host port" (the password never reaches the output)
host_port() { local hp=${1#*://}; hp=${hp##*@}; hp=${hp%%/*}; echo "${hp%:*} ${hp##*:}"; }
for service in "PostgreSQL $TOKENFORGE_DATABASE_URL" "RabbitMQ $TOKENFORGE_BROKER_URL" "Redis $TOKENFORGE_CACHE_URL"; do
  read -r name url <<<"$service"
  read -r host port < <(host_port "$url")
  answers "$host" "$port" || { echo "run.sh: $name does not answer on $host:$port" >&2; exit 1; }
done

# Metric files of an earlier run describe processes that are gone.
mkdir -p "$TOKENFORGE_METRICS_DIR" && rm -f "$TOKENFORGE_METRICS_DIR"/*.db
if [[ $TOKENFORGE_DATABASE_URL == */127.0.0.1:5432/tokenforge ]] && command -v createdb >/dev/null; then
  createdb -h 127.0.0.1 -U postgres tokenforge 2>/dev/null || true # the default database, made once
fi
tokenforge migrate

pids=()
declare -A name_of
start() { # name command...: run in the background, every output line prefixed with the name
  local name=$1 prefix
  shift
  prefix=$(printf '%-8s| ' "$name")
  # the prefixer ignores Ctrl-C so a draining process can still write its last lines
  bash -c "exec $*" > >(trap '' INT && exec sed -u "s/^/$prefix/") 2>&1 &
  pids+=($!)
  name_of[$!]=$name
}
stop() {
  trap - INT TERM EXIT
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

procs=$(grep -E '^[A-Za-z0-9_-]+:' "$procfile")
start devnet "$(sed -n 's/^devnet: *//p' <<<"$procs")"
for _ in $(seq 1 120); do answers 127.0.0.1 "${devnet##*:}" && break; sleep 0.5; done
answers 127.0.0.1 "${devnet##*:}" || { echo "run.sh: the devnet did not start on $devnet" >&2; exit 1; }
while IFS=: read -r name command; do
  [[ $name == devnet ]] || start "$name" "$command"
done <<<"$procs"

status=0
wait -n -p ended "${pids[@]}" || status=$?
echo "run.sh: ${name_of[$ended]} exited with status $status; stopping the others" >&2
exit "$status"
