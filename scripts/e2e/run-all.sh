#!/usr/bin/env bash
# `make e2e`: starts blockgate on a scratch data directory and runs the kernel nbd client
# scenarios against it in small VMs:
#   - ext4 and xfs: mkfs (a whole-device discard), files written and verified, detach; reattach,
#     verify, delete most files, fstrim; then `volume info` must show the allocation falling to
#     near what the filesystem still uses;
#   - direct-I/O patterns at scattered offsets;
#   - a cached volume in the object-store emulator, its cache (16 MiB) much smaller than the
#     files written (64 MiB), so that chunks are evicted and downloaded again: ext4, files
#     written, synced, page cache dropped, read back with equal checksums; then the uploads are
#     drained and the bucket holds the volume's objects;
#   - ext4 on an encrypted, compressed cached volume (zstd, AES-256-GCM, the master key in a key
#     file) with the 16 MiB cache: 48 MiB of text files holding a known plaintext written,
#     remounted and verified, drained, verified again from the store; the emulator's directory
#     must not hold the plaintext anywhere, and the volume must store less than it holds;
#   - a cold read: a 256 MiB file on ext4 on a cached volume (not encrypted, to compare), uploaded, read back through the
#     16 MiB cache with an empty page cache, timed and printed (a figure, never asserted); then the same file read
#     from a thin volume in the same kind of guest, for scale (the guest is emulated, and slow);
#   - a tape drive: three tar archives written in three attach/detach rounds (each disconnect
#     seals a file), the tape rewound with the CLI and each archive read back with `drive fsf`
#     between them; then the tape exported to the shelf, retrieved (read-only) and read again;
#   - the server log must show the WRITE, FLUSH and TRIM requests the kernel sent.
#   run-all.sh BLOCKGATE_BINARY
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
binary="$(readlink -f "${1:?usage: $0 BLOCKGATE_BINARY}")"
work="$(mktemp -d /tmp/blockgate-e2e-run.XXXXXX)"
data="$work/data"
socket="$data/nbd.sock"
admin=(--admin-socket "$data/admin.sock")
failures=0
passes=0
server_pid=""
store_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    [ -n "$store_pid" ] && kill "$store_pid" 2>/dev/null && wait "$store_pid" 2>/dev/null
    [ "$failures" = 0 ] && rm -rf "$work" || echo "e2e: server log kept in $work/server.log"
}
trap cleanup EXIT
check() {  # check DESCRIPTION CONDITION...
    local description="$1"; shift
    if "$@"; then echo "PASS $description"; passes=$((passes + 1)); else echo "FAIL $description"; failures=$((failures + 1)); fi
}
guest() {  # guest OUTPUT-FILE EXPORT SCRIPT [NAME=VALUE ...]: one VM run, its report shown and kept
    local output="$1"; shift
    "$here/run-guest.sh" "$socket" "$@" | tee "$output"
}
json_field() { awk -F': ' -v key="\"$1\"" '$1 ~ key {gsub(/[," ]/, "", $2); print $2}'; }  # json_field KEY < JSON
allocated() { "$binary" volume info "$1" --json "${admin[@]}" | json_field allocated_bytes; }
cache_field() { "$binary" cache status --json "${admin[@]}" | json_field "$1"; }

# The object-store emulator on a free loopback port, and a config naming it with a small cache.
export AWS_ACCESS_KEY_ID=e2e-access AWS_SECRET_ACCESS_KEY=e2e-secret
store_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$binary" objstore serve --dir "$work/objects" --listen "127.0.0.1:$store_port" > "$work/objstore.log" 2>&1 &
store_pid=$!
"$binary" key generate "$work/master.key" > /dev/null
cat > "$work/blockgate.yaml" <<CONFIG
object_store:
  url: s3://e2e?endpoint=http://127.0.0.1:$store_port
cache:
  size: 16M
  upload_buffer: 32M
objects:
  key_file: $work/master.key
CONFIG
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$store_port") 2>/dev/null && break; sleep 0.1; done

"$binary" serve --config "$work/blockgate.yaml" --data-dir "$data" --listen "" --request-log \
    > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.1; done
[ -S "$socket" ] || { echo "FAIL the server did not start"; cat "$work/server.log"; exit 1; }

