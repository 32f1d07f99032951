#!/usr/bin/env bash
# Builds the four Debian packages — porta-controller, porta-gateway, porta,
# portactl —
# from this workspace with dpkg-deb (no extra tools): binaries, systemd
# units, example configuration, man pages, shell completions, docs, and the
# staff app's menu entry and icons.
#
# Usage: packaging/build-debs.sh [--profile release|debug] [--no-build] [--out DIR]
#   --profile debug packages the test build (used by the packaging test);
#                   it is never built here.
#   --no-build      packages the binaries already built (a release build
#                   made by CI or by hand), without calling cargo.
# The binaries are read from $CARGO_TARGET_DIR/<profile> (default target/).
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=release OUT=target/debian BUILD=yes
PROGRAMS=(porta-controller porta-gateway porta porta-desktop portactl)
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) PROFILE=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --no-build) BUILD=no; shift ;;
        *) echo "usage: $0 [--profile release|debug] [--no-build] [--out DIR]" >&2; exit 2 ;;
    esac
done
BIN=${CARGO_TARGET_DIR:-target}/$PROFILE
if [ "$PROFILE" = release ] && [ "$BUILD" = yes ]; then
    cargo build --release --locked "${PROGRAMS[@]/#/--bin=}"
fi
for program in "${PROGRAMS[@]}"; do
    if [ ! -x "$BIN/$program" ]; then
        echo "build-debs.sh: $BIN/$program is missing: build it first (cargo build --$PROFILE --locked), or leave out --no-build" >&2
        exit 1
    fi
done
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
ARCH=$(dpkg --print-architecture)
mkdir -p "$OUT"
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT

# package NAME DESCRIPTION DEPENDS [RECOMMENDS]
package() {
    local name=$1 description=$2 depends=$3 recommends=${4:-} root=$STAGE/$1
    mkdir -p "$root/DEBIAN" "$root/usr/share/doc/$name"
    cp README.md LICENSE "$root/usr/share/doc/$name/"
    for script in postinst prerm postrm; do
        [ -f "packaging/debian/$name/$script" ] || continue
        # #SYSTEM_USER# stands for the shared fragment that creates the
        # porta system user and a data directory (as #DEBHELPER# would).
        sed -e '/^#SYSTEM_USER#$/{r packaging/debian/system-user.sh' -e 'd}' \
            "packaging/debian/$name/$script" >"$root/DEBIAN/$script"
        chmod 755 "$root/DEBIAN/$script"
    done
    if [ -d "$root/etc" ]; then
        (cd "$root" && find etc -type f -printf '/%p\n') >"$root/DEBIAN/conffiles"
    fi
    local size; size=$(du -ks "$root" | cut -f1)
    cat >"$root/DEBIAN/control" <<CONTROL
Package: $name
Version: $VERSION
Architecture: $ARCH
Maintainer: Porta developers <porta@example.invalid>
Installed-Size: $size${depends:+
Depends: $depends}${recommends:+
Recommends: $recommends}
Section: net
Priority: optional
Homepage: https://example.invalid/porta
Description: $description
CONTROL
    dpkg-deb --root-owner-group --build "$root" "$OUT/${name}_${VERSION}_${ARCH}.deb" >/dev/null
    echo "$OUT/${name}_${VERSION}_${ARCH}.deb"
}

# add_docs PROGRAM ROOT: its man pages (from packaging/man, kept current by
# tests/tests/reference.rs) and its bash, zsh and fish completions.
add_docs() {
    local program=$1 root=$2
    mkdir -p "$root/usr/share/man/man1"
    for page in packaging/man/"$program".1 packaging/man/"$program"-*.1; do
        # porta-*.1 would also match porta-controller's pages.
        [ "$program" = porta ] && case $(basename "$page") in porta-controller* | porta-gateway*) continue ;; esac
        gzip -9n -c "$page" >"$root/usr/share/man/man1/$(basename "$page").gz"
    done
    install -d "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
        "$root/usr/share/fish/vendor_completions.d"
    "$BIN/$program" completions bash >"$root/usr/share/bash-completion/completions/$program"
    "$BIN/$program" completions zsh >"$root/usr/share/zsh/vendor-completions/_$program"
    "$BIN/$program" completions fish >"$root/usr/share/fish/vendor_completions.d/$program.fish"
}

