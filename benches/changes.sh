#!/usr/bin/env bash
# What read receipts and reactions cost the fan-out: the same loads against chatgate with history
# on (PostgreSQL), once with plain chatting and once with every client also marking what it read
# (`--mark-read-ms 1000`: at most a mark-read per client per second) and reacting to one message
# in 100 it gets (`--react-every 100`), alternating, in one run. Gateway on core 0, load tool on
# core 1, PostgreSQL unpinned. Loopback only.
#
#   benches/changes.sh [rounds]      (default 3 rounds of: rate plain, rate changes, saturation ...)
#
# Scenarios as in compare.sh: rate = 20,000 deliveries/s over 1,000 rooms; saturation = 100 rooms,
# 8 messages in flight per client. Prints a table with changes/plain ratios (medians).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
. benches/bench-env.sh
PORT=7300
out=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true' EXIT

prepare_bench
./target/release/chatgate migrate --database-url "$URL" >/dev/null

start_server() {
  psql -q -h 127.0.0.1 -U postgres \
    -c "TRUNCATE chatgate_message, chatgate_read, chatgate_reaction" "$DB" >/dev/null
  taskset -c 0 ./target/release/chatgate --listen "127.0.0.1:$PORT" --database-url "$URL" \
    --auth trust --workers 1 --max-connections 20000 --message-rate 0 --handshake-rate 0 \
    --read-rate 0 --reaction-rate 0 >"$out/$1.log" 2>&1 &
  server=$!
  wait_listening "$PORT" "$out/$1.log" "chatgate ($1)"
}

load() {
  local extras=()
  [ "$1" = changes ] && extras=(--mark-read-ms 1000 --react-every 100)
  taskset -c 1 ./target/release/chatgate-load --server "127.0.0.1:$PORT" --server-pid "$server" \
    --label "$1" "${@:2}" "${extras[@]}" 2>>"$out/summary.txt" | grep '^RESULT ' | sed 's/^RESULT //' >>"$out/results.jsonl"
}

counts() {
  psql -tA -h 127.0.0.1 -U postgres -c "SELECT (SELECT count(*) FROM chatgate_message) || ' messages, ' ||
    (SELECT count(*) FROM chatgate_read) || ' read marks, ' || (SELECT count(*) FROM chatgate_reaction) || ' reactions'" "$DB"
}

for round in $(seq 1 "$rounds"); do
  for scenario in rate saturation; do
    for variant in plain changes; do
      start_server "$variant"
      case "$scenario" in
        rate) load "$variant" fanout --rooms 1000 --rate 20000 --warmup 3 --duration 10 ;;
        saturation) load "$variant" fanout --rooms 100 --rate 0 --inflight 8 --warmup 3 --duration 10 ;;
      esac
      kill "$server"; wait "$server" 2>/dev/null || true
      grep -i "warn\|error" "$out/$variant.log" | head -3 >>"$out/summary.txt" || true
      echo "round $round $scenario $variant: $(counts) stored" | tee -a "$out/summary.txt"
    done
  done
done

cat "$out/summary.txt"
grep -h -o '"marks_sent":[0-9]*,"reactions_sent":[0-9]*' "$out/results.jsonl" | sort | uniq -c | head -20
python3 benches/ratio_table.py "$out/results.jsonl" changes plain "with receipts and reactions" "plain"
