#!/usr/bin/env bash
# A soak run (not part of CI): everything a production node runs, for a long time, while the
# nodes' memory and open file descriptors are sampled. Loopback only, bounded in time.
#
#   benches/soak.sh [SECONDS]        (default 1800)
#
# Two chatgate nodes in cluster mode (a Redis of the script's own on port 6391), message history
# on PostgreSQL, both pinned to core 0. On core 1, two load processes at once:
#   fanout  500 rooms at a fixed 5,000 deliveries/s, the tutor of every room on node A and the tutee
#           on node B (every message crosses Redis and is checked for loss and latency); each
#           client marks what it read every 2 s, reacts every 5 s and edits its own newest message
#           every 10 s;
#   churn   4 workers on other rooms of node B (connect, join against PostgreSQL, send, receive,
#           disconnect, over and over).
# At the end: both nodes' cluster counters, then SIGTERM (which flushes history), then every
# message the load sent is looked for in chatgate_message.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${1:-1800}
. benches/bench-env.sh
A=7200
B=7201
REDIS_PORT=6391
out=$(mktemp -d)
trap 'kill "${node_a:-}" "${node_b:-}" "${sampler:-}" 2>/dev/null || true; redis-cli -p $REDIS_PORT shutdown nosave >/dev/null 2>&1 || true' EXIT

prepare_bench
redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no --daemonize yes >/dev/null
for _ in $(seq 1 50); do redis-cli -p $REDIS_PORT ping >/dev/null 2>&1 && break; sleep 0.1; done

start_node() { # port node-id
  taskset -c 0 ./target/release/chatgate --listen "127.0.0.1:$1" --database-url "$URL" --auth trust \
    --workers 1 --message-rate 0 --handshake-rate 0 --read-rate 0 --reaction-rate 0 \
    --cluster "redis://127.0.0.1:$REDIS_PORT" --cluster-prefix soak --node-id "$2" \
    >"$out/node-$1.log" 2>&1 &
}
start_node $A 0
node_a=$!
wait_listening $A "$out/node-$A.log" "node A"
start_node $B 1
node_b=$!
wait_listening $B "$out/node-$B.log" "node B"

sample() { # pid port
  local rss fds sessions
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$1/status")
  fds=$(ls "/proc/$1/fd" | wc -l)
  sessions=$(curl -s -m 5 "http://127.0.0.1:$2/metrics" | awk '/^chatgate_connections/ {s += $2} END {print s + 0}')
  echo "$rss,$fds,$sessions"
}
echo "elapsed_s,a_rss_kib,a_fds,a_sessions,b_rss_kib,b_fds,b_sessions" >"$out/samples.csv"
(
  start=$(date +%s)
  while kill -0 "$node_a" 2>/dev/null && kill -0 "$node_b" 2>/dev/null; do
    echo "$(( $(date +%s) - start )),$(sample "$node_a" $A),$(sample "$node_b" $B)" >>"$out/samples.csv"
    sleep 60
  done
) &
sampler=$!

sources=127.0.0.20,127.0.0.21,127.0.0.22,127.0.0.23,127.0.0.24,127.0.0.25,127.0.0.26,127.0.0.27
taskset -c 1 ./target/release/chatgate-load --server "127.0.0.1:$A" --peer "127.0.0.1:$B" \
  --server-pid "$node_a,$node_b" --label soak \
  fanout --rooms 500 --rate 5000 --warmup 5 --duration "$((SECONDS_TOTAL - 5))" \
  --mark-read-ms 2000 --react-ms 5000 --edit-ms 10000 >"$out/fanout.txt" 2>&1 &
fanout=$!
taskset -c 1 ./target/release/chatgate-load --server "127.0.0.1:$B" --server-pid "$node_b" --label soak \
  --eventid-base 5000 --source "$sources" churn --concurrency 4 --duration "$SECONDS_TOTAL" >"$out/churn.txt" 2>&1 &
churn=$!
wait "$fanout" "$churn"
sleep 65   # one more sample after the load stops: what is left behind
for port in $A $B; do
  echo "node on $port:" >>"$out/cluster.txt"
  curl -s "http://127.0.0.1:$port/metrics" | grep -E '^chatgate_cluster_(broadcasts|dropped)' >>"$out/cluster.txt"
done
kill -TERM "$node_a" "$node_b"
wait "$node_a" "$node_b" || true
kill "$sampler" 2>/dev/null || true

cat "$out/samples.csv"
cat "$out/fanout.txt" "$out/churn.txt" "$out/cluster.txt"
sent=$(grep -o '"sent_total":[0-9]*' "$out/fanout.txt" | cut -d: -f2)
stored=$(psql -tA -h 127.0.0.1 -U postgres -c "SELECT count(*) FROM chatgate_message WHERE eventid < 5000" "$DB")
edited=$(psql -tA -h 127.0.0.1 -U postgres -c "SELECT count(*) FROM chatgate_message WHERE edited_at IS NOT NULL" "$DB")
reactions=$(psql -tA -h 127.0.0.1 -U postgres -c "SELECT count(*) FROM chatgate_reaction" "$DB")
marks=$(psql -tA -h 127.0.0.1 -U postgres -c "SELECT count(*) FROM chatgate_read" "$DB")
echo "fanout messages sent: $sent, stored: $stored; edited messages: $edited; reactions: $reactions; read marks: $marks"
grep -iE 'error|panic' "$out/node-$A.log" "$out/node-$B.log" | head -20 || true
echo "(raw: $out)"