# porta-controller: the controller with its embedded gateway.
root=$STAGE/porta-controller
install -D -m 755 "$BIN/porta-controller" "$root/usr/bin/porta-controller"
install -D -m 644 packaging/systemd/porta-controller.service "$root/lib/systemd/system/porta-controller.service"
install -D -m 644 packaging/etc/controller.toml "$root/etc/porta/controller.toml"
install -D -m 644 packaging/fail2ban/filter.conf "$root/etc/fail2ban/filter.d/porta-controller.conf"
install -D -m 644 packaging/fail2ban/jail.conf "$root/etc/fail2ban/jail.d/porta-controller.conf"
mkdir -p "$root/usr/share/doc/porta-controller" && cp -r docs "$root/usr/share/doc/porta-controller/"
add_docs porta-controller "$root"
package porta-controller "Porta controller: WireGuard keys and peer configurations for a town's remote staff
 The control plane of the Porta VPN (gRPC over TLS, sled store) with its
 embedded WireGuard gateway. Remote gateways are the porta-gateway package." \
    "adduser, iproute2"

# porta-gateway: a remote gateway, on a host of its own.
root=$STAGE/porta-gateway
install -D -m 755 "$BIN/porta-gateway" "$root/usr/bin/porta-gateway"
install -D -m 644 packaging/systemd/porta-gateway.service "$root/lib/systemd/system/porta-gateway.service"
install -D -m 600 packaging/etc/gateway.env "$root/etc/porta/gateway.env"
add_docs porta-gateway "$root"
package porta-gateway "Porta gateway: the town end of staff tunnels, on a host of its own
 A WireGuard gateway (userspace, boringtun) that follows a Porta controller
 elsewhere: it installs the devices the controller allows, filters their
 traffic by group, keeps serving from its last peer set while the
 controller is away, and reports connection events." \
    "adduser, iproute2"

# porta: the staff client.
root=$STAGE/porta
install -D -m 755 "$BIN/porta" "$root/usr/bin/porta"
install -D -m 755 "$BIN/porta-desktop" "$root/usr/bin/porta-desktop"
install -D -m 644 packaging/systemd/porta.service "$root/lib/systemd/system/porta.service"
install -D -m 644 packaging/desktop/porta-desktop.desktop "$root/usr/share/applications/porta-desktop.desktop"
install -D -m 644 packaging/desktop/porta-desktop-autostart.desktop "$root/etc/xdg/autostart/porta-desktop.desktop"
for icon in porta porta-disconnected; do
    install -D -m 644 "packaging/desktop/icons/$icon.svg" "$root/usr/share/icons/hicolor/scalable/apps/$icon.svg"
    for size in 16 24 32 48 64 128 256; do
        install -D -m 644 "packaging/desktop/icons/${size}x${size}/$icon.png" \
            "$root/usr/share/icons/hicolor/${size}x${size}/apps/$icon.png"
    done
done
add_docs porta "$root"
package porta "Porta: connect this computer to the town hall's network
 The staff client of the Porta VPN: a tunnel service (porta.service) that
 holds this computer's key and tunnel; the Porta app (porta-desktop) and
 the porta command drive it without administrator rights for members of
 the porta group. Speaks standard WireGuard; wg show works against it." \
    "adduser, iproute2" \
    "libgl1-mesa-dri, libegl1, libxkbcommon-x11-0, libxcursor1, libxrandr2, libxi6"

# portactl: admin and auditor CLI, with man pages and completions.
root=$STAGE/portactl
install -D -m 755 "$BIN/portactl" "$root/usr/bin/portactl"
add_docs portactl "$root"
package portactl "Porta admin and auditor command line
 Users, groups, enrollment (one or hundreds from CSV), revocation, gateways,
 and the audit logs (export, verify) of a Porta controller." \
    ""
