# Scenario: mount the filesystem ($FS) fs-fill.sh left on /dev/nbd0 and check its files
# against the checksums it stored.
mnt=/mnt/volume
mkdir -p "$mnt"
mount -t "$FS" /dev/nbd0 "$mnt" || { echo "FAIL mount"; exit 1; }
(cd "$mnt" && md5sum -c sums > /dev/null) || { echo "FAIL checksums"; exit 1; }
echo "PASS $FS: $(wc -l < "$mnt/sums") files match their checksums"
umount "$mnt"
