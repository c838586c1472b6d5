# Sourced by compare.sh and soak.sh: a freshly seeded benchmark database and release builds.
# Sets DB and URL.
DB=chatgate_bench
URL="postgres://postgres@127.0.0.1:5432/$DB"

prepare_bench() {
  pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
  psql -q -h 127.0.0.1 -U postgres -v events=10000 -f benches/seed.sql "$DB" >/dev/null 2>&1
  cargo build --release -q -p chatgate -p chatgate-load
}

# Waits until a server answers an Engine.IO handshake on 127.0.0.1:PORT (10 s at most); otherwise
# prints its log and exits.  wait_listening PORT LOG NAME
wait_listening() {
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$1/socket.io/?EIO=4&transport=polling" && return
    sleep 0.1
  done
  echo "$3 did not start"; cat "$2"; exit 1
}

# The load tool's arguments for the two message scenarios every script runs the same way:
# rate = 20,000 deliveries/s over 1,000 rooms; saturation = 100 rooms, 8 messages in flight per
# client.  fanout_args rate|saturation
fanout_args() {
  case "$1" in
    rate) echo "fanout --rooms 1000 --rate 20000 --warmup 3 --duration 10" ;;
    saturation) echo "fanout --rooms 100 --rate 0 --inflight 8 --warmup 3 --duration 10" ;;
  esac
}
