# Scenario: make ext4 on /dev/nbd0, write $FILES text files of $FILE_MB MiB whose every line holds
# $MARKER (a known plaintext), keep their checksums, and verify them from the server after a
# remount with the page cache dropped.
mnt=/mnt/volume
mkdir -p "$mnt"
mkfs.ext4 -q -F /dev/nbd0 || { echo "FAIL mkfs.ext4"; exit 1; }
mount -t ext4 /dev/nbd0 "$mnt" || { echo "FAIL mount"; exit 1; }
i=0
while [ "$i" -lt "$FILES" ]; do
    yes "$MARKER file $i: a known plaintext the object store must never show" | head -c "$((FILE_MB << 20))" \
        > "$mnt/text$i" || { echo "FAIL write text$i"; exit 1; }
    i=$((i + 1))
done
(cd "$mnt" && md5sum text* > sums)
sync
umount "$mnt"
echo 3 > /proc/sys/vm/drop_caches
mount -t ext4 /dev/nbd0 "$mnt" || { echo "FAIL remount"; exit 1; }
(cd "$mnt" && md5sum -c sums > /dev/null) || { echo "FAIL checksums after remount"; exit 1; }
echo "PASS ext4: $FILES x $FILE_MB MiB of text written, remounted, checksums match"
umount "$mnt"
