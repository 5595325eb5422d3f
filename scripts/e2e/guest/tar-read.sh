# Scenario: read the tar archive at the drive's head (/dev/nbd0) and report its checksum list;
# tar stops at the end of the archive because reads past the end of the tape file are zeros.
mkdir -p out
tar -xf /dev/nbd0 -C out || { echo "FAIL tar -xf /dev/nbd0"; exit 1; }
[ -d out/data ] || { echo "FAIL the archive holds no data directory"; exit 1; }
echo "PASS tar read $(ls out/data | wc -l) files from the drive"
echo "INFO archive-sum=$(cd out && md5sum data/* | md5sum | cut -d' ' -f1)"
