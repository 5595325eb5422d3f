#!/usr/bin/env bash
# Installs the Debian packages a target needs, only those missing.
#   scripts/install-deps.sh build|test|e2e|bench
set -euo pipefail

build=(liburing-dev libsqlite3-dev libzstd-dev liblz4-dev libisal-dev pkg-config)
test=(libnbd-dev libnbd-bin python3-libnbd nbdkit qemu-utils python3-venv systemd curl openssl zstd
      bacula-sd amanda-server libencode-locale-perl tar cpio dump e2fsprogs mount)
e2e=(qemu-system-x86 socat nbd-client busybox-static e2fsprogs xfsprogs util-linux cpio gzip kmod dash tar)
bench=(fio nbdkit qemu-utils s3backer linux-source xz-utils)

case "${1:-}" in
    build) wanted=("${build[@]}") ;;
    test) wanted=("${build[@]}" "${test[@]}") ;;
    e2e) wanted=("${build[@]}" "${test[@]}" "${e2e[@]}") ;;
    bench) wanted=("${build[@]}" "${test[@]}" "${bench[@]}") ;;
    *) echo "usage: $0 build|test|e2e|bench" >&2; exit 2 ;;
esac

missing=()
for package in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
install_moto() {
    # moto_server, the second S3 implementation the object-store tests run against, and what the
    # second reader of the object format (scripts/object-format) needs, in a virtual environment
    # of the repository (Debian's python3 refuses system-wide pip installs).
    local root; root="$(cd "$(dirname "$0")/.." && pwd)"
    if ! "$root/.venv/bin/python3" -c 'import moto.server, flask, flask_cors, cryptography, zstandard, lz4.block' \
        2>/dev/null; then
        echo "install-deps: installing moto[server], zstandard and lz4 into .venv"
        /usr/bin/python3 -m venv "$root/.venv"
        "$root/.venv/bin/pip" install --quiet 'moto[server]' zstandard lz4
    fi
}

if [ ${#missing[@]} -eq 0 ]; then
    [ "$1" = build ] || install_moto
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3 4 5; do
    if $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
        [ "$1" = build ] || install_moto
        exit 0
    fi
    echo "install-deps: apt failed (attempt $attempt), retrying in 10s" >&2
    sleep 10
done
exit 1
