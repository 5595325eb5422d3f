#!/usr/bin/env bash
# Boots a small VM whose kernel nbd driver attaches one export of a running server through a
# virtio-serial port, and runs a scenario script in it.
#   run-guest.sh SOCKET EXPORT SCRIPT [NAME=VALUE ...]
# The script runs under busybox sh with /dev/nbd0 attached; its lines "PASS ...", "FAIL ...",
# "INFO ..." are reported; a FAIL line or a non-zero exit fails the run (exit 1).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ $# -ge 3 ] || { echo "usage: $0 SOCKET EXPORT SCRIPT [NAME=VALUE ...]" >&2; exit 2; }
socket="$(readlink -f "$1")"; export_name="$2"; script="$3"; shift 3
[ -S "$socket" ] || { echo "e2e: no server socket at $socket" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "e2e: needs root (qemu, cpio of host binaries)" >&2; exit 2; }

version="$("$here/guest-kernel.sh")"
cache="${BLOCKGATE_E2E_CACHE:-/var/cache/blockgate-e2e}"
kernel_root="$cache/kernel-$version"
work="$(mktemp -d /tmp/blockgate-e2e.XXXXXX)"
qemu_pid=""; bridge_pid=""
cleanup() {
    [ -n "$bridge_pid" ] && kill "$bridge_pid" 2>/dev/null
    [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null
    wait 2>/dev/null
    [ "${KEEP:-0}" = 1 ] && echo "e2e: kept $work" || rm -rf "$work"
}
trap cleanup EXIT

# The initramfs: busybox, the host's client and filesystem tools with their libraries, modules.
root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,lib/modules,etc,proc,sys,dev,run,tmp,mnt,scenario}
cp "$(command -v busybox)" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"; done
copy_with_libraries() {
    local binary; binary="$(readlink -f "$(command -v "$1")")"
    cp "$binary" "$root/usr/local/bin/$1"
    ldd "$binary" | awk '/=> \// {print $3} /^[[:space:]]*\/.*ld-linux/ {print $1}' | while read -r library; do
        mkdir -p "$root$(dirname "$library")"
        cp -Ln "$library" "$root$library"
    done
}
for tool in nbd-client socat mke2fs mkfs.xfs fstrim; do copy_with_libraries "$tool"; done
ln -s mke2fs "$root/usr/local/bin/mkfs.ext4"
cp /etc/mke2fs.conf "$root/etc/"
for module in virtio_pci virtio_console ext4 xfs; do
    modprobe -d "$kernel_root" -S "$version" --show-depends "$module" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r path; do
    cp "$path" "$root/lib/modules/"
    basename "$path" >> "$root/lib/modules/order"
done
cp "$kernel_root/lib/modules/$version/kernel/drivers/block/nbd.ko" "$root/lib/modules/"
cp "$here/guest/init.sh" "$root/init"
cp "$script" "$root/scenario/script"
{
    printf 'EXPORT=%q\n' "$export_name"
    for assignment in "$@"; do printf '%s=%q\n' "${assignment%%=*}" "${assignment#*=}"; done
} > "$root/scenario/env"
chmod 755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.gz"

accel=(-accel tcg -cpu max)
if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=(-accel kvm -cpu host); fi
start_vm() {
    : > "$work/console"
    qemu-system-x86_64 -nodefaults -no-user-config "${accel[@]}" -smp 1 -m "${E2E_MEM_MB:-1024}" \
        -display none -no-reboot -nic none \
        -kernel "$kernel_root/boot/vmlinuz-$version" -initrd "$work/initrd.gz" \
        -append "console=ttyS0 panic=-1 quiet rdinit=/init" -serial "file:$work/console" \
        -device virtio-serial-pci -chardev "socket,id=port0,path=$work/port.sock,server=on,wait=off" \
        -device virtserialport,chardev=port0,name=nbd > "$work/qemu.log" 2>&1 &
    qemu_pid=$!
}
start_vm
deadline=$((SECONDS + ${E2E_TIMEOUT:-600}))
seen=0; failures=0; done_status=""
while [ -z "$done_status" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then echo "FAIL timeout"; failures=$((failures + 1)); break; fi
    if ! kill -0 "$qemu_pid" 2>/dev/null && ! grep -q '^E2E DONE' "$work/console"; then
        if [ "${accel[1]}" = kvm ] && ! grep -q '^E2E READY' "$work/console"; then
            echo "INFO the guest did not start under KVM; retrying with TCG"
            accel=(-accel tcg -cpu max); start_vm; continue
        fi
        echo "FAIL qemu ended early: $(tail -n 3 "$work/qemu.log" | tr '\n' ' ')"; failures=$((failures + 1)); break
    fi
    total=$(wc -l < "$work/console")
    if [ "$total" -gt "$seen" ]; then
        while IFS= read -r line; do
            line="${line%$'\r'}"
            case "$line" in
                "E2E READY")
                    socat -b 262144 "UNIX-CONNECT:$work/port.sock" "UNIX-CONNECT:$socket" 2> "$work/bridge.log" &
                    bridge_pid=$! ;;
                "E2E DONE "*) done_status="${line#E2E DONE }" ;;
                "E2E FAIL"*|FAIL*) echo "${line#E2E }"; failures=$((failures + 1)) ;;
                "E2E "*|PASS*|INFO*) echo "${line#E2E }" ;;
                *) [ "${VERBOSE:-0}" = 1 ] && echo "  | $line" ;;
            esac
        done < <(sed -n "$((seen + 1)),${total}p" "$work/console")
        seen=$total
    fi
    sleep 0.2
done
if [ "${done_status:-1}" != 0 ] || [ "$failures" -gt 0 ]; then
    echo "--- last guest console lines"; tail -n 30 "$work/console"
    exit 1
fi
exit 0
