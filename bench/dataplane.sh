#!/usr/bin/env bash
# Data-plane benchmark: one run, same topology, four paths side by side.
#
#   ns "a" (client) ──veth 10.200.0.0/24── ns "b" (server)
#
# Paths: plain veth; Porta client ↔ Porta embedded gateway; wireguard-go ↔
# wireguard-go; boringtun-cli ↔ boringtun-cli. Tunnel MTU 1420 everywhere.
# For each: iperf3 TCP with 1 and 4 streams, both directions
# (iperf3 -t $SECONDS -O 1), ping min/avg, and the CPU the tunnel processes
# used during the iperf3 runs (% of one core, both ends added).
#
# Traffic stays inside the two namespaces this script creates and removes.
# Needs root. Usage: sudo bench/dataplane.sh   (SECONDS_PER_RUN=8 by default;
# PATHS="veth porta" runs a subset of: veth wireguard-go boringtun porta
# porta-portable)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/netns.sh
umask 077 # keys are written below
SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
PATHS=${PATHS:-veth wireguard-go boringtun porta porta-portable}
want() { [[ " $PATHS " == *" $1 "* ]]; }
A=pbench-a B=pbench-b
WORK=$(mktemp -d)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]:-}"; do kill "$pid" 2>/dev/null || true; done
    [ -f "$WORK/iperf.pid" ] && kill "$(cat "$WORK/iperf.pid")" 2>/dev/null || true
    netns_remove $A $B
    rm -f /var/run/wireguard/pb*.sock
    rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "missing $1 ($2)" >&2; exit 1; }; }
need iperf3 "apt-get install iperf3"
need wireguard-go "apt-get install wireguard-go"
need wg "apt-get install wireguard-tools"
if ! command -v boringtun-cli >/dev/null; then
    echo "installing boringtun-cli from crates.io (about a minute)…" >&2
    cargo install boringtun-cli --locked --quiet
fi
cargo build --release --locked --quiet --bin porta --bin porta-controller --bin portactl
BIN=$PWD/target/release

ip netns add $A; ip netns add $B
ip link add pb-a type veth peer name pb-b
ip link set pb-a netns $A; ip link set pb-b netns $B
ip -n $A addr add 10.200.0.1/24 dev pb-a; ip -n $B addr add 10.200.0.2/24 dev pb-b
for ns in $A $B; do ip -n $ns link set lo up; done
ip -n $A link set pb-a up; ip -n $B link set pb-b up
ip netns exec $B iperf3 -s -D -I "$WORK/iperf.pid" --logfile "$WORK/iperf-server.log"
sleep 0.5

cpu_ticks() { # total utime+stime of the given pids, in clock ticks
    local total=0
    for pid in "$@"; do
        [ -r /proc/$pid/stat ] || continue
        local fields; fields=($(sed 's/^.*) //' /proc/$pid/stat))
        total=$((total + fields[11] + fields[12]))
    done
    echo $total
}

