#!/usr/bin/env bash
# Load soak: 64 concurrent NBD connections of mixed random I/O (fio, one connection per job)
# for MINUTES against the release daemon; fails on any I/O error, or when the daemon's resident
# memory at the end is more than 10 % above what it was after the warm-up minute.
#   load.sh BLOCKGATE_BINARY MINUTES
set -euo pipefail
binary="$(readlink -f "${1:?usage: $0 BLOCKGATE_BINARY MINUTES}")"
minutes="${2:?usage: $0 BLOCKGATE_BINARY MINUTES}"
work="$(mktemp -d "${SOAK_DIR:-$PWD}/.soak-load.XXXXXX")"
daemon=""
cleanup() { [ -n "$daemon" ] && kill "$daemon" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

"$binary" serve --data-dir "$work/data" --listen "" --log-level warning 2> "$work/daemon.log" &
daemon=$!
for _ in $(seq 200); do [ -S "$work/data/admin.sock" ] && break; sleep 0.05; done
"$binary" volume create load --size 4G --admin-socket "$work/data/admin.sock" > /dev/null
uri="nbd+unix:///load?socket=$work/data/nbd.sock"
warmup=60
total=$((minutes * 60))
[ "$total" -gt "$warmup" ] || { echo "load: MINUTES must be at least 2 (one is warm-up)" >&2; exit 2; }
fio --name=load --ioengine=nbd --uri="$uri" --rw=randrw --rwmixread=60 --bsrange=4k-256k --iodepth=8 \
    --numjobs=64 --size=4G --time_based --runtime="$total" --group_reporting --output-format=json \
    --output="$work/fio.json" &
fio_pid=$!
sleep "$warmup"
after_warmup=$(rss_kib "$daemon")
wait "$fio_pid" || { echo "FAIL fio reported errors"; exit 1; }
at_end=$(rss_kib "$daemon")
python3 - "$work/fio.json" "$after_warmup" "$at_end" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
warm, end = int(sys.argv[2]), int(sys.argv[3])
errors = job["error"]
print(f"load: 64 connections, {job['read']['iops']:.0f} read IOPS, {job['write']['iops']:.0f} write IOPS, "
      f"errors {errors}; RSS {warm} KiB after warm-up, {end} KiB at the end ({(end - warm) * 100 / warm:+.1f} %)")
sys.exit(1 if errors or end > warm * 1.10 else 0)
PY
