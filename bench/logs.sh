#!/usr/bin/env bash
# Audit-log scale: export 1,000,000 connection records as CSV and as JSON
# lines through `portactl logs export` (rows per second, peak memory of
# portactl and of the controller), then verify the chain in the controller
# and offline from each file, beside `cat` and `sha256sum` over the same
# CSV file. Everything on 127.0.0.1.
#
# Usage: bench/logs.sh   (RECORDS=1000000 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
umask 077
RECORDS=${RECORDS:-1000000}
WORK=$(mktemp -d)
SERVE=""
cleanup() { [ -n "$SERVE" ] && kill "$SERVE" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

cargo build --release --locked --quiet --bin porta-controller --bin portactl
BIN=$PWD/target/release
"$BIN/porta-controller" init --data "$WORK/data" --api-endpoint 127.0.0.1:7449 \
    --endpoint 127.0.0.1:51899 --no-ipv6 --json >"$WORK/init.json"
echo "filling the store with $RECORDS records…" >&2
APPENDED=$(cargo bench --locked --quiet -p porta-tests --bench logs -- "$WORK/data/store" "$RECORDS")

"$BIN/porta-controller" serve --data "$WORK/data" --listen 127.0.0.1:7449 --no-gateway \
    >"$WORK/serve.log" 2>&1 &
SERVE=$!
sleep 1
"$BIN/portactl" --config "$WORK/p.toml" login \
    "$(python3 -c "import json; print(json.load(open('$WORK/init.json'))['admin_invitation'])")" >/dev/null

# measure LABEL COMMAND...: wall time and the command's peak RSS.
measure() {
    local label=$1; shift
    python3 - "$label" "$@" <<'PY'
import resource, subprocess, sys, time
label, command = sys.argv[1], sys.argv[2:]
started = time.monotonic()
subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
seconds = time.monotonic() - started
peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{label}|{seconds:.2f}|{peak_mib:.0f}")
PY
}

echo
echo "Audit-log scale, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $RECORDS connection records"
echo
echo "| step | seconds | records/s | portactl peak MiB | file |"
echo "|---|---:|---:|---:|---:|"
for format in csv jsonl; do
    out="$WORK/export.$format"
    IFS='|' read -r label seconds peak < <(measure "export $format" \
        "$BIN/portactl" --config "$WORK/p.toml" logs export --kind connections --format $format --out "$out")
    size=$(du -m "$out" | cut -f1)
    rate=$(python3 -c "print('%.0f' % ($RECORDS / $seconds))")
    echo "| export, $format | $seconds | $rate | $peak | ${size} MiB |"
done
# The references: reading the same CSV file, and hashing it.
for reference in cat sha256sum; do
    IFS='|' read -r label seconds peak < <(measure "$reference" $reference "$WORK/export.csv")
    rate=$(python3 -c "print('%.0f' % ($RECORDS / $seconds))")
    echo "| reference: \`$reference\` over the CSV file | $seconds | $rate | | |"
done
for format in csv jsonl; do
    IFS='|' read -r label seconds peak < <(measure "verify $format" \
        "$BIN/portactl" --config "$WORK/p.toml" logs verify --file "$WORK/export.$format")
    rate=$(python3 -c "print('%.0f' % ($RECORDS / $seconds))")
    echo "| verify the $format file offline | $seconds | $rate | $peak | |"
done
IFS='|' read -r label seconds peak < <(measure "verify controller" \
    "$BIN/portactl" --config "$WORK/p.toml" logs verify --kind connections)
rate=$(python3 -c "print('%.0f' % ($RECORDS / $seconds))")
echo "| verify in the controller | $seconds | $rate | | |"
echo
echo "store filled: $APPENDED"
echo "controller peak RSS over the run: $(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' /proc/$SERVE/status)"