# measure NAME SERVER_IP TUNNEL_PIDS...
measure() {
    local name=$1 server=$2; shift 2
    local pids=("$@") results=()
    local before; before=$(cpu_ticks "${pids[@]}")
    local started; started=$(date +%s.%N)
    for args in "-P 1" "-P 4" "-P 1 -R" "-P 4 -R"; do
        local gbps
        gbps=$(ip netns exec $A iperf3 -c "$server" -t "$SECONDS_PER_RUN" -O 1 $args -J \
            | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.2f" % (r["end"]["sum_received"]["bits_per_second"]/1e9) if "error" not in r else "fail")')
        results+=("$gbps")
    done
    local ended; ended=$(date +%s.%N)
    local after; after=$(cpu_ticks "${pids[@]}")
    local cpu="-"
    if [ "${#pids[@]}" -gt 0 ]; then
        cpu=$(python3 -c "print('%.0f%%' % (100 * ($after - $before) / $(getconf CLK_TCK) / ($ended - $started)))")
    fi
    local ping
    # "rtt min/avg/max/mdev = 0.035/0.064/0.101/0.012 ms"
    ping=$(ip netns exec $A ping -q -c 200 -i 0.01 "$server" | awk -F' = ' '/^rtt/ {split($2, v, "/"); printf "%.3f / %.3f", v[1], v[2]}')
    printf "| %-28s | %6s | %6s | %6s | %6s | %-17s | %5s |\n" "$name" "${results[@]}" "$ping" "$cpu"
}

echo
echo "Data-plane benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, iperf3 -t $SECONDS_PER_RUN -O 1, tunnel MTU 1420"
echo
echo "| path                         | 1 → Gb/s | 4 → Gb/s | 1 ← Gb/s | 4 ← Gb/s | ping min / avg ms | CPU |"
echo "|---|---:|---:|---:|---:|---|---:|"

want veth && measure "plain veth" 10.200.0.2

wg genkey > "$WORK/a.key"; wg genkey > "$WORK/b.key"

# wireguard-go ↔ wireguard-go, set up with wg.
if want wireguard-go; then
ip netns exec $A wireguard-go -f pbwga >"$WORK/wga.log" 2>&1 & PIDS+=($!)
ip netns exec $B wireguard-go -f pbwgb >"$WORK/wgb.log" 2>&1 & PIDS+=($!)
sleep 1
WGA_PID=${PIDS[-2]} WGB_PID=${PIDS[-1]}
ip netns exec $B wg set pbwgb private-key "$WORK/b.key" listen-port 51821 peer "$(wg pubkey < "$WORK/a.key")" allowed-ips 10.201.0.1/32
ip netns exec $A wg set pbwga private-key "$WORK/a.key" peer "$(wg pubkey < "$WORK/b.key")" allowed-ips 10.201.0.2/32 endpoint 10.200.0.2:51821
ip -n $A addr add 10.201.0.1/24 dev pbwga; ip -n $B addr add 10.201.0.2/24 dev pbwgb
ip -n $A link set pbwga up mtu 1420; ip -n $B link set pbwgb up mtu 1420
measure "wireguard-go ↔ wireguard-go" 10.201.0.2 $(pgrep -f "wireguard-go -f pbwg")
kill $WGA_PID $WGB_PID 2>/dev/null || true
fi

# boringtun-cli ↔ boringtun-cli (as root it must be told not to drop privileges).
if want boringtun; then
ip netns exec $A boringtun-cli --disable-drop-privileges --foreground pbbta >"$WORK/bta.log" 2>&1 & PIDS+=($!)
ip netns exec $B boringtun-cli --disable-drop-privileges --foreground pbbtb >"$WORK/btb.log" 2>&1 & PIDS+=($!)
sleep 1
ip netns exec $B wg set pbbtb private-key "$WORK/b.key" listen-port 51822 peer "$(wg pubkey < "$WORK/a.key")" allowed-ips 10.203.0.1/32
ip netns exec $A wg set pbbta private-key "$WORK/a.key" peer "$(wg pubkey < "$WORK/b.key")" allowed-ips 10.203.0.2/32 endpoint 10.200.0.2:51822
ip -n $A addr add 10.203.0.1/24 dev pbbta; ip -n $B addr add 10.203.0.2/24 dev pbbtb
ip -n $A link set pbbta up mtu 1420; ip -n $B link set pbbtb up mtu 1420
measure "boringtun-cli ↔ boringtun-cli" 10.203.0.2 $(pgrep -f "boringtun-cli --disable-drop-privileges --foreground pbbt")
pkill -f "boringtun-cli --disable-drop-privileges --foreground pbbt" || true
fi

# Porta client ↔ Porta embedded gateway (the gateway's own tunnel address is
# the target); "porta-portable": the client on the portable data path (one
# packet per system call, no offloads — what Windows and macOS use), the
# gateway on Linux's fast path.
if want porta || want porta-portable; then
ip netns exec $B "$BIN/porta-controller" init --data "$WORK/data" --api-endpoint 10.200.0.2:7443 \
    --endpoint 10.200.0.2:51823 --vpn-prefix 10.202.0.0/24 --no-ipv6 --route 10.202.0.1/32 --json >"$WORK/init.json"
ip netns exec $B "$BIN/porta-controller" serve --data "$WORK/data" --listen 10.200.0.2:7443 \
    --gateway-interface pbgw >"$WORK/serve.log" 2>&1 & PIDS+=($!)
SERVE_PID=${PIDS[-1]}
sleep 1
INVITATION=$(python3 -c "import json; print(json.load(open('$WORK/init.json'))['admin_invitation'])")
ip netns exec $B "$BIN/portactl" --config "$WORK/p.toml" login "$INVITATION" >/dev/null
# porta_laptop NAME DATAPATH: a laptop enrolled and up on DATAPATH, measured.
porta_laptop() {
    local name=$1 datapath=$2 state="$WORK/client-$2"
    local device
    device=$(ip netns exec $B "$BIN/portactl" --config "$WORK/p.toml" --json enroll --user bench \
        --device "bench-$datapath" | python3 -c 'import json,sys; print(json.load(sys.stdin)["invitation"])')
    ip netns exec $A "$BIN/porta" --state "$state" enroll "$device" >/dev/null
    ip netns exec $A env PORTA_DATAPATH="$datapath" "$BIN/porta" --state "$state" --interface pbc \
        up --foreground >"$WORK/up-$datapath.log" 2>&1 & PIDS+=($!)
    local up_pid=$!
    sleep 2
    measure "$name" 10.202.0.1 $(pgrep -f "porta --state $state") $SERVE_PID
    kill "$up_pid"; wait "$up_pid" 2>/dev/null || true
}
if want porta; then porta_laptop "Porta ↔ Porta" fast; fi
if want porta-portable; then porta_laptop "Porta portable ↔ Porta" portable; fi
fi

echo
echo "1/4: streams; →: client sends; ←: server sends (-R). CPU: tunnel processes, both ends, % of one core over the iperf3 runs (plain veth: none)."
