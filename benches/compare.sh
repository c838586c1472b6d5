#!/usr/bin/env bash
# Runs the same load against chatgate and its yardsticks, one after the other, each server pinned to
# core 0 with the load tool on core 1, against a freshly seeded PostgreSQL database; prints a table
# with ratios. Loopback only. The servers (SERVERS, default all four):
#   chatgate          --history off, like the others, which store nothing;
#   chatgate-history  the default a user runs (history on PostgreSQL, connection state recovery on);
#   chatgate-norecovery  chatgate-history with --recovery-window-secs 0 (what recovery costs);
#   node              the Node.js socket.io 4.8 reference of the same chat (benches/node-ref);
#   chatgate-notify   chatgate-history with offline notifications on (a webhook to
#                     chatgate-hooksink; due after the run, so what is measured is the outbox
#                     the history writer fills with every batch);
#   floor             chatgate-floor (load/src/bin/floor.rs): the least a server on chatgate's stack
#                     can do, no database, no checks: the floor TARGETS.md measures against;
#   before            another chatgate binary (CHATGATE_BEFORE=path), run like `chatgate`: a
#                     before/after comparison in the same run.
#
#   benches/compare.sh [rate] [saturation] [idle] [churn]      (default: all four)
#   SERVERS="chatgate floor" benches/compare.sh saturation
#
# Scenarios (TARGETS.md): rate = 20,000 deliveries/s over 1,000 rooms; saturation = 100 rooms, 8
# messages in flight per client; idle = 19,800 joined connections; churn = 64 workers connecting,
# joining, sending, receiving, disconnecting.
set -euo pipefail
cd "$(dirname "$0")/.."
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(rate saturation idle churn)
read -r -a servers <<<"${SERVERS:-chatgate chatgate-history node floor}"
. benches/bench-env.sh
PORT=7100
out=$(mktemp -d)
trap 'kill "${server:-}" ${sink:-} 2>/dev/null || true' EXIT

prepare_bench
(cd benches/node-ref && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

start_server() {
  case "$1" in
    chatgate) taskset -c 0 ./target/release/chatgate --listen "127.0.0.1:$PORT" --database-url "$URL" \
                --auth trust --workers 1 --max-connections 20000 --message-rate 0 --handshake-rate 0 --history off >"$out/$1.log" 2>&1 & ;;
    chatgate-history) taskset -c 0 ./target/release/chatgate --listen "127.0.0.1:$PORT" --database-url "$URL" \
                --auth trust --workers 1 --max-connections 20000 --message-rate 0 --handshake-rate 0 >"$out/$1.log" 2>&1 & ;;
    chatgate-norecovery) taskset -c 0 ./target/release/chatgate --listen "127.0.0.1:$PORT" --database-url "$URL" \
                --auth trust --workers 1 --max-connections 20000 --message-rate 0 --handshake-rate 0 \
                --recovery-window-secs 0 >"$out/$1.log" 2>&1 & ;;
    chatgate-notify)
      [ -n "${sink:-}" ] || { ./target/release/chatgate-hooksink --listen 127.0.0.1:7191 >"$out/sink.log" & sink=$!; }
      taskset -c 0 ./target/release/chatgate --listen "127.0.0.1:$PORT" --database-url "$URL" \
                --auth trust --workers 1 --max-connections 20000 --message-rate 0 --handshake-rate 0 \
                --notify-webhook-url http://127.0.0.1:7191/hook --notify-webhook-secret bench \
                --notify-delay-secs 600 >"$out/$1.log" 2>&1 & ;;
    before) taskset -c 0 "$CHATGATE_BEFORE" --listen "127.0.0.1:$PORT" --database-url "$URL" \
                --auth trust --workers 1 --max-connections 20000 --message-rate 0 --handshake-rate 0 --history off >"$out/$1.log" 2>&1 & ;;
    floor) taskset -c 0 ./target/release/chatgate-floor --listen "127.0.0.1:$PORT" >"$out/$1.log" 2>&1 & ;;
    node) taskset -c 0 node benches/node-ref/server.js --port "$PORT" --database-url "$URL" >"$out/$1.log" 2>&1 & ;;
  esac
  server=$!
  if [ "$1" = floor ]; then
    # The floor speaks WebSocket only: wait for its port instead of a polling handshake.
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return; sleep 0.1; done
    echo "floor did not start"; cat "$out/$1.log"; exit 1
  fi
  wait_listening "$PORT" "$out/$1.log" "$1"
}

