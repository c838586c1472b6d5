#!/usr/bin/env bash
# What storing every message costs: the same loads against chatgate with `--history on` and
# `--history off`, alternating, in one run, against a freshly seeded and migrated PostgreSQL.
# The gateway is pinned to core 0 and the load tool to core 1; PostgreSQL is not pinned (it is part
# of what history costs, and on this 2-core machine it takes its CPU from both). Loopback only.
#
#   benches/history.sh [rounds]      (default 2 rounds of: rate on, rate off, saturation on, off)
#
# Scenarios as in compare.sh: rate = 20,000 deliveries/s over 1,000 rooms; saturation = 100 rooms,
# 8 messages in flight per client. Prints a table with on/off ratios (medians over the rounds).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
. benches/bench-env.sh
PORT=7200
out=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true' EXIT

prepare_bench
./target/release/chatgate migrate --database-url "$URL" >/dev/null

start_server() {
  psql -q -h 127.0.0.1 -U postgres -c "TRUNCATE chatgate_message" "$DB" >/dev/null
  taskset -c 0 ./target/release/chatgate --listen "127.0.0.1:$PORT" --database-url "$URL" \
    --auth trust --workers 1 --max-connections 20000 --message-rate 0 --handshake-rate 0 \
    --history "$1" >"$out/$1.log" 2>&1 &
  server=$!
  wait_listening "$PORT" "$out/$1.log" "chatgate --history $1"
}

load() {
  taskset -c 1 ./target/release/chatgate-load --server "127.0.0.1:$PORT" --server-pid "$server" \
    --label "history-$1" "${@:2}" 2>>"$out/summary.txt" | grep '^RESULT ' | sed 's/^RESULT //' >>"$out/results.jsonl"
}

stored() {
  psql -tA -h 127.0.0.1 -U postgres -c "SELECT count(*) FROM chatgate_message" "$DB"
}

for round in $(seq 1 "$rounds"); do
  for scenario in rate saturation; do
    for history in on off; do
      start_server "$history"
      # shellcheck disable=SC2046 # the arguments are meant to split
      load "$history" $(fanout_args "$scenario")
      kill "$server"; wait "$server" 2>/dev/null || true
      echo "round $round $scenario history=$history: $(stored) messages stored" | tee -a "$out/summary.txt"
    done
  done
done

cat "$out/summary.txt"
python3 benches/ratio_table.py "$out/results.jsonl" history-on history-off "history on" "history off"
