# Scenario: make a filesystem ($FS) on /dev/nbd0, write $FILES files of $FILE_MB MiB, keep their
# checksums on the filesystem, and verify them from the server after a remount.
mnt=/mnt/volume
mkdir -p "$mnt"
case "$FS" in
    ext4) mkfs.ext4 -q -F /dev/nbd0 ;;
    xfs) mkfs.xfs -q -f /dev/nbd0 ;;
esac || { echo "FAIL mkfs.$FS"; exit 1; }
echo "PASS mkfs.$FS (discards sent: $(awk '{print $12}' /sys/block/nbd0/stat))"
mount -t "$FS" /dev/nbd0 "$mnt" || { echo "FAIL mount"; exit 1; }
i=0
while [ "$i" -lt "$FILES" ]; do
    dd if=/dev/urandom of="$mnt/file$i" bs=1M count="$FILE_MB" 2>/dev/null || { echo "FAIL write file$i"; exit 1; }
    i=$((i + 1))
done
(cd "$mnt" && md5sum file* > sums)
sync
umount "$mnt"
echo 3 > /proc/sys/vm/drop_caches
mount -t "$FS" /dev/nbd0 "$mnt" || { echo "FAIL remount"; exit 1; }
(cd "$mnt" && md5sum -c sums > /dev/null) || { echo "FAIL checksums after remount"; exit 1; }
echo "PASS $FS: $FILES x $FILE_MB MiB written, remounted, checksums match"
echo "INFO flushes sent: $(awk '{print $15}' /sys/block/nbd0/stat)"
umount "$mnt"