load() {
  # chatgate sends the history after every join: a join is done when it has arrived.
  local history=()
  case "$1" in chatgate*|before) history=(--await-history) ;; esac
  taskset -c 1 ./target/release/chatgate-load --server "127.0.0.1:$PORT" --server-pid "$server" --label "$1" "${history[@]}" "${@:2}" \
    2>>"$out/summary.txt" | grep '^RESULT ' | sed 's/^RESULT //' >>"$out/results.jsonl"
}

for scenario in "${scenarios[@]}"; do
  i=0
  for name in "${servers[@]}"; do
    start_server "$name"
    # Each server connects from addresses of its own: the ports another's run left in TIME_WAIT
    # would slow its connects down.
    net=127.0.$i
    i=$((i + 1))
    case "$scenario" in
      # shellcheck disable=SC2046 # the arguments are meant to split
      rate|saturation) load "$name" $(fanout_args "$scenario") ;;
      idle) load "$name" --source "$net.2,$net.3" idle --connections 19800 --concurrency 256 --hold 5 ;;
      churn) load "$name" --source "$net.10,$net.11,$net.12,$net.13,$net.14,$net.15" \
               churn --concurrency 64 --duration 10 ;;
    esac
    kill "$server"; wait "$server" 2>/dev/null || true
  done
done

cat "$out/summary.txt"
python3 - "$out/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def key(r):
    return (r["scenario"], r.get("rate"), r.get("rooms"))
groups = {}
for r in rows:
    groups.setdefault(key(r), {})[r["label"]] = r
metrics = {
    "fanout": [("deliveries_per_sec", "deliveries/s", "{:,.0f}"), ("server_cpu_us_per_delivery", "server µs/delivery", "{:.2f}"),
               ("p50_us", "p50 µs", "{:,.0f}"), ("p99_us", "p99 µs", "{:,.0f}"), ("lost", "lost", "{}"),
               ("tool_core_share", "load tool core", "{:.0%}")],
    "idle": [("rss_per_connection_kib", "RSS KiB/connection", "{:.2f}"), ("joins_per_sec", "joins/s", "{:,.0f}")],
    "churn": [("sessions_per_sec", "sessions/s", "{:,.0f}"), ("server_cpu_ms_per_session", "server ms/session", "{:.3f}")],
}
servers = [s for s in ["before", "chatgate", "chatgate-history", "chatgate-norecovery", "chatgate-notify", "node", "floor"] if any(s in by for by in groups.values())]
def ratio(a, b):
    return f"{a / b:.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "-"
print("\n| scenario | metric | " + " | ".join(servers) + " | chatgate / node | chatgate / floor |")
print("| --- | --- |" + " --- |" * (len(servers) + 2))
for k, by in groups.items():
    name = k[0] if k[0] != "fanout" else ("fanout rate %s, %s rooms" % (k[1] or "max", k[2]))
    for field, label, fmt in metrics[k[0]]:
        vals = {s: by.get(s, {}).get(field) for s in servers}
        show = lambda v: "?" if v is None else fmt.format(v)
        cells = " | ".join(show(vals[s]) for s in servers)
        print(f"| {name} | {label} | {cells} | {ratio(vals.get('chatgate'), vals.get('node'))} | {ratio(vals.get('chatgate'), vals.get('floor'))} |")
PY
echo "(raw results: $out)"
