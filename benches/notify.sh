#!/usr/bin/env bash
# How many notifications per second the outbox delivers: N chats each get one message from the
# tutor (written straight into a freshly seeded benchmark database, with its outbox row due now),
# then chatgate starts with offline notifications on and a webhook to chatgate-hooksink (which
# counts and answers 204); the time until the sink has all N is the figure. chatgate is pinned to
# core 0, the sink to core 1; PostgreSQL is not pinned. Loopback only.
#
#   benches/notify.sh            5,000 notifications, one node
#   N=10000 NODES=2 benches/notify.sh   (N at most 10,000: the chats benches/seed.sql makes)
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/bench-env.sh
N=${N:-5000} NODES=${NODES:-1}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
prepare_bench
./target/release/chatgate migrate --database-url "$URL" >/dev/null
psql -q -h 127.0.0.1 -U postgres "$DB" <<SQL
INSERT INTO chatgate_message (id, eventid, userid, role, sender_name, message, created_at)
  SELECT e, e, 2 * e - 1, 'tutor', 'Tutor ' || e, 'question ' || e, now() FROM generate_series(1, $N) e;
INSERT INTO chatgate_notification (eventid, recipient_role, sender_userid, sender_name, count,
    first_message_id, last_message_id, preview, created_at, next_at)
  SELECT e, 'tutee', 2 * e - 1, 'Tutor ' || e, 1, e, e, 'question ' || e, now(), now()
  FROM generate_series(1, $N) e;
SQL
taskset -c 1 ./target/release/chatgate-hooksink --listen 127.0.0.1:7192 >"$work/sink.log" &
pids+=($!)
started=$(date +%s.%N)
for n in $(seq 0 $((NODES - 1))); do
  taskset -c $((n % 2)) ./target/release/chatgate --listen "127.0.0.1:$((7160 + n))" --database-url "$URL" \
    --auth trust --node-id "$n" --workers 1 --notify-webhook-url http://127.0.0.1:7192/hook \
    --notify-webhook-secret bench --notify-poll-ms 100 >"$work/node$n.log" 2>&1 &
  pids+=($!)
done
# At most 10 minutes.
for _ in $(seq 1 6000); do
  last=$(tail -n1 "$work/sink.log" 2>/dev/null | awk '{print $2}')
  [ "${last:-0}" -ge "$N" ] && break
  sleep 0.1
done
ended=$(date +%s.%N)
cpu=0
for p in "${pids[@]:1}"; do cpu=$((cpu + $(awk '{print $14 + $15}' /proc/"$p"/stat))); done
python3 - "$N" "$started" "$ended" "$cpu" "$NODES" "${last:-0}" <<'PY'
import sys
n, t0, t1, cpu, nodes, got = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
secs = t1 - t0
print(f"notify: {got} of {n} notifications delivered by {nodes} node(s) in {secs:.2f} s "
      f"(including start-up): {got / secs:,.0f}/s; chatgate CPU {cpu / 100:.2f} s, {cpu * 10000 / max(got, 1):.0f} µs each")
PY
psql -q -h 127.0.0.1 -U postgres "$DB" -t -c "SELECT 'left in the outbox: ' || count(*) FROM chatgate_notification"
