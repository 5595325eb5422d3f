#!/usr/bin/env bash
# `make e2e`: starts blockgate on a scratch data directory and runs the kernel nbd client
# scenarios against it in small VMs:
#   - ext4 and xfs: mkfs (a whole-device discard), files written and verified, detach; reattach,
#     verify, delete most files, fstrim; then `volume info` must show the allocation falling to
#     near what the filesystem still uses;
#   - direct-I/O patterns at scattered offsets;
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
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
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
allocated() { "$binary" volume info "$1" --json "${admin[@]}" | awk -F': ' '/"allocated_bytes"/ {gsub(/,/, "", $2); print $2}'; }

"$binary" serve --data-dir "$data" --listen "" --request-log > "$work/server.log" 2>&1 &
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

echo "== direct-I/O patterns"
"$binary" volume create e2e-raw --size 256M --chunk-size 1M "${admin[@]}" > /dev/null
check "guest wrote and read direct-I/O patterns" guest "$work/dd.out" e2e-raw "$here/guest/dd-pattern.sh"

for kind in write flush trim read; do
    count=$(grep -c "cmd=$kind " "$work/server.log")
    check "server log: $count $kind requests" test "$count" -gt 0
done

echo "e2e: $passes passed, $failures failed"
[ "$failures" = 0 ]
