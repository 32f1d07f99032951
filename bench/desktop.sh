#!/usr/bin/env bash
# Idle cost of the staff app: porta-desktop's CPU and memory while its
# window sits open, beside ImageMagick's `display` showing a still image of
# the same size in the same X server (a plain X11 program that does nothing
# once drawn) — same run, same machine.
#
# Usage: bench/desktop.sh [SOCKET] [SECONDS]
#   SOCKET: a running `porta daemon`'s socket (its status stream wakes the
#   app every 2 s while connected); default: none, so the app looks for
#   the service every 2 s, the same cadence.
# Needs xvfb, imagemagick and a built porta-desktop (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
socket=${1:-/nonexistent/porta.sock}
seconds=${2:-60}
app=target/release/porta-desktop
[ -x "$app" ] || app=target/debug/porta-desktop
export LIBGL_ALWAYS_SOFTWARE=1

measure() { # NAME COMMAND…: runs it in its own X server, prints its figures
    local name=$1; shift
    xvfb-run -a -s "-screen 0 1024x768x24" bash -c '
        "$@" >/dev/null 2>&1 & pid=$!
        sleep 5
        ticks() { awk "{print \$14 + \$15}" /proc/$pid/stat; }
        before=$(ticks); sleep '"$seconds"'; after=$(ticks)
        hz=$(getconf CLK_TCK)
        rss=$(awk "/VmRSS/ {print \$2}" /proc/$pid/status)
        # Mesa'"'"'s software renderer (llvmpipe: libLLVM and the DRI driver) is
        # file-backed, shared, and absent where a GPU driver renders.
        gl=$(awk "/^[0-9a-f]+-/ {gl = (\$6 ~ /libLLVM|_dri\\.so/)} /^Rss:/ && gl {s += \$2} END {print s + 0}" /proc/$pid/smaps)
        awk -v n="'"$name"'" -v t=$((after - before)) -v hz="$hz" -v s='"$seconds"' -v rss="$rss" -v gl="$gl" \
            "BEGIN { printf \"%-22s CPU %5.2f %%   RSS %6.1f MiB   without Mesa llvmpipe %6.1f MiB\n\", n, 100 * t / hz / s, rss / 1024, (rss - gl) / 1024 }"
        kill $pid
    ' _ "$@"
}

echo "idle for ${seconds} s after 5 s of start-up ($(nproc) cores, Xvfb, Mesa llvmpipe)"
measure "porta-desktop" "$app" --socket "$socket"
measure "display (reference)" display -size 480x640 xc:white
