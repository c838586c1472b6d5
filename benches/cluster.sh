#!/usr/bin/env bash
# What the Redis hop costs: the same fan-out load in one run against
#   single   one chatgate node, no cluster;
#   cluster1 one node with --cluster (every broadcast published, nobody else to receive it);
#   cluster2 two nodes of one cluster, the tutor of each room on node A and the tutee on node B,
#            so every message crosses Redis.
# Nodes are pinned to core 0 (both of them in cluster2, so the CPU figures compare), the load tool
# to core 1; Redis and PostgreSQL are not pinned. History is off (its cost is measured apart, by
# benches/history.sh). Loopback only.
#
#   benches/cluster.sh [rate|saturation ...]     (default: rate saturation)
set -euo pipefail
cd "$(dirname "$0")/.."
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(rate saturation)
. benches/bench-env.sh
out=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; redis-cli -p 6390 shutdown nosave >/dev/null 2>&1 || true' EXIT

prepare_bench
redis-server --port 6390 --bind 127.0.0.1 --save "" --appendonly no --daemonize yes >/dev/null
for _ in $(seq 1 50); do redis-cli -p 6390 ping >/dev/null 2>&1 && break; sleep 0.1; done

start_node() { # port node-id [flags...]
  local port=$1 id=$2
  shift 2
  taskset -c 0 ./target/release/chatgate --listen "127.0.0.1:$port" --database-url "$URL" --auth trust \
    --workers 1 --max-connections 20000 --message-rate 0 --handshake-rate 0 --history off \
    --node-id "$id" "$@" >"$out/node-$port.log" 2>&1 &
  pids+=($!)
  wait_listening "$port" "$out/node-$port.log" "node on $port"
}

load() { # label pids [load-tool args...]
  local label=$1 server_pids=$2
  shift 2
  taskset -c 1 ./target/release/chatgate-load --server 127.0.0.1:7301 --server-pid "$server_pids" \
    --label "$label" "$@" 2>>"$out/summary.txt" | grep '^RESULT ' | sed 's/^RESULT //' >>"$out/results.jsonl"
}

stop_nodes() {
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
}

for scenario in "${scenarios[@]}"; do
  case "$scenario" in
    rate) args=(fanout --rooms 1000 --rate 20000 --warmup 3 --duration 10) ;;
    saturation) args=(fanout --rooms 100 --rate 0 --inflight 8 --warmup 3 --duration 10) ;;
  esac
  start_node 7301 0
  load single "${pids[0]}" "${args[@]}"
  stop_nodes
  start_node 7301 0 --cluster redis://127.0.0.1:6390 --cluster-prefix bench
  load cluster1 "${pids[0]}" "${args[@]}"
  stop_nodes
  start_node 7301 0 --cluster redis://127.0.0.1:6390 --cluster-prefix bench
  start_node 7302 1 --cluster redis://127.0.0.1:6390 --cluster-prefix bench
  load cluster2 "${pids[0]},${pids[1]}" --peer 127.0.0.1:7302 "${args[@]}"
  # Both sides' own count: what each node published, received and dropped (by reason).
  for port in 7301 7302; do
    echo "$scenario, node on $port:" >>"$out/cluster-metrics.txt"
    curl -s "http://127.0.0.1:$port/metrics" | grep -E '^chatgate_cluster_(broadcasts|dropped)' >>"$out/cluster-metrics.txt"
  done
  stop_nodes
done

cat "$out/summary.txt"
cat "$out/cluster-metrics.txt"
python3 - "$out/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
groups = {}
for r in rows:
    groups.setdefault((r.get("rate"), r.get("rooms")), {})[r["label"]] = r
fields = [("deliveries_per_sec", "deliveries/s", "{:,.0f}"), ("server_cpu_us_per_delivery", "nodes' µs/delivery", "{:.2f}"),
          ("p50_us", "p50 µs", "{:,.0f}"), ("p99_us", "p99 µs", "{:,.0f}"), ("lost", "lost", "{}")]
print("\n| load | metric | single node | one node, cluster on | two nodes | two nodes / single |\n| --- | --- | --- | --- | --- | --- |")
for (rate, rooms), by in groups.items():
    name = f"fanout rate {rate or 'max'}, {rooms} rooms"
    for field, label, fmt in fields:
        vals = [by.get(k, {}).get(field) for k in ("single", "cluster1", "cluster2")]
        show = lambda v: "?" if v is None else fmt.format(v)
        ratio = f"{vals[2] / vals[0]:.2f}" if vals[0] and vals[2] is not None else "-"
        print(f"| {name} | {label} | " + " | ".join(show(v) for v in vals) + f" | {ratio} |")
PY
