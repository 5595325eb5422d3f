#!/usr/bin/env bash
# `make install` / `make uninstall`: the binary, the systemd units, the example config, the
# nbdtab example, the documentation and shell completions, under DESTDIR and PREFIX.
#   install.sh install|uninstall BINARY      (env: DESTDIR, PREFIX=/usr/local, SYSCONFDIR=/etc,
#                                              UNITDIR=$PREFIX/lib/systemd/system, MTX_DIR)
# Beside the binary goes blockgate-rsh, the remote shell archive programs are given for the
# drives (rmt); with MTX_DIR, an `mtx` there runs blockgate's changer (docs/tape-tools.md).
set -euo pipefail
action="${1:?usage: $0 install|uninstall BINARY}"
binary="${2:?usage: $0 install|uninstall BINARY}"
root="$(cd "$(dirname "$0")/.." && pwd)"
destdir="${DESTDIR:-}"
prefix="${PREFIX:-/usr/local}"
sysconfdir="${SYSCONFDIR:-/etc}"
unitdir="${UNITDIR:-$prefix/lib/systemd/system}"
bindir="$prefix/bin"
docdir="$prefix/share/doc/blockgate"
mtxdir="${MTX_DIR:-}"
completions=(
    "bash:$prefix/share/bash-completion/completions/blockgate"
    "zsh:$prefix/share/zsh/site-functions/_blockgate"
    "fish:$prefix/share/fish/vendor_completions.d/blockgate.fish"
)
units=(blockgate.service blockgate-objstore.service)

case "$action" in
install)
    install -d "$destdir$bindir" "$destdir$unitdir" "$destdir$docdir" "$destdir$sysconfdir/blockgate"
    install -m 0755 "$binary" "$destdir$bindir/blockgate"
    ln -sf blockgate "$destdir$bindir/blockgate-rsh"
    if [ -n "$mtxdir" ]; then
        install -d "$destdir$mtxdir"
        ln -sf "$bindir/blockgate" "$destdir$mtxdir/mtx"
    fi
    for unit in "${units[@]}"; do
        sed "s|/usr/local/bin/blockgate|$bindir/blockgate|; s|/etc/blockgate/|$sysconfdir/blockgate/|g; s|/usr/local/share/doc/blockgate/|$docdir/|g" \
            "$root/systemd/$unit" > "$destdir$unitdir/$unit"
        chmod 0644 "$destdir$unitdir/$unit"
    done
    install -m 0644 "$root/nbd-config/blockgate.yaml" "$root/nbd-config/nbdtab" "$root/README.md" \
        "$root/docs/cli.md" "$root/docs/tape-format.md" "$root/docs/tape-tools.md" "$root/docs/rmt.md" \
        "$root/nbd-config/bacula-mtx-changer.conf" "$destdir$docdir/"
    # The config is the administrator's once installed: never overwritten.
    config="$destdir$sysconfdir/blockgate/blockgate.yaml"
    [ -e "$config" ] || install -m 0644 "$root/nbd-config/blockgate.yaml" "$config"
    for entry in "${completions[@]}"; do
        shell="${entry%%:*}"; path="$destdir${entry#*:}"
        install -d "$(dirname "$path")"
        "$binary" --generate-completion-script "$shell" > "$path"
        chmod 0644 "$path"
    done
    echo "installed blockgate into ${destdir:-/}: $bindir/blockgate (and blockgate-rsh${mtxdir:+, $mtxdir/mtx}), units in $unitdir, config $sysconfdir/blockgate/blockgate.yaml"
    ;;
uninstall)
    rm -f "$destdir$bindir/blockgate" "$destdir$bindir/blockgate-rsh"
    if [ -n "$mtxdir" ] && [ "$(readlink "$destdir$mtxdir/mtx")" = "$bindir/blockgate" ]; then
        rm -f "$destdir$mtxdir/mtx"
    fi
    for doc in blockgate.yaml nbdtab README.md cli.md tape-format.md tape-tools.md rmt.md bacula-mtx-changer.conf; do
        rm -f "$destdir$docdir/$doc"
    done
    for unit in "${units[@]}"; do rm -f "$destdir$unitdir/$unit"; done
    for entry in "${completions[@]}"; do rm -f "$destdir${entry#*:}"; done
    rmdir "$destdir$docdir" 2>/dev/null || true
    config="$destdir$sysconfdir/blockgate/blockgate.yaml"
    if [ -e "$config" ] && cmp -s "$config" "$root/nbd-config/blockgate.yaml"; then
        rm -f "$config"
        rmdir "$destdir$sysconfdir/blockgate" 2>/dev/null || true
    elif [ -e "$config" ]; then
        echo "kept $config: it differs from the example (remove it by hand if it is no longer wanted)"
    fi
    echo "uninstalled blockgate from ${destdir:-/}"
    ;;
*) echo "usage: $0 install|uninstall BINARY" >&2; exit 2 ;;
esac