files=8; file_mb=8; keep=2
for fs in ext4 xfs; do
    volume="e2e-$fs"
    "$binary" volume create "$volume" --size 1G "${admin[@]}" > /dev/null || { failures=$((failures + 1)); continue; }
    echo "== $fs on $volume"
    check "$fs: guest made the filesystem, wrote and verified files" \
        guest "$work/fill-$fs.out" "$volume" "$here/guest/fs-fill.sh" FS="$fs" FILES=$files FILE_MB=$file_mb
    filled=$(allocated "$volume")
    check "$fs: guest verified the files again, deleted most, ran fstrim" \
        guest "$work/trim-$fs.out" "$volume" "$here/guest/fs-trim.sh" FS="$fs" FILES=$files KEEP=$keep
    used=$(sed -n 's/^INFO fs-used-bytes=//p' "$work/trim-$fs.out")
    trimmed=$(allocated "$volume")
    deleted=$(( (files - keep) * file_mb << 20 ))
    echo "INFO $fs: allocated ${filled} bytes after writing, ${trimmed} after fstrim; filesystem uses ${used:-?}"
    check "$fs: fstrim freed at least 90% of the $(( deleted >> 20 )) MiB deleted" \
        test $(( filled - trimmed )) -ge $(( deleted * 9 / 10 ))
    check "$fs: allocation after fstrim is within 16 MiB of what the filesystem uses" \
        test "${used:-0}" -gt 0 -a "$trimmed" -le $(( ${used:-0} + (16 << 20) ))
done

echo "== ext4 on a cached volume with a 16 MiB cache"
"$binary" volume create e2e-cached --size 1G --kind cached "${admin[@]}" > /dev/null || failures=$((failures + 1))
check "cached ext4: 64 MiB of files written, synced, dropped, read back with equal checksums" \
    guest "$work/fill-cached.out" e2e-cached "$here/guest/fs-fill.sh" FS=ext4 FILES=8 FILE_MB=8
check "cached ext4: the uploads drained" "$binary" volume flush e2e-cached --wait-upload "${admin[@]}"
objects=$("$binary" volume info e2e-cached --json "${admin[@]}" | json_field objects)
uuid=$("$binary" volume info e2e-cached --json "${admin[@]}" | json_field uuid)
stored=$(find "$work/objects/e2e/volumes/${uuid:-none}" -type f -path '*chunks*' 2>/dev/null | wc -l)
check "cached ext4: the bucket holds the volume's ${objects:-?} objects ($stored files)" \
    test "${objects:-0}" -gt 0 -a "$stored" -eq "${objects:-0}"
misses_before=$(cache_field misses)
check "cached ext4: the files verify again, most of their chunks evicted by now" \
    guest "$work/verify-cached.out" e2e-cached "$here/guest/fs-verify.sh" FS=ext4
misses=$(cache_field misses); used=$(cache_field used)
echo "INFO cache: ${used:-?} bytes used of 16 MiB; misses ${misses_before:-?} before the check, ${misses:-?} after"
check "cached ext4: the check downloaded evicted chunks again" test "${misses:-0}" -gt "${misses_before:-0}"
check "cached ext4: the cache holds at most its 16 MiB" test "${used:-0}" -le $((16 << 20))

echo "== ext4 on an encrypted, compressed cached volume"
marker="BLOCKGATE-E2E-$RANDOM$RANDOM-PLAINTEXT"
"$binary" volume create e2e-sealed --size 1G --kind cached --compression zstd --encryption aes-256-gcm \
    "${admin[@]}" > /dev/null || failures=$((failures + 1))
check "sealed ext4: 48 MiB of text written, synced, dropped, read back with equal checksums" \
    guest "$work/fill-sealed.out" e2e-sealed "$here/guest/fs-text.sh" FILES=6 FILE_MB=8 MARKER="$marker"
check "sealed ext4: the uploads drained" "$binary" volume flush e2e-sealed --wait-upload "${admin[@]}"
check "sealed ext4: the files verify again, read back from the store through the 16 MiB cache" \
    guest "$work/verify-sealed.out" e2e-sealed "$here/guest/fs-verify.sh" FS=ext4
check "sealed ext4: the plaintext is nowhere in the emulator's directory" \
    test -z "$(grep -r -l -a "$marker" "$work/objects" | head -1)"
sealed_info=$("$binary" volume info e2e-sealed --json "${admin[@]}")
logical=$(echo "$sealed_info" | json_field logical_bytes); stored=$(echo "$sealed_info" | json_field stored_bytes)
echo "INFO sealed volume: ${logical:-?} bytes of data in its objects, ${stored:-?} bytes stored"
check "sealed ext4: compression stores less than the data" test "${stored:-0}" -gt 0 -a "${stored:-0}" -lt "${logical:-0}"

echo "== a cold read through ext4 on a cached volume (a figure only)"
"$binary" volume create e2e-cold --size 1G --kind cached --encryption off "${admin[@]}" > /dev/null ||
    failures=$((failures + 1))
check "cold read: a 256 MiB file written, synced and verified" \
    guest "$work/cold-fill.out" e2e-cold "$here/guest/fs-fill.sh" FS=ext4 FILES=1 FILE_MB=256
