#!/usr/bin/env bash
# `make bench`: fio (ioengine=nbd, over a unix socket) against blockgate (a thin volume, and a
# cached volume whose cache holds it all), nbdkit's file plugin and qemu-nbd, taking turns in
# rounds in the same run, each on a quiet machine (no write-back or upload of an earlier job
# under way), on files in the same directory: 4 KiB random read and write at queue depth 32,
# 1 MiB sequential read and write; the median of the rounds (a ratio marked * when two servers'
# rounds overlap), each server's processor time per I/O, and fio's own share of a core.
# Then cached volumes cold, in the object-store emulator on loopback, against Debian's s3backer
# on the same emulator: write-then-drain, cold sequential read and cold 4 KiB random read; and the
# emulator's own ceiling, measured by plain PUTs and GETs of blockgate's S3 client
# (`blockgate objstore bench`: no object format, cache or NBD). Then the same cold drain and
# read for each object format (compressed, encrypted, both) on random data and on a Linux source
# tar.
# Last, memory at rest: a 1 TiB thin volume with a 4 KiB block in each of its 1,048,576 chunks,
# the daemon's RSS after a restart against the same volume empty, and the time to start.
#   run.sh BLOCKGATE_BINARY     (env: BENCH_RUNTIME seconds per job, default 15, split into
#                                BENCH_ROUNDS rounds, default 3; BENCH_SIZE, default 1G;
#                                BENCH_MEMORY=0 leaves out the memory section, which takes minutes;
#                                BENCH_SECTIONS, default "warm cold formats memory", runs only those)
set -euo pipefail
binary="$(readlink -f "${1:?usage: $0 BLOCKGATE_BINARY}")"
runtime="${BENCH_RUNTIME:-15}"
size="${BENCH_SIZE:-1G}"
work="$(mktemp -d "${BENCH_DIR:-$PWD}/.bench.XXXXXX")"
pids=()
cleanup() {
    mountpoint -q "$work/s3backer" 2>/dev/null && umount "$work/s3backer"
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

wait_socket() { for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done; echo "bench: no socket $1" >&2; exit 1; }
# Clock readings by date(1), not an interpreter: python3 takes ~90 ms to start here, which would
# land inside the intervals measured.
now() { date +%s.%N; }
seconds_since() { local end; end=$(now); seconds_between "$1" "$end"; }
seconds_between() { python3 -c "print(f'{$2 - $1:.3f}')"; }
mib_per_s() { python3 -c "print(f'{$1 / 1048576 / $2:.1f}')"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
# rounds_ratio "A_ROUNDS" "B_ROUNDS": the ratio of the medians, marked * when the two sets of
# rounds overlap (the slowest of one is no faster than the fastest of the other: no difference shown).
rounds_ratio() {
    python3 -c 'import statistics, sys
a, b = ([float(x) for x in arg.split()] for arg in sys.argv[1:])
print(f"{statistics.median(a) / statistics.median(b):.2f}x" + ("*" if min(a) <= max(b) and min(b) <= max(a) else " "))' "$1" "$2"
}
bytes=$(python3 -c "import sys; u = {'K': 10, 'M': 20, 'G': 30, 'T': 40}; s = sys.argv[1]; print(int(s[:-1]) << u[s[-1]] if s[-1] in u else int(s))" "$size")

# The object-store emulator on a free loopback port, for the cached volumes.
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$binary" objstore serve --dir "$work/objects" --listen "127.0.0.1:$port" 2> "$work/objstore.log" &
pids+=($!)
emulator=$!
cached_daemon() {  # cached_daemon DATA_DIR [CACHE_SIZE UPLOAD_BUFFER [KEY_FILE]]: a daemon on the emulator, its pid in $daemon
    mkdir -p "$1"
    printf 'cache:\n  size: %s\n  upload_buffer: %s\n' "${2:-256M}" "${3:-256M}" > "$1.yaml"
    [ -z "${4:-}" ] || printf 'objects:\n  key_file: %s\n' "$4" >> "$1.yaml"
    "$binary" serve --config "$1.yaml" --data-dir "$1" --listen "" --log-level warning \
        --object-store "s3://bench?endpoint=http://127.0.0.1:$port" >> "$work/cached.log" 2>&1 &
    daemon=$!
    pids+=("$daemon")
    wait_socket "$1/admin.sock"
}
stop_daemon() { kill "$daemon"; wait "$daemon" 2>/dev/null || true; }

fio_timed() {  # fio_timed RW BS DEPTH TARGET_ARGS... -> prints "iops bandwidth_MiB_s client_core_share" of a timed job
    local rw="$1" bs="$2" depth="$3"; shift 3
    fio --name=bench "$@" --rw="$rw" --bs="$bs" --iodepth="$depth" --size="$size" \
        --time_based --runtime="${job_runtime:-$runtime}" --ramp_time=2 --output-format=json --output="$work/fio.json"
    python3 - "$work/fio.json" "$rw" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
side = job["write" if "write" in sys.argv[2] else "read"]
# fio's own processor time as a share of one core (it runs one thread per job).
print(f'{side["iops"]:.0f} {side["bw"] / 1024:.1f} {(job["usr_cpu"] + job["sys_cpu"]) / 100:.2f}')
PY
}
fio_pass() {  # fio_pass RW TARGET_ARGS...: one 1 MiB QD8 pass over the whole size (a write ends with an fsync)
    local rw="$1" fsync=0; shift
    [ "$rw" = write ] && fsync=1
    fio --name=pass "$@" --rw="$rw" --bs=1M --iodepth=8 --size="$size" --end_fsync="$fsync" \
        --output-format=json --output="$work/pass.json"
}
# A pass is timed from its first I/O, not from fio's start: fio spends about 0.3 s setting up
# before it sends anything (as much with its null engine), a cost of the client that would
# otherwise count against every server, and the more the faster it is.
pass_started() {  # pass_started: when the last pass began its I/O (seconds since the epoch)
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print((d["timestamp_ms"] - d["jobs"][0]["job_runtime"]) / 1000)' "$work/pass.json"
}
pass_mib_per_s() {  # pass_mib_per_s: the last pass's bytes over its time from first I/O to last (with its fsync)
    python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
mib = (j["read"]["io_bytes"] + j["write"]["io_bytes"]) / 1048576
print("%.1f" % (mib / j["job_runtime"] * 1000))' "$work/pass.json"
}

section() { [[ " ${BENCH_SECTIONS:-warm cold formats memory} " == *" $1 "* ]]; }  # section NAME: whether it runs
rounds="${BENCH_ROUNDS:-3}"
median() { python3 -c 'import statistics, sys; print(f"{statistics.median(map(float, sys.argv[1:])):.1f}")' "$@"; }
median2() { python3 -c 'import statistics, sys; print(f"{statistics.median(map(float, sys.argv[1:])):.2f}")' "$@"; }  # median2: to two decimals
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # cpu_ticks PID: its processor time so far
ticks_per_second=$(getconf CLK_TCK)
per_gib() { python3 -c "print(f'{$1 / $ticks_per_second / ($bytes / (1 << 30)):.2f}')"; }  # per_gib TICKS: seconds per GiB of the size
pass_cpu_ticks() {  # pass_cpu_ticks: fio's processor time in the last pass, in ticks
    python3 -c 'import json, sys; j = json.load(open(sys.argv[1]))["jobs"][0]; print(round((j["usr_cpu"] + j["sys_cpu"]) / 100 * j["job_runtime"] / 1000 * int(sys.argv[2])))' "$work/pass.json" "$ticks_per_second"
}

if section warm; then
# blockgate: one thin volume, and a cached volume in a cache with room for all of it (an upload
# buffer as large, so that no write waits for the store).
"$binary" serve --data-dir "$work/blockgate" --listen "" --log-level warning 2> "$work/blockgate.log" &
pids+=($!)
declare -A server_pid=([blockgate]=$!)
wait_socket "$work/blockgate/admin.sock"
"$binary" volume create bench --size "$size" --admin-socket "$work/blockgate/admin.sock" > /dev/null
cached_daemon "$work/warm" 4G 4G
"$binary" volume create bench --size "$size" --kind cached --admin-socket "$work/warm/admin.sock" > /dev/null
# nbdkit and qemu-nbd: a file of the same size in the same directory.
truncate -s "$size" "$work/nbdkit.img" "$work/qemu.img"
nbdkit --foreground --unix "$work/nbdkit.sock" file "$work/nbdkit.img" 2> "$work/nbdkit.log" &
pids+=($!)
server_pid[nbdkit]=$!
qemu-nbd --format=raw --persistent --shared=16 --discard=unmap --socket="$work/qemu.sock" "$work/qemu.img" 2> "$work/qemu.log" &
pids+=($!)
server_pid[qemu-nbd]=$!
server_pid[cached]=$daemon
wait_socket "$work/nbdkit.sock"
wait_socket "$work/qemu.sock"

declare -A uris=(
    [blockgate]="nbd+unix:///bench?socket=$work/blockgate/nbd.sock"
    [cached]="nbd+unix:///bench?socket=$work/warm/nbd.sock"
    [nbdkit]="nbd+unix:///?socket=$work/nbdkit.sock"
    [qemu-nbd]="nbd+unix:///?socket=$work/qemu.sock"
)
servers=(blockgate cached nbdkit qemu-nbd)
jobs=("randread 4k 32" "randwrite 4k 32" "read 1M 8" "write 1M 8")

# Each job runs on a quiet machine: no server is measured while the page cache writes back what
# an earlier job wrote, or while the cached volume uploads what it was given (its own job's
# uploads count against it: they run while it is measured).
quiet() {
    "$binary" volume flush bench --wait-upload --json --admin-socket "$work/warm/admin.sock" > /dev/null
    sync
    sleep 1  # the uploader hurries for a second after someone waited for it
}

# Fill every image first, so that reads read data.
for server in "${servers[@]}"; do fio_pass write --ioengine=nbd --uri="${uris[$server]}"; done

# The servers take turns, in rounds, each round starting with the next server, so that a change
# in the machine's speed during the run (this is often a shared virtual machine) weighs on all of
# them alike: each figure is the median of the rounds. Beside it, the processor time the server
# process took per I/O over all rounds (its threads and io_uring workers; the ramp included),
# which varies far less from run to run than throughput does.
job_runtime=$(( runtime / rounds > 3 ? runtime / rounds : 3 ))

echo "blockgate: a thin volume; cached: a cached volume whose cache holds it all (warm); median of $rounds rounds of ${job_runtime}s"
printf '%-18s' "job"
for server in "${servers[@]}"; do printf '%28s' "$server"; done
printf '%12s%12s%14s\n' "vs nbdkit" "vs qemu-nbd" "cached/thin"
declare -A cpu_per_io=() round_figures=() client_share=()
for job in "${jobs[@]}"; do
    read -r rw bs depth <<< "$job"
    declare -A iops=() bandwidth=() ticks=() ios=() shares=()
    for round in $(seq 0 $((rounds - 1))); do
        for turn in $(seq 0 $((${#servers[@]} - 1))); do
            server=${servers[$(( (round + turn) % ${#servers[@]} ))]}
            quiet
            before=$(cpu_ticks "${server_pid[$server]}")
            read -r round_iops round_bandwidth round_share < <(fio_timed "$rw" "$bs" "$depth" --ioengine=nbd --uri="${uris[$server]}")
            ticks[$server]=$(( ${ticks[$server]:-0} + $(cpu_ticks "${server_pid[$server]}") - before ))
            ios[$server]=$(python3 -c "print(${ios[$server]:-0} + $round_iops * ($job_runtime + 2))")
            iops[$server]="${iops[$server]:-} $round_iops"
            bandwidth[$server]="${bandwidth[$server]:-} $round_bandwidth"
            shares[$server]="${shares[$server]:-} $round_share"
        done
    done
    for server in "${servers[@]}"; do
        round_figures[$job $server]="${iops[$server]}"
        client_share[$job $server]=$(python3 -c 'import statistics, sys; print(f"{100 * statistics.median(map(float, sys.argv[1:])):.0f}")' ${shares[$server]})
        iops[$server]=$(median ${iops[$server]})
        bandwidth[$server]=$(median ${bandwidth[$server]})
        cpu_per_io[$job $server]=$(python3 -c "print(f'{1e6 * ${ticks[$server]} / $ticks_per_second / max(1, ${ios[$server]}):.1f}')")
    done
    printf '%-18s' "$rw $bs QD$depth"
    for server in "${servers[@]}"; do printf '%28s' "${iops[$server]%.*} IOPS ${bandwidth[$server]} MiB/s"; done
    printf '%12s%12s%14s\n' "$(rounds_ratio "${round_figures[$job blockgate]}" "${round_figures[$job nbdkit]}")" \
        "$(rounds_ratio "${round_figures[$job blockgate]}" "${round_figures[$job qemu-nbd]}")" \
        "$(rounds_ratio "${round_figures[$job cached]}" "${round_figures[$job blockgate]}")"
done
echo "* the two servers' rounds overlap: the ratio shows no difference between them"
per_job_lines() {  # per_job_lines TABLE UNIT: a line per job, TABLE's figure for each server
    local -n table="$1"
    for job in "${jobs[@]}"; do
        read -r rw bs depth <<< "$job"
        printf '%-18s' "$rw $bs QD$depth"
        for server in "${servers[@]}"; do printf '%28s' "${table[$job $server]} $2"; done
        echo
    done
}
echo "server processor time per I/O (microseconds):"
per_job_lines cpu_per_io us
# The client's own load: fio drives each job from one thread, so near 100 % of a core the job
# measures fio as much as the server, and no server can go much faster with this client.
echo "fio (the client) processor time, share of one core (median of the rounds):"
per_job_lines client_share %
# The spread beside each median: a ratio nearer 1.0 than the rounds' spread is not a difference.
echo "IOPS round by round (in the order run):"
for job in "${jobs[@]}"; do
    read -r rw bs depth <<< "$job"
    printf '%-18s' "$rw $bs QD$depth"
    for server in "${servers[@]}"; do
        printf '  %s%s;' "$server" "$(printf ' %.0f' ${round_figures[$job $server]})"
    done
    echo
done
unset job_runtime
stop_daemon
fi

if section cold; then
declare -A drain=() coldread=() coldrandom=()

# Cold cached volumes against s3backer (FUSE, 1 MiB blocks, a 256-block cache, path-style, its
# own prefix in the same bucket) and against the store's own ceiling. Each cold read runs on a
# fresh daemon that recovered the volume on an empty data directory (s3backer: a fresh mount).
# Each side starts on a quiet disk: the gigabytes written before are synced first. Each cold read
# also starts with the emulator's objects out of the page cache, so that every reader reads them
# from the disk (when the bench may drop the page cache: as root; otherwise what the page cache
# holds for each reader is left to chance, and the report says so).
sync
page_cache_dropped=no
[ -w /proc/sys/vm/drop_caches ] && page_cache_dropped=yes
cold_start() {  # cold_start: a quiet disk, and no object in the page cache when the bench may drop it
    sync
    [ "$page_cache_dropped" = no ] || echo 3 > /proc/sys/vm/drop_caches
}
# The ceiling: plain PUTs and GETs of as many bytes as 1 MiB objects, 16 at a time (as many as a
# volume uploads at once by default, cache.upload_concurrency), by `blockgate objstore bench`: the
# gateway's own S3 client, which pays what the gateway's transfers pay on the wire and nothing of
# its object format, cache or NBD. A script's client ran out of processor first (a Python one
# reached 1.3-1.6 GiB/s of GETs from memory where this one reached 2.3-3.0).
raw_store() {  # raw_store --put|--get PREFIX: MiB/s (the run fails if the result line is missing); the client's processor seconds in $work/raw.cpu
    "$binary" objstore bench \
        --object-store "s3://bench?endpoint=http://127.0.0.1:$port" --prefix "$2" --objects "$((bytes >> 20))" \
        --size 1M --concurrency 16 "$1" > "$work/raw.out"
    awk '$NF == "processor" && $(NF - 1) == "of" { print $(NF - 3) }' "$work/raw.out" > "$work/raw.cpu"
    awk '{ for (i = 2; i <= NF; i++) if ($i == "MiB/s") { print $(i - 1); found = 1 } } END { exit !found }' "$work/raw.out"
}
# Write + drain and raw PUTs take turns in rounds (each round starting with the next), so that
# both meet the emulator and the disk in the same state (a PUT costs the emulator more the more
# files its filesystem has created and deleted); the figures are the medians. Each drain writes a
# fresh cached volume on a fresh daemon; the first round's volume is the one read cold below.
drain_round() {  # drain_round ROUND: appends MiB/s to drain_rounds, processor seconds per GiB to drain_cpu_rounds
    local volume=cold ticks end
    [ "$1" = 0 ] || volume="drain$1"
    cached_daemon "$work/drain-$1"
    "$binary" volume create "$volume" --size "$size" --kind cached --admin-socket "$work/drain-$1/admin.sock" > /dev/null
    sync
    ticks=("$(cpu_ticks "$daemon")" "$(cpu_ticks "$emulator")")
    fio_pass write --ioengine=nbd --uri="nbd+unix:///$volume?socket=$work/drain-$1/nbd.sock"
    "$binary" volume flush "$volume" --wait-upload --admin-socket "$work/drain-$1/admin.sock" > /dev/null
    end=$(now)
    drain_rounds+=" $(mib_per_s "$bytes" "$(seconds_between "$(pass_started)" "$end")")"
    # Processor seconds per GiB of the write and drain: the gateway's, the emulator's, fio's.
    drain_cpu_rounds[0]+=" $(per_gib "$(( $(cpu_ticks "$daemon") - ticks[0] ))")"
    drain_cpu_rounds[1]+=" $(per_gib "$(( $(cpu_ticks "$emulator") - ticks[1] ))")"
    drain_cpu_rounds[2]+=" $(per_gib "$(pass_cpu_ticks)")"
    stop_daemon
}
raw_put_round() {  # raw_put_round ROUND: appends MiB/s to raw_put_rounds, processor seconds per GiB to raw_put_cpu_rounds
    local ticks
    sync
    ticks=$(cpu_ticks "$emulator")
    raw_put_rounds+=" $(raw_store --put "raw$1")"
    raw_put_cpu_rounds[0]+=" $(python3 -c "print(f'{$(cat "$work/raw.cpu") / ($bytes / (1 << 30)):.2f}')")"
    raw_put_cpu_rounds[1]+=" $(per_gib "$(( $(cpu_ticks "$emulator") - ticks ))")"
}
drain_rounds=""
raw_put_rounds=""
drain_cpu_rounds=("" "" "")
raw_put_cpu_rounds=("" "")
for round in $(seq 0 $((rounds - 1))); do
    if (( round % 2 == 0 )); then drain_round "$round"; raw_put_round "$round"
    else raw_put_round "$round"; drain_round "$round"; fi
done
drain[blockgate]=$(median $drain_rounds)
raw_put=$(median $raw_put_rounds)
cold_uri() { echo "nbd+unix:///cold?socket=$work/$1/nbd.sock"; }
cached_daemon "$work/cold-3"
"$binary" volume recover cold --admin-socket "$work/cold-3/admin.sock" > /dev/null
cold_start
read -r coldrandom[blockgate] _ < <(fio_timed randread 4k 32 --ioengine=nbd --uri="$(cold_uri cold-3)")
stop_daemon

s3backer_mount() {  # mounts s3backer on $work/s3backer, its pid in $daemon
    mkdir -p "$work/s3backer"
    s3backer -f --baseURL="http://127.0.0.1:$port/" --accessId="$AWS_ACCESS_KEY_ID" \
        --accessKey="$AWS_SECRET_ACCESS_KEY" --blockSize=1M --size="$size" --blockCacheSize=256 \
        --prefix=s3backer/ bench "$work/s3backer" >> "$work/s3backer.log" 2>&1 &
    daemon=$!
    pids+=("$daemon")
    for _ in $(seq 200); do mountpoint -q "$work/s3backer" && return 0; sleep 0.05; done
    echo "bench: s3backer did not mount (see $work/s3backer.log)" >&2; exit 1
}
s3backer_unmount() {  # unmounts, then waits for s3backer to write back its dirty blocks and exit
    umount "$work/s3backer"
    wait "$daemon" 2>/dev/null || true
}
# fio on the mounted file, O_DIRECT (its fastest here).
s3backer_target=(--filename="$work/s3backer/file" --ioengine=libaio --direct=1)
sync
s3backer_mount
fio_pass write "${s3backer_target[@]}"
s3backer_unmount
end=$(now)
drain[s3backer]=$(mib_per_s "$bytes" "$(seconds_between "$(pass_started)" "$end")")
cold_start
s3backer_mount
read -r coldrandom[s3backer] _ < <(fio_timed randread 4k 32 "${s3backer_target[@]}")
s3backer_unmount

# Cold sequential reads in rounds, blockgate, s3backer and the plain client taking turns (each
# round starting with the next), each on a quiet disk; the figures are the medians.
timed_read() {  # timed_read TARGET_ARGS...: MiB/s of one 1 MiB QD8 read of the whole size
    fio_pass read "$@"
    pass_mib_per_s
}
cold_read() {  # cold_read READER ROUND: MiB/s of one cold read of the whole size
    cold_start
    case "$1" in
    blockgate)
        cached_daemon "$work/cold-read-$2"
        "$binary" volume recover cold --admin-socket "$work/cold-read-$2/admin.sock" > /dev/null
        timed_read --ioengine=nbd --uri="$(cold_uri "cold-read-$2")"
        stop_daemon ;;
    s3backer)
        s3backer_mount
        timed_read "${s3backer_target[@]}"
        s3backer_unmount ;;
    raw) raw_store --get raw0 ;;
    esac
}
readers=(blockgate s3backer raw)
declare -A cold_reads=()
for round in $(seq 0 $((rounds - 1))); do
    for turn in 0 1 2; do
        reader=${readers[$(( (round + turn) % 3 ))]}
        cold_reads[$reader]="${cold_reads[$reader]:-} $(cold_read "$reader" "$round")"
    done
done
coldread[blockgate]=$(median ${cold_reads[blockgate]})
coldread[s3backer]=$(median ${cold_reads[s3backer]})
raw_get=$(median ${cold_reads[raw]})

percent() { python3 -c "print(f'{100 * $1 / $2:.0f} %')"; }
echo
echo "cached volume, cold ($size, object-store emulator on loopback, 256M cache; s3backer 1M blocks, 256-block cache;" \
    "page cache dropped before each cold read: $page_cache_dropped):"
printf '  %-36s%22s%22s%12s%16s\n' "job" "blockgate" "s3backer" "ratio" "of raw store"
printf '  %-36s%16s MiB/s%16s MiB/s%12s%16s\n' "write 1M QD8, then drain (median)" \
    "${drain[blockgate]}" "${drain[s3backer]}" "$(ratio "${drain[blockgate]}" "${drain[s3backer]}")" \
    "$(percent "${drain[blockgate]}" "$raw_put")"
printf '  %-36s%16s MiB/s%16s MiB/s%12s%16s\n' "cold sequential read 1M QD8 (median)" \
    "${coldread[blockgate]}" "${coldread[s3backer]}" "$(ratio "${coldread[blockgate]}" "${coldread[s3backer]}")" \
    "$(percent "${coldread[blockgate]}" "$raw_get")"
printf '  %-36s%17s IOPS%17s IOPS%12s\n' "cold random read 4k QD32" \
    "${coldrandom[blockgate]}" "${coldrandom[s3backer]}" "$(ratio "${coldrandom[blockgate]}" "${coldrandom[s3backer]}")"
printf '  %-36s%16s MiB/s PUT %s MiB/s GET (1M objects, 16 at once, payloads unsigned with their CRC32C; medians)\n' "raw store (objstore bench)" \
    "$raw_put" "$raw_get"
echo "  processor seconds per GiB ($(nproc) processors, medians): write + drain: gateway $(median2 ${drain_cpu_rounds[0]})," \
    "emulator $(median2 ${drain_cpu_rounds[1]}), fio $(median2 ${drain_cpu_rounds[2]});" \
    "raw PUT: client $(median2 ${raw_put_cpu_rounds[0]}), emulator $(median2 ${raw_put_cpu_rounds[1]})"
echo "  write + drain and raw PUT, round by round (MiB/s): blockgate$drain_rounds; raw PUT$raw_put_rounds"
echo "  cold sequential reads, round by round (MiB/s): blockgate${cold_reads[blockgate]};" \
    "s3backer${cold_reads[s3backer]}; raw GET${cold_reads[raw]}"

fi

if section formats; then
# What goes into the store: the same cold write-drain and read with each object format, on
# incompressible data (random) and on compressible data (the first $size of Debian's Linux source
# tar). Written with nbdcopy from a file and drained; read with fio 1M QD8 on a fresh daemon that
# recovered the volume. Figures are of data bytes per second, to be read beside the raw format's
# row and s3backer's figures of the cold section (s3backer's --compress and --encrypt cannot run
# on the emulator: they need object metadata returned on GET, which it does not keep).
sync
head -c "$bytes" /dev/urandom > "$work/random.data"
tar_source=$(ls /usr/src/linux-source-*.tar.xz 2> /dev/null | head -1)
if [ -n "$tar_source" ]; then
    xz -dc "$tar_source" | head -c "$bytes" > "$work/tar.data" || true
    tar_name="Linux source tar"
else
    tar -cf - /usr/include /usr/share/doc 2> /dev/null | head -c "$bytes" > "$work/tar.data" || true
    tar_name="tar of /usr/include (no linux-source)"
fi
truncate -s "$bytes" "$work/tar.data"
declare -A fdrain=() fread=() fstored=()
formats=("off off" "off aes-256-gcm" "zstd off" "zstd aes-256-gcm" "lz4 off")
"$binary" key generate "$work/bench.key" > /dev/null
format_run() {  # format_run DATA COMPRESSION ENCRYPTION: drain and cold read figures into the arrays
    local data="$1" compression="$2" encryption="$3" name="f-$1-$2-$3"
    cached_daemon "$work/$name-w" 256M 256M "$work/bench.key"
    "$binary" volume create "$name" --size "$size" --kind cached --compression "$compression" \
        --encryption "$encryption" --admin-socket "$work/$name-w/admin.sock" > /dev/null
    local start; start=$(now)
    nbdcopy "$work/$data.data" "nbd+unix:///$name?socket=$work/$name-w/nbd.sock"
    "$binary" volume flush "$name" --wait-upload --admin-socket "$work/$name-w/admin.sock" > /dev/null
    fdrain[$data $compression $encryption]=$(mib_per_s "$bytes" "$(seconds_since "$start")")
    fstored[$data $compression $encryption]=$("$binary" volume info "$name" --json \
        --admin-socket "$work/$name-w/admin.sock" |
        python3 -c 'import json, sys; v = json.load(sys.stdin); print("%.0f %%" % (100 * v["stored_bytes"] / max(1, v["logical_bytes"])))')
    stop_daemon
    cached_daemon "$work/$name-r" 256M 256M "$work/bench.key"
    "$binary" volume recover "$name" --admin-socket "$work/$name-r/admin.sock" > /dev/null
    fio_pass read --ioengine=nbd --uri="nbd+unix:///$name?socket=$work/$name-r/nbd.sock"
    fread[$data $compression $encryption]=$(pass_mib_per_s)
    stop_daemon
}
for data in random tar; do
    for format in "${formats[@]}"; do format_run "$data" $format; done
done

echo
echo "object formats, cold ($size each; write with nbdcopy then drain, read 1M QD8 after a recover):"
echo "  (A: random data; B: $tar_name)"
printf '  %-30s%20s%20s%12s%20s%20s%12s\n' "compression, encryption" "A: drain" "A: cold read" "A: stored" \
    "B: drain" "B: cold read" "B: stored"
for format in "${formats[@]}"; do
    printf '  %-30s' "${format/ /, }"
    for data in random tar; do
        printf '%14s MiB/s%14s MiB/s%12s' "${fdrain[$data $format]}" "${fread[$data $format]}" "${fstored[$data $format]}"
    done
    echo
done
printf '  %-30s%20s%20s\n' "encryption costs (aes vs off)" \
    "$(python3 -c "print(f'{100 * (1 - ${fdrain[random off aes-256-gcm]} / ${fdrain[random off off]}):.0f} %')")" \
    "$(python3 -c "print(f'{100 * (1 - ${fread[random off aes-256-gcm]} / ${fread[random off off]}):.0f} %')")"

fi

[ "${BENCH_MEMORY:-1}" = 0 ] && exit 0
section memory || exit 0
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
    start=$(now)
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
