#!/bin/busybox sh
# PID 1 of the test guest: load modules, bridge the virtio port to a unix socket, attach
# /dev/nbd0 with nbd-client, run the scenario script, detach, power off.
# Reports on the console as lines "E2E <word> ...".
export PATH=/usr/local/bin:/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
set -a
. /scenario/env
set +a
say() { echo "E2E $*"; }
finish() { say "DONE $1"; sync; poweroff -f; }
for module in $(cat /lib/modules/order); do insmod "/lib/modules/$module" 2>/dev/null; done
insmod /lib/modules/nbd.ko nbds_max=1 max_part=0 || { say "FAIL nbd.ko did not load"; finish 1; }
port=""
for candidate in /sys/class/virtio-ports/*; do
    [ "$(cat "$candidate/name" 2>/dev/null)" = nbd ] && port="/dev/$(basename "$candidate")"
done
[ -c "$port" ] || { say "FAIL no virtio port named nbd"; finish 1; }
socat -b 262144 UNIX-LISTEN:/run/nbd.sock,fork "OPEN:$port,ignoreeof" &
i=0
while [ ! -S /run/nbd.sock ]; do
    i=$((i + 1)); [ "$i" -lt 100 ] || { say "FAIL the guest bridge did not start"; finish 1; }
    usleep 50000
done
say READY
nbd-client -u /run/nbd.sock /dev/nbd0 -N "$EXPORT" -t 60 > /tmp/nbd-client.log 2>&1 \
    || { cat /tmp/nbd-client.log; say "FAIL nbd-client could not attach $EXPORT"; finish 1; }
size=0; i=0
while [ "$size" = 0 ] && [ "$i" -lt 100 ]; do size="$(cat /sys/block/nbd0/size)"; i=$((i + 1)); usleep 50000; done
[ "$size" != 0 ] || { say "FAIL /dev/nbd0 has no size"; finish 1; }
say "PASS attached $EXPORT: $((size * 512)) bytes, flags $(cat /sys/kernel/debug/nbd/nbd0/flags 2>/dev/null | tr '\n' ' ')"
mkdir -p /scratch && mount -t tmpfs tmpfs /scratch && cd /scratch
sh /scenario/script
status=$?
cd /
nbd-client -d /dev/nbd0 > /dev/null 2>&1 || { say "FAIL nbd-client -d"; status=1; }
finish $status