check "cold read: the uploads drained" "$binary" volume flush e2e-cold --wait-upload "${admin[@]}"
# The read-ahead counters are the daemon's totals (every cached volume, every read so far): the
# cold read's share is what they gained during it.
read_ahead_counts() { echo "$(cache_field read_ahead_bytes) $(cache_field read_ahead_hits) $(cache_field read_ahead_wasted_bytes)"; }
read -r ahead_before hits_before wasted_before < <(read_ahead_counts)
check "cold read: the file, at most 16 MiB of it cached, reads back with its checksum" \
    guest "$work/cold-read.out" e2e-cold "$here/guest/fs-time-read.sh" FS=ext4
read -r ahead_after hits_after wasted_after < <(read_ahead_counts)
echo "INFO the cold read: $(( ${ahead_after:-0} - ${ahead_before:-0} )) bytes read ahead, $(( ${hits_after:-0} - ${hits_before:-0} )) read-ahead hits, $(( ${wasted_after:-0} - ${wasted_before:-0} )) bytes wasted"
echo "== the same read from a thin volume, for scale (a figure only)"
"$binary" volume create e2e-thin-read --size 1G "${admin[@]}" > /dev/null || failures=$((failures + 1))
check "thin read: a 256 MiB file written, synced and verified" \
    guest "$work/thin-fill.out" e2e-thin-read "$here/guest/fs-fill.sh" FS=ext4 FILES=1 FILE_MB=256
check "thin read: the file reads back with its checksum" \
    guest "$work/thin-read.out" e2e-thin-read "$here/guest/fs-time-read.sh" FS=ext4
read_speed() { sed -n 's|^INFO cold-read: .*, \([0-9.]*\) MiB/s$|\1|p' "$1"; }
echo "INFO read speed in the guest: $(read_speed "$work/cold-read.out") MiB/s cold from the store," \
    "$(read_speed "$work/thin-read.out") MiB/s from a thin volume"

echo "== tar archives on a tape drive"
tape_sum() { sed -n 's/^INFO archive-sum=//p' "$1"; }
read_archives() {  # read_archives LABEL: reads the three files from the head on, comparing with what was written
    local archive
    for archive in 1 2 3; do
        check "tape ($1): archive $archive reads back with the checksums written" \
            guest "$work/tar-read-$1-$archive.out" drive/0 "$here/guest/tar-read.sh"
        check "tape ($1): archive $archive matches" test -n "$(tape_sum "$work/tar-write-$archive.out")" \
            -a "$(tape_sum "$work/tar-read-$1-$archive.out")" = "$(tape_sum "$work/tar-write-$archive.out")"
        [ "$archive" = 3 ] || "$binary" drive fsf 0 "${admin[@]}" > /dev/null
    done
}
"$binary" tape create E2ETAPE1 --size 256M "${admin[@]}" > /dev/null || failures=$((failures + 1))
"$binary" tape load E2ETAPE1 --drive 0 "${admin[@]}" > /dev/null || failures=$((failures + 1))
for archive in 1 2 3; do
    check "tape: tar archive $archive written in its own attach/detach round" \
        guest "$work/tar-write-$archive.out" drive/0 "$here/guest/tar-write.sh" FILES=$((archive + 2))
done
files=$("$binary" tape info E2ETAPE1 --json "${admin[@]}" | awk '/"files"/,/]/' | grep -c '^ *[0-9]')
check "tape: the tape holds 3 sealed files ($files)" test "$files" = 3
check "tape: rewind with the CLI" "$binary" drive rewind 0 "${admin[@]}"
read_archives library
check "tape: ejected and exported to the shelf" \
    sh -c "'$binary' tape eject 0 ${admin[*]} && '$binary' tape export E2ETAPE1 ${admin[*]}"
check "tape: retrieved from the shelf (read-only) and loaded" \
    sh -c "'$binary' tape retrieve E2ETAPE1 ${admin[*]} && '$binary' tape load E2ETAPE1 --drive 0 ${admin[*]} && '$binary' drive rewind 0 ${admin[*]}"
read_archives retrieved

echo "== direct-I/O patterns"
"$binary" volume create e2e-raw --size 256M --chunk-size 1M "${admin[@]}" > /dev/null
check "guest wrote and read direct-I/O patterns" guest "$work/dd.out" e2e-raw "$here/guest/dd-pattern.sh"

for kind in write flush trim read; do
    count=$(grep -c "cmd=$kind " "$work/server.log")
    check "server log: $count $kind requests" test "$count" -gt 0
done

echo "e2e: $passes passed, $failures failed"
[ "$failures" = 0 ]
