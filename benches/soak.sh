#!/usr/bin/env bash
# A soak run (not part of CI): steady chat traffic plus churning connections against one chatgate
# process for a long time, sampling the server's memory and open file descriptors. Loopback only,
# bounded in time.
#
#   benches/soak.sh [SECONDS]        (default 1800)
#
# Server pinned to core 0, both load processes to core 1: `fanout` at 10,000 deliveries/s over 500
# rooms (every message checked for loss and latency) and `churn` with 8 workers on other rooms
# (connect, join, send, receive, disconnect, over and over). Prints the samples and both results.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${1:-1800}
. benches/bench-env.sh
PORT=7200
out=$(mktemp -d)
trap 'kill "${server:-}" "${sampler:-}" 2>/dev/null || true' EXIT

prepare_bench

taskset -c 0 ./target/release/chatgate --listen "127.0.0.1:$PORT" --database-url "$URL" --auth trust \
  --workers 1 --message-rate 0 --handshake-rate 0 >"$out/server.log" 2>&1 &
server=$!
wait_listening "$PORT" "$out/server.log" chatgate

echo "elapsed_s,rss_kib,open_fds,sessions" >"$out/samples.csv"
(
  start=$(date +%s)
  while kill -0 "$server" 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
    fds=$(ls "/proc/$server/fd" | wc -l)
    sessions=$(curl -s -m 5 "http://127.0.0.1:$PORT/metrics" | awk '/^chatgate_connections/ {s += $2} END {print s + 0}')
    echo "$(( $(date +%s) - start )),$rss,$fds,$sessions" >>"$out/samples.csv"
    sleep 60
  done
) &
sampler=$!

sources=127.0.0.20,127.0.0.21,127.0.0.22,127.0.0.23,127.0.0.24,127.0.0.25,127.0.0.26,127.0.0.27
taskset -c 1 ./target/release/chatgate-load --server "127.0.0.1:$PORT" --server-pid "$server" --label soak \
  fanout --rooms 500 --rate 10000 --warmup 5 --duration "$((SECONDS_TOTAL - 5))" >"$out/fanout.txt" 2>&1 &
fanout=$!
taskset -c 1 ./target/release/chatgate-load --server "127.0.0.1:$PORT" --server-pid "$server" --label soak \
  --eventid-base 5000 --source "$sources" churn --concurrency 8 --duration "$SECONDS_TOTAL" >"$out/churn.txt" 2>&1 &
churn=$!
wait "$fanout" "$churn"
sleep 65   # one more sample after the load stops: what is left behind
cat "$out/samples.csv"
cat "$out/fanout.txt" "$out/churn.txt"
echo "(raw: $out)"
