# Scenario: write one tar archive of $FILES random files to the tape drive at /dev/nbd0, as a
# backup to a no-rewind tape device does, and report the archive's checksum list.
mkdir -p data
i=0
while [ "$i" -lt "$FILES" ]; do
    dd if=/dev/urandom of="data/file$i" bs=4096 count=$((64 + i * 37)) 2>/dev/null || { echo "FAIL make file$i"; exit 1; }
    i=$((i + 1))
done
tar -cf /dev/nbd0 data || { echo "FAIL tar -cf /dev/nbd0"; exit 1; }
sync
echo "PASS tar wrote $(du -sk data | cut -f1) KiB in $FILES files to the drive"
echo "INFO archive-sum=$(md5sum data/* | md5sum | cut -d' ' -f1)"
