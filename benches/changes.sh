#!/usr/bin/env bash
# What read receipts, reactions, edits and deletions cost the fan-out, in one run, alternating:
#   baseline  the gateway as it was before these features (commit $BASELINE, built here once),
#             clients only chatting;
#   plain     this gateway, clients only chatting;
#   light     this gateway, each client also marking what it read every 5 s and reacting every 30 s;
#   heavy     the same every 1 s and every 5 s.
# History on (PostgreSQL, freshly seeded and migrated), gateway on core 0, load tool on core 1,
# PostgreSQL unpinned. Loopback only.
#
#   benches/changes.sh [rounds]      (default 3 rounds of every variant in both scenarios)
#
# Scenarios as in compare.sh: rate = 20,000 deliveries/s over 1,000 rooms; saturation = 100 rooms,
# 8 messages in flight per client. Prints tables of ratios against `baseline` and `plain` (medians).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
BASELINE=${BASELINE:-f0c4ac0}
. benches/bench-env.sh
PORT=7300
out=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true' EXIT

baseline_bin="target/baseline/$BASELINE/release/chatgate"
if [ ! -x "$baseline_bin" ]; then
  src="target/baseline/$BASELINE/src"
  rm -rf "$src"; mkdir -p "$src"
  git archive "$BASELINE" | tar -x -C "$src"
  (cd "$src" && cargo build --release -q -p chatgate --target-dir "../")
fi

prepare_bench
./target/release/chatgate migrate --database-url "$URL" >/dev/null

start_server() {
  local bin=./target/release/chatgate
  [ "$1" = baseline ] && bin=$baseline_bin
  psql -q -h 127.0.0.1 -U postgres \
    -c "TRUNCATE chatgate_message, chatgate_read, chatgate_reaction" "$DB" >/dev/null
  local limits=(--read-rate 0 --reaction-rate 0)
  [ "$1" = baseline ] && limits=()
  taskset -c 0 "$bin" --listen "127.0.0.1:$PORT" --database-url "$URL" \
    --auth trust --workers 1 --max-connections 20000 --message-rate 0 --handshake-rate 0 \
    "${limits[@]}" >"$out/$1.log" 2>&1 &
  server=$!
  wait_listening "$PORT" "$out/$1.log" "chatgate ($1)"
}

load() {
  local extras=()
  case "$1" in
    light) extras=(--mark-read-ms 5000 --react-ms 30000) ;;
    heavy) extras=(--mark-read-ms 1000 --react-ms 5000) ;;
  esac
  taskset -c 1 ./target/release/chatgate-load --server "127.0.0.1:$PORT" --server-pid "$server" \
    --label "$1" "${@:2}" "${extras[@]}" 2>>"$out/summary.txt" | grep '^RESULT ' | sed 's/^RESULT //' >>"$out/results.jsonl"
}

counts() {
  psql -tA -h 127.0.0.1 -U postgres -c "SELECT (SELECT count(*) FROM chatgate_message) || ' messages, ' ||
    (SELECT count(*) FROM chatgate_read) || ' read marks, ' || (SELECT count(*) FROM chatgate_reaction) || ' reactions'" "$DB"
}

for round in $(seq 1 "$rounds"); do
  for scenario in rate saturation; do
    for variant in baseline plain light heavy; do
      start_server "$variant"
      # shellcheck disable=SC2046 # the arguments are meant to split
      load "$variant" $(fanout_args "$scenario")
      kill "$server"; wait "$server" 2>/dev/null || true
      grep -i " warn \| error " "$out/$variant.log" | head -3 >>"$out/summary.txt" || true
      echo "round $round $scenario $variant: $(counts) stored" | tee -a "$out/summary.txt"
    done
  done
done

cat "$out/summary.txt"
echo "results: $out/results.jsonl"
for variant in plain light heavy; do
  python3 benches/ratio_table.py "$out/results.jsonl" "$variant" baseline "$variant" "baseline (before)"
done
python3 benches/ratio_table.py "$out/results.jsonl" heavy plain "heavy" "plain"
