#!/usr/bin/env bash
# Makes sure Debian's guest kernel (with nbd.ko) is unpacked under $BLOCKGATE_E2E_CACHE
# (default /var/cache/blockgate-e2e) and prints its version. The host's own kernel is untouched.
set -euo pipefail
cache="${BLOCKGATE_E2E_CACHE:-/var/cache/blockgate-e2e}"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

package="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
if [ -z "$package" ]; then
    apt-get update -qq
    package="$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
fi
version="${package#linux-image-}"
root="$cache/kernel-$version"
if [ ! -f "$root/boot/vmlinuz-$version" ] || [ ! -f "$root/lib/modules/$version/kernel/drivers/block/nbd.ko" ]; then
    echo "e2e: fetching guest kernel $package" >&2
    download="$(mktemp -d)"
    chown _apt "$download" 2>/dev/null || true
    (cd "$download" && { apt-get download -qq "$package" || { apt-get update -qq && apt-get download -qq "$package"; }; })
    rm -rf "$root"
    mkdir -p "$root"
    dpkg-deb -x "$download"/*.deb "$root"
    rm -rf "$download"
    depmod -b "$root" "$version"
fi
echo "$version"
