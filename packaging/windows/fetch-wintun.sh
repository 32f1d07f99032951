#!/usr/bin/env bash
# Fetches Wintun's signed DLL (amd64) and its licence into DIR (default
# target/wintun), for the MSI.
#
# Where it comes from: Wintun 0.14.1, the signed build WireGuard LLC
# publishes at https://www.wintun.net/builds/wintun-0.14.1.zip. The
# crates.io package `wintun` 0.5.1 carries that build's DLLs unmodified
# with the Prebuilt Binaries License, and crates.io is a registry this
# project already trusts; both the package and the DLL are pinned by
# SHA-256 (the DLL's hash is that of the official zip's
# bin/amd64/wintun.dll). The licence allows shipping the DLL unmodified
# beside software that uses it only through wintun.h's API, as tun-rs
# does.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$here/target/wintun}"
crate_sha=da99be64b5aa3de869c16977994314d0759a698d9a73ab0a5b1d52e2282033ae
dll_sha=e5da8447dc2c320edc0fc52fa01885c103de8c118481f683643cacc3220dafce

if [ -f "$out/wintun.dll" ] && echo "$dll_sha  $out/wintun.dll" | sha256sum -c --quiet 2>/dev/null; then
    exit 0
fi
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
curl -sSfL --retry 3 -o "$work/wintun.crate" https://static.crates.io/crates/wintun/wintun-0.5.1.crate
echo "$crate_sha  $work/wintun.crate" | sha256sum -c --quiet
tar -xzf "$work/wintun.crate" -C "$work" wintun-0.5.1/wintun/bin/amd64/wintun.dll wintun-0.5.1/wintun/LICENSE.txt
echo "$dll_sha  $work/wintun-0.5.1/wintun/bin/amd64/wintun.dll" | sha256sum -c --quiet
cp "$work/wintun-0.5.1/wintun/bin/amd64/wintun.dll" "$work/wintun-0.5.1/wintun/LICENSE.txt" "$out/"
