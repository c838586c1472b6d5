#!/usr/bin/env bash
# File sharing throughput and memory: parallel uploads to POST /files, then parallel downloads of
# them, against chatgate with its two kinds of store: a local directory, and an S3-compatible
# service (moto's server, the one the tests use; scripts/test installs it into target/pyenv).
# chatgate is pinned to core 0, the load tool to core 1; loopback only. Metadata in PostgreSQL (a
# freshly seeded benchmark database), as a user runs it.
#
#   benches/files.sh                 64 files of 4 MiB, 16 at a time
#   SIZE=1048576 COUNT=256 PARALLEL=32 benches/files.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/bench-env.sh
SIZE=${SIZE:-4194304} COUNT=${COUNT:-64} PARALLEL=${PARALLEL:-16}
PORT=7150 S3_PORT=7151
work=$(mktemp -d)
trap 'kill ${server:-} ${s3:-} 2>/dev/null || true; rm -rf "$work"' EXIT
prepare_bench
[ -x target/pyenv/bin/moto_server ] || { echo "moto_server missing: run scripts/test once"; exit 1; }

run() { # run LABEL STORE-FLAGS...
  taskset -c 0 ./target/release/chatgate --listen "127.0.0.1:$PORT" --database-url "$URL" --auth trust \
    --workers 1 --max-concurrent-uploads 256 --file-quota-bytes 1000000000000 "${@:2}" >"$work/$1.log" 2>&1 &
  server=$!
  wait_listening "$PORT" "$work/$1.log" "$1"
  taskset -c 1 ./target/release/chatgate-load --server "127.0.0.1:$PORT" --server-pid "$server" --label "$1" \
    files --size "$SIZE" --count "$COUNT" --parallel "$PARALLEL" 2>&1 | sed "s/^/$1: /"
  kill "$server"; wait "$server" 2>/dev/null || true
}

run dir --file-store "dir:$work/files"

target/pyenv/bin/moto_server -H 127.0.0.1 -p "$S3_PORT" >"$work/moto.log" 2>&1 &
s3=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" && break; sleep 0.1; done
curl -s -X PUT "http://127.0.0.1:$S3_PORT/bench" >/dev/null
run s3 --file-store s3://bench --s3-endpoint "http://127.0.0.1:$S3_PORT" \
  --s3-access-key-id bench --s3-secret-access-key bench
