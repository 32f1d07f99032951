#!/bin/sh
# screenshot.sh OUT [porta-desktop args…]: porta-desktop's window as a PNG,
# once it has settled. Run under xvfb-run; PORTA_DESKTOP is the binary.
out=$1; shift
"$PORTA_DESKTOP" "$@" & app=$!
win=$(timeout 30 xdotool search --sync --onlyvisible --name '^Porta$' | head -1)
[ -n "$win" ] || { kill $app; echo "no window" >&2; exit 1; }
sleep "${SETTLE:-2}"
import -window "$win" "$out"; status=$?
kill $app; wait $app 2>/dev/null
exit $status
