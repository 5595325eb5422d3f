#!/usr/bin/env bash
# `make bench`: fio (ioengine=nbd, over a unix socket) against blockgate, nbdkit's file plugin
# and qemu-nbd, one after another in the same run, on files in the same directory:
# 4 KiB random read and write at queue depth 32, 1 MiB sequential read and write.
# Then a cached volume in the object-store emulator on loopback: write-then-drain (1 MiB
# sequential writes of the whole volume, then `volume flush --wait-upload`), and a cold
# sequential read of it by a second daemon that recovered it on an empty data directory.
# Last, memory at rest: a 1 TiB thin volume with a 4 KiB block in each of its 1,048,576 chunks,
# the daemon's RSS after a restart against the same volume empty, and the time to start.
#   run.sh BLOCKGATE_BINARY     (env: BENCH_RUNTIME seconds per job, default 15; BENCH_SIZE, default 1G)
set -euo pipefail
binary="$(readlink -f "${1:?usage: $0 BLOCKGATE_BINARY}")"
runtime="${BENCH_RUNTIME:-15}"
size="${BENCH_SIZE:-1G}"
work="$(mktemp -d "${BENCH_DIR:-$PWD}/.bench.XXXXXX")"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

wait_socket() { for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done; echo "bench: no socket $1" >&2; exit 1; }

# blockgate: one thin volume.
"$binary" serve --data-dir "$work/blockgate" --listen "" --log-level warning 2> "$work/blockgate.log" &
pids+=($!)
wait_socket "$work/blockgate/admin.sock"
"$binary" volume create bench --size "$size" --admin-socket "$work/blockgate/admin.sock" > /dev/null
# nbdkit and qemu-nbd: a file of the same size in the same directory.
truncate -s "$size" "$work/nbdkit.img" "$work/qemu.img"
nbdkit --foreground --unix "$work/nbdkit.sock" file "$work/nbdkit.img" 2> "$work/nbdkit.log" &
pids+=($!)
qemu-nbd --format=raw --persistent --shared=16 --discard=unmap --socket="$work/qemu.sock" "$work/qemu.img" 2> "$work/qemu.log" &
pids+=($!)
wait_socket "$work/nbdkit.sock"
wait_socket "$work/qemu.sock"

declare -A uris=(
    [blockgate]="nbd+unix:///bench?socket=$work/blockgate/nbd.sock"
    [nbdkit]="nbd+unix:///?socket=$work/nbdkit.sock"
    [qemu-nbd]="nbd+unix:///?socket=$work/qemu.sock"
)
servers=(blockgate nbdkit qemu-nbd)
jobs=("randread 4k 32" "randwrite 4k 32" "read 1M 8" "write 1M 8")

# Fill every image first, so that reads read data.
for server in "${servers[@]}"; do
    fio --name=fill --ioengine=nbd --uri="${uris[$server]}" --rw=write --bs=1M --iodepth=8 \
        --size="$size" --output=/dev/null
done

fio_run() {  # fio_run SERVER RW BS DEPTH -> prints "iops bandwidth_MiB_s"
    fio --name=bench --ioengine=nbd --uri="${uris[$1]}" --rw="$2" --bs="$3" --iodepth="$4" --size="$size" \
        --time_based --runtime="$runtime" --ramp_time=2 --output-format=json --output="$work/fio.json"
    python3 - "$work/fio.json" "$2" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
side = job["write" if "write" in sys.argv[2] else "read"]
print(f'{side["iops"]:.0f} {side["bw"] / 1024:.1f}')
PY
}

printf '%-18s' "job"
for server in "${servers[@]}"; do printf '%28s' "$server"; done
printf '%12s%12s\n' "vs nbdkit" "vs qemu-nbd"
for job in "${jobs[@]}"; do
    read -r rw bs depth <<< "$job"
    declare -A iops=() bandwidth=()
    for server in "${servers[@]}"; do
        read -r iops[$server] bandwidth[$server] < <(fio_run "$server" "$rw" "$bs" "$depth")
    done
    printf '%-18s' "$rw $bs QD$depth"
    for server in "${servers[@]}"; do printf '%28s' "${iops[$server]} IOPS ${bandwidth[$server]} MiB/s"; done
    ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
    printf '%12s%12s\n' "$(ratio "${iops[blockgate]}" "${iops[nbdkit]}")" "$(ratio "${iops[blockgate]}" "${iops[qemu-nbd]}")"
done

