#!/usr/bin/env bash
# Bulk enrollment from a spreadsheet: `portactl enroll --csv` with $ROWS
# rows (new staff, two groups each) against a controller already holding
# $EXISTING devices, beside the disk's durable-write rate (each row is two
# acknowledged writes: the user, then the token). Everything on 127.0.0.1.
# Usage: bench/enroll-csv.sh   (ROWS=5000 EXISTING=5000 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-5000}
EXISTING=${EXISTING:-5000}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]:-}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
cargo build --release --locked --quiet --bin porta-controller --bin portactl
BIN=$PWD/target/release
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN/porta-controller" init --data "$WORK/data" --api-endpoint 127.0.0.1:$PORT --endpoint 127.0.0.1:51820 --json >"$WORK/init.json"
"$BIN/porta-controller" serve --data "$WORK/data" --listen 127.0.0.1:$PORT --no-gateway --log-level warn & PIDS+=($!)
sleep 1
ctl() { "$BIN/portactl" --config "$WORK/p.toml" --yes "$@"; }
ctl login "$(python3 -c "import json; print(json.load(open('$WORK/init.json'))['admin_invitation'])")" >/dev/null
for g in staff gis; do ctl groups add $g >/dev/null; done

# Devices already there (enrolled tokens are what the peer set holds once
# redeemed; tokens are enough to load the store): one CSV run, not timed.
python3 - "$WORK/existing.csv" "$EXISTING" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("user,device,groups\n")
    for i in range(int(sys.argv[2])):
        f.write(f"old{i // 10},old{i}-pc,staff\n")
PY
ctl enroll --csv "$WORK/existing.csv" --out "$WORK/existing-out.csv" >/dev/null 2>&1

python3 - "$WORK/staff.csv" "$ROWS" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("user,device,groups,display_name,email\n")
    for i in range(int(sys.argv[2])):
        f.write(f"new{i},new{i}-laptop,staff;gis,Persona {i},new{i}@example.invalid\n")
PY
started=$(date +%s.%N)
ctl enroll --csv "$WORK/staff.csv" --out "$WORK/invitations.csv" >/dev/null 2>&1
ended=$(date +%s.%N)
rows=$(($(wc -l <"$WORK/invitations.csv") - 1))

# Reference: durable writes on the same disk (write + fdatasync), sequential.
python3 - "$WORK/ref" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
n = 300
t = time.time()
for i in range(n):
    os.pwrite(fd, b"x" * 256, i * 4096)
    os.fdatasync(fd)
per = (time.time() - t) / n
print(f"reference: durable write (pwrite + fdatasync) on this disk  {per*1000:.2f} ms → ≤ {1/per:.0f} sequential writes/s, ≤ {0.5/per:.0f} two-write rows/s")
PY
python3 -c "print('portactl enroll --csv: %d rows in %.1f s → %.0f rows/s (store held $EXISTING other tokens)' % ($rows, $ended - $started, $rows / ($ended - $started)))"
