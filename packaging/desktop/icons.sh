#!/bin/sh
# Regenerates the PNG icons from the SVGs (ImageMagick); the PNGs are kept
# in the repository so building the packages needs no image tools.
set -eu
cd "$(dirname "$0")/icons"
for name in porta porta-disconnected; do
    for size in 16 24 32 48 64 128 256; do
        mkdir -p "${size}x${size}"
        convert -background none -density 384 "$name.svg" -resize "${size}x${size}" "${size}x${size}/$name.png"
    done
done