# Cached volumes: the emulator on a free loopback port, a cache a quarter of the volume.
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$binary" objstore serve --dir "$work/objects" --listen "127.0.0.1:$port" 2> "$work/objstore.log" &
pids+=($!)
cached_daemon() {  # cached_daemon DATA_DIR: starts a daemon on the emulator, its pid in $daemon
    "$binary" serve --data-dir "$1" --listen "" --log-level warning \
        --object-store "s3://bench?endpoint=http://127.0.0.1:$port" --cache-size 256M >> "$work/cached.log" 2>&1 &
    daemon=$!
    pids+=("$daemon")
    wait_socket "$1/admin.sock"
}
seconds_since() { python3 -c "import time; print(f'{time.time() - $1:.3f}')"; }
mib_per_s() { python3 -c "print(f'{$1 / 1048576 / $2:.1f}')"; }
bytes=$(python3 -c "import sys; u = {'K': 10, 'M': 20, 'G': 30, 'T': 40}; s = sys.argv[1]; print(int(s[:-1]) << u[s[-1]] if s[-1] in u else int(s))" "$size")

cached_daemon "$work/cached-1"
"$binary" volume create cached --size "$size" --kind cached --admin-socket "$work/cached-1/admin.sock" > /dev/null
start=$(python3 -c 'import time; print(time.time())')
fio --name=cached-write --ioengine=nbd --uri="nbd+unix:///cached?socket=$work/cached-1/nbd.sock" --rw=write \
    --bs=1M --iodepth=8 --size="$size" --end_fsync=1 --output=/dev/null
written=$(seconds_since "$start")
"$binary" volume flush cached --wait-upload --admin-socket "$work/cached-1/admin.sock" > /dev/null
drained=$(seconds_since "$start")
kill "$daemon"; wait "$daemon" 2>/dev/null || true

cached_daemon "$work/cached-2"
"$binary" volume recover cached --admin-socket "$work/cached-2/admin.sock" > /dev/null
start=$(python3 -c 'import time; print(time.time())')
fio --name=cached-read --ioengine=nbd --uri="nbd+unix:///cached?socket=$work/cached-2/nbd.sock" --rw=read \
    --bs=1M --iodepth=8 --size="$size" --output=/dev/null
read_seconds=$(seconds_since "$start")

echo
echo "cached volume ($size, object-store emulator on loopback, 256M cache):"
printf '  %-44s %8s MiB/s  (%ss)\n' "write 1M QD8 into the cache (acknowledged)" "$(mib_per_s "$bytes" "$written")" "$written"
printf '  %-44s %8s MiB/s  (%ss)\n' "write-then-drain (all uploaded)" "$(mib_per_s "$bytes" "$drained")" "$drained"
printf '  %-44s %8s MiB/s  (%ss)\n' "cold sequential read 1M QD8 (all downloaded)" "$(mib_per_s "$bytes" "$read_seconds")" "$read_seconds"

# Memory at rest: RSS of a restarted daemon serving a 1 TiB thin volume (1 MiB chunks) with a
# 4 KiB block in every chunk, against the same daemon serving the volume empty.
memory_daemon() {  # memory_daemon: starts a daemon on $work/memory, its pid in $daemon
    "$binary" serve --data-dir "$work/memory" --listen "" --log-level warning >> "$work/memory.log" 2>&1 &
    daemon=$!
    pids+=("$daemon")
    wait_socket "$work/memory/admin.sock"
}
restart_memory_daemon() {  # stops the memory daemon, starts it again; the seconds to READY in $ready
    kill "$daemon"; wait "$daemon" 2>/dev/null || true
    rm -f "$work/memory/admin.sock"
    start=$(python3 -c 'import time; print(time.time())')
    memory_daemon
    ready=$(seconds_since "$start")
    sleep 2
}
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
memory_daemon
"$binary" volume create sparse --size 1T --chunk-size 1M --admin-socket "$work/memory/admin.sock" > /dev/null
restart_memory_daemon
empty_rss=$(rss_kib "$daemon")
fio --name=allocate --ioengine=nbd --uri="nbd+unix:///sparse?socket=$work/memory/nbd.sock" --rw=write:1020k \
    --bs=4k --iodepth=32 --size=1T --io_size=4G --end_fsync=1 --output=/dev/null
restart_memory_daemon
full_rss=$(rss_kib "$daemon")
chunks=$("$binary" volume info sparse --json --admin-socket "$work/memory/admin.sock" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["allocated_chunks"])')

echo
echo "memory at rest (1 TiB thin volume, 1 MiB chunks, a 4 KiB block in each, after a restart):"
printf '  %-44s %8s\n' "allocated chunks" "$chunks"
printf '  %-44s %8s MiB (empty volume: %s MiB)\n' "RSS" "$((full_rss / 1024))" "$((empty_rss / 1024))"
printf '  %-44s %8s bytes\n' "RSS per allocated chunk" "$(python3 -c "print(round(($full_rss - $empty_rss) * 1024 / max(1, $chunks)))")"
printf '  %-44s %8s s\n' "start to READY" "$ready"
