# Scenario: mount the filesystem ($FS) fs-fill.sh left on /dev/nbd0, time a read of its first
# file with an empty page cache (a figure only), then check the file against its checksum.
mnt=/mnt/volume
mkdir -p "$mnt"
mount -t "$FS" /dev/nbd0 "$mnt" || { echo "FAIL mount"; exit 1; }
echo 3 > /proc/sys/vm/drop_caches
start=$(cut -d' ' -f1 /proc/uptime)
dd if="$mnt/file0" of=/dev/null bs=1M 2>/dev/null || { echo "FAIL read"; exit 1; }
end=$(cut -d' ' -f1 /proc/uptime)
bytes=$(stat -c %s "$mnt/file0")
awk -v b="$bytes" -v s="$start" -v e="$end" \
    'BEGIN { t = e - s; if (t <= 0) t = 0.01; printf "INFO cold-read: %d MiB in %.2f s, %.1f MiB/s\n", b / 1048576, t, b / 1048576 / t }'
grep ' file0$' "$mnt/sums" > /tmp/file0.sum
(cd "$mnt" && md5sum -c /tmp/file0.sum > /dev/null) || { echo "FAIL checksum"; exit 1; }
echo "PASS $FS: file0 read back cold, its checksum matches"
umount "$mnt"
