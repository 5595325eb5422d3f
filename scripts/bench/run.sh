#!/usr/bin/env bash
# `make bench`: fio (ioengine=nbd, over a unix socket) against blockgate, nbdkit's file plugin
# and qemu-nbd, one after another in the same run, on files in the same directory:
# 4 KiB random read and write at queue depth 32, 1 MiB sequential read and write.
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
