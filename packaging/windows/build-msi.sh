#!/usr/bin/env bash
# Builds porta.msi on Linux: porta.exe and porta-desktop.exe for
# x86_64-pc-windows-gnu, Wintun's DLL (fetch-wintun.sh), then msitools'
# wixl over porta.wxs.
#
#   packaging/windows/build-msi.sh [OUT_DIR] [--release]
#
# Needs: rustup target add x86_64-pc-windows-gnu, apt-get install
# gcc-mingw-w64-x86-64 wixl (.ci/run installs them). The Windows builds
# use their own target directory (target/windows, or $CARGO_TARGET_DIR).
#
# For tests: PORTA_MSI_VERSION overrides the version (an upgrade needs a
# higher one); PORTA_MSI_START_AT_INSTALL=no leaves starting the service
# out of the package (Wine's msiexec cannot do it, see porta.wxs).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
out="$(realpath -m "${1:-$here/target/msi}")"
profile=debug
release=()
if [ "${2:-}" = "--release" ]; then
    profile=release
    release=(--release)
fi
target=x86_64-pc-windows-gnu
target_dir="${CARGO_TARGET_DIR:-$here/target/windows}"
mkdir -p "$out"

cargo build --locked --target "$target" "${release[@]}" \
    --manifest-path "$here/Cargo.toml" --target-dir "$target_dir" \
    -p porta-client --bin porta -p porta-desktop --bin porta-desktop
"$here/packaging/windows/fetch-wintun.sh" "$here/target/wintun"

version="${PORTA_MSI_VERSION:-}"
[ -n "$version" ] || version="$(cargo metadata --no-deps --format-version 1 --manifest-path "$here/Cargo.toml" \
    | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="porta-client"))')"
# wixl wants Source paths relative to where it runs.
cd "$here"
wixl --arch x64 \
    -D Version="$version" \
    -D StartAtInstall="${PORTA_MSI_START_AT_INSTALL:-yes}" \
    -D Bin="$(realpath --relative-to=. "$target_dir/$target/$profile")" \
    -D Wintun="$(realpath --relative-to=. target/wintun)" \
    -D Top=. \
    -o "$out/porta-$version-x64.msi" \
    packaging/windows/porta.wxs
echo "$out/porta-$version-x64.msi"
