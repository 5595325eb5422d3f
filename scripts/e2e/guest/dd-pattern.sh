# Scenario: direct-I/O writes of offset-tagged blocks at scattered offsets (inside chunks and
# across chunk boundaries), read back directly and compared.
size=$(( $(cat /sys/block/nbd0/size) * 512 ))
for offset_kib in 0 4 1020 1024 4092 65536 $((size / 1024 - 64)); do
    rm -f pattern back
    i=0
    while [ "$i" -lt 16 ]; do printf 'blockgate-e2e offset=%012d line=%04d\n' "$offset_kib" "$i" >> pattern; i=$((i + 1)); done
    while [ "$(wc -c < pattern)" -lt 65536 ]; do cat pattern pattern > pattern2; mv pattern2 pattern; done
    head -c 65536 pattern > block && mv block pattern
    dd if=pattern of=/dev/nbd0 bs=4096 seek=$((offset_kib / 4)) oflag=direct conv=notrunc 2>/dev/null \
        || { echo "FAIL write at ${offset_kib}K"; exit 1; }
    dd if=/dev/nbd0 of=back bs=4096 skip=$((offset_kib / 4)) count=16 iflag=direct 2>/dev/null \
        || { echo "FAIL read at ${offset_kib}K"; exit 1; }
    cmp -s pattern back || { echo "FAIL data differs at ${offset_kib}K"; exit 1; }
done
echo "PASS direct-I/O patterns at 7 offsets read back intact"
