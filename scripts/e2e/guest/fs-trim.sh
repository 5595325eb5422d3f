# Scenario: mount the filesystem fs-fill.sh made, verify its files again (a new attach, so the
# data comes from the server), delete all but $KEEP of them, fstrim, report what the
# filesystem still uses.
mnt=/mnt/volume
mkdir -p "$mnt"
mount -t "$FS" /dev/nbd0 "$mnt" || { echo "FAIL mount"; exit 1; }
(cd "$mnt" && md5sum -c sums > /dev/null) || { echo "FAIL checksums after reattach"; exit 1; }
echo "PASS $FS: checksums match after reattach"
i="$KEEP"
while [ "$i" -lt "$FILES" ]; do rm "$mnt/file$i"; i=$((i + 1)); done
sync
before=$(awk '{print $12}' /sys/block/nbd0/stat)
fstrim "$mnt" || { echo "FAIL fstrim"; exit 1; }
after=$(awk '{print $12}' /sys/block/nbd0/stat)
[ "$after" -gt "$before" ] || { echo "FAIL fstrim sent no discard"; exit 1; }
echo "PASS fstrim sent $((after - before)) discard requests"
used_kib=$(df -k "$mnt" | awk 'NR == 2 {print $3}')
echo "INFO fs-used-bytes=$((used_kib * 1024))"
umount "$mnt"
