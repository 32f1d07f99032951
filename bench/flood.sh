#!/usr/bin/env bash
# Handshake-flood benchmark: what a flood of WireGuard handshake initiations
# (valid MAC1, from one address) does to an established laptop and to a
# laptop that connects mid-flood — Porta's embedded gateway beside
# wireguard-go, in the same run and topology.
#
#   ns "a" (laptop 1, flooder) ──veth 10.210.0.0/24── ns "b" (gateway)
#   ns "c" (laptop 2)          ──veth 10.213.0.0/24──┘  (reaches 10.210.0.2 through b)
#
# For each gateway: laptop 1 is connected first; then the flood runs at
# RATE packets/s for FLOOD_SECONDS. During it laptop 1 pings the gateway's
# tunnel address 100 times a second (loss, average and worst RTT), and after
# 2 s laptop 2 starts (wireguard-go: `wg set`; Porta: `porta up`, which also
# fetches its configuration from the controller) and the time to its first
# ping reply is measured. The flooder reports the rate it achieved.
#
# Traffic stays inside the two namespaces this script creates and removes.
# Needs root. Usage: sudo bench/flood.sh   (RATE=100000 FLOOD_SECONDS=8
# SOURCES=1: the flood comes from this many addresses of ns "a", in turn)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/netns.sh
umask 077 # keys are written below
RATE=${RATE:-100000}
FLOOD_SECONDS=${FLOOD_SECONDS:-8}
SOURCES=${SOURCES:-1}
A=pflood-a B=pflood-b C=pflood-c
WORK=$(mktemp -d)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]:-}"; do kill "$pid" 2>/dev/null || true; done
    netns_remove $A $B $C
    rm -f /var/run/wireguard/pf*.sock
    rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "missing $1 ($2)" >&2; exit 1; }; }
need wireguard-go "apt-get install wireguard-go"
need wg "apt-get install wireguard-tools"
cargo build --release --locked --quiet --bin porta --bin porta-controller --bin portactl
cargo bench --locked --quiet -p porta-tests --bench flood --no-run 2>/dev/null
BIN=$PWD/target/release

ip netns add $A; ip netns add $B; ip netns add $C
ip link add pf-a type veth peer name pf-b
ip link set pf-a netns $A; ip link set pf-b netns $B
ip -n $A addr add 10.210.0.1/24 dev pf-a; ip -n $B addr add 10.210.0.2/24 dev pf-b
ip link add pf-c type veth peer name pf-cb
ip link set pf-c netns $C; ip link set pf-cb netns $B
ip -n $C addr add 10.213.0.1/24 dev pf-c; ip -n $B addr add 10.213.0.2/24 dev pf-cb
for ns in $A $B $C; do ip -n $ns link set lo up; done
ip -n $A link set pf-a up; ip -n $B link set pf-b up; ip -n $C link set pf-c up; ip -n $B link set pf-cb up
ip -n $C route add 10.210.0.0/24 via 10.213.0.2
FLOOD_FROM=()
if [ "$SOURCES" -gt 1 ]; then
    for i in $(seq 1 "$SOURCES"); do
        address=10.210.$((100 + i / 250)).$((i % 250 + 1))
        ip -n $A addr add "$address/32" dev pf-a
        FLOOD_FROM+=("$address")
    done
    ip -n $B route add 10.210.100.0/22 dev pf-b
fi

flood() { # ENDPOINT PUBLIC_KEY: runs the flood in the background, rate to $WORK/rate
    ip netns exec $A cargo bench --locked --quiet -p porta-tests --bench flood -- \
        "$1" "$2" "$RATE" "$FLOOD_SECONDS" "${FLOOD_FROM[@]}" >"$WORK/rate" 2>/dev/null &
    FLOOD_PID=$!
}

# established TARGET: ping statistics over the flood, as "loss% avg max"
established() {
    ip netns exec $A ping -q -i 0.01 -W 1 -w "$((FLOOD_SECONDS - 1))" "$1" 2>/dev/null | python3 -c '
import re, sys
text = sys.stdin.read()
loss = re.search(r"([\d.]+)% packet loss", text).group(1)
rtt = re.search(r"= [\d.]+/([\d.]+)/([\d.]+)/", text)
print("%.1f" % float(loss), *(rtt.groups() if rtt else ("-", "-")))'
}

# first_reply TARGET START_COMMAND...: seconds from starting the laptop to
# its first ping reply (gives up after the flood)
first_reply() {
    local target=$1; shift
    local started; started=$(date +%s.%N)
    "$@"
    while ! ip netns exec $C ping -c 1 -W 0.1 "$target" >/dev/null 2>&1; do
        if python3 -c "import sys; sys.exit(0 if $(date +%s.%N) - $started > $FLOOD_SECONDS else 1)"; then
            echo "none"; return
        fi
    done
    python3 -c "print('%.2f' % ($(date +%s.%N) - $started))"
}

# row NAME TARGET_ESTABLISHED TARGET_NEW ENDPOINT PUBKEY START_LAPTOP2...
row() {
    local name=$1 target=$2 new_target=$3 endpoint=$4 pubkey=$5; shift 5
    ip netns exec $A ping -c 3 -W 1 "$target" >/dev/null # laptop 1 is connected
    flood "$endpoint" "$pubkey"
    sleep 0.5
    established "$target" >"$WORK/established" &
    local ping_pid=$!
    sleep 2
    local new; new=$(first_reply "$new_target" "$@")
    wait $ping_pid
    wait $FLOOD_PID || true
    read -r loss avg max <"$WORK/established"
    printf "| %-22s | %8s | %6s%% | %8s | %8s | %10s |\n" "$name" "$(cat "$WORK/rate")" "$loss" "$avg" "$max" "$new"
}

echo
echo "Handshake-flood benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, flood $RATE initiations/s (valid MAC1) from $SOURCES address(es) for ${FLOOD_SECONDS} s"
echo
echo "| gateway                | flood pkt/s | laptop 1 loss | avg RTT ms | max RTT ms | laptop 2 first reply s |"
echo "|---|---:|---:|---:|---:|---:|"

# wireguard-go gateway, wireguard-go laptops, set up with wg.
for k in gw l1 l2; do wg genkey >"$WORK/$k.key"; done
ip netns exec $B wireguard-go -f pfgw >"$WORK/gw.log" 2>&1 & PIDS+=($!)
ip netns exec $A wireguard-go -f pfl1 >"$WORK/l1.log" 2>&1 & PIDS+=($!)
ip netns exec $C wireguard-go -f pfl2 >"$WORK/l2.log" 2>&1 & PIDS+=($!)
sleep 1
GW_PUB=$(wg pubkey <"$WORK/gw.key")
ip netns exec $B wg set pfgw private-key "$WORK/gw.key" listen-port 51830 \
    peer "$(wg pubkey <"$WORK/l1.key")" allowed-ips 10.212.0.2/32 \
    peer "$(wg pubkey <"$WORK/l2.key")" allowed-ips 10.212.0.3/32
ip -n $B addr add 10.212.0.1/24 dev pfgw; ip -n $B link set pfgw up mtu 1420
ip netns exec $A wg set pfl1 private-key "$WORK/l1.key" peer "$GW_PUB" allowed-ips 10.212.0.1/32 endpoint 10.210.0.2:51830
ip -n $A addr add 10.212.0.2/32 dev pfl1; ip -n $A link set pfl1 up mtu 1420
ip -n $A route add 10.212.0.1/32 dev pfl1
ip -n $C addr add 10.212.0.3/32 dev pfl2; ip -n $C link set pfl2 up mtu 1420
ip -n $C route add 10.212.0.1/32 dev pfl2
start_wg_laptop2() {
    ip netns exec $C wg set pfl2 private-key "$WORK/l2.key" peer "$GW_PUB" allowed-ips 10.212.0.1/32 endpoint 10.210.0.2:51830
}
row "wireguard-go" 10.212.0.1 10.212.0.1 10.210.0.2:51830 "$GW_PUB" start_wg_laptop2
pkill -f "wireguard-go -f pf" || true

# Porta: the embedded gateway in b, two `porta up` laptops in a.
ip netns exec $B "$BIN/porta-controller" init --data "$WORK/data" --api-endpoint 10.210.0.2:7443 \
    --endpoint 10.210.0.2:51831 --vpn-prefix 10.211.0.0/24 --no-ipv6 --route 10.211.0.1/32 --json >"$WORK/init.json"
ip netns exec $B "$BIN/porta-controller" serve --data "$WORK/data" --listen 10.210.0.2:7443 \
    --gateway-interface pfpgw >"$WORK/serve.log" 2>&1 & PIDS+=($!)
sleep 1
INVITATION=$(python3 -c "import json; print(json.load(open('$WORK/init.json'))['admin_invitation'])")
ip netns exec $B "$BIN/portactl" --config "$WORK/p.toml" login "$INVITATION" >/dev/null
for laptop in 1 2; do
    DEVICE=$(ip netns exec $B "$BIN/portactl" --config "$WORK/p.toml" --json enroll --user bench --device "pc$laptop" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["invitation"])')
    ip netns exec $A "$BIN/porta" --state "$WORK/client$laptop" enroll "$DEVICE" >/dev/null
done
PORTA_GW_PUB=$(wg pubkey <"$WORK/data/gateway.key")
ip netns exec $A "$BIN/porta" --state "$WORK/client1" --interface pfpc1 up --foreground >"$WORK/up1.log" 2>&1 & PIDS+=($!)
sleep 2
start_porta_laptop2() {
    ip netns exec $C "$BIN/porta" --state "$WORK/client2" --interface pfpc2 up --foreground >"$WORK/up2.log" 2>&1 &
    PIDS+=($!)
}
row "Porta (embedded)" 10.211.0.1 10.211.0.1 10.210.0.2:51831 "$PORTA_GW_PUB" start_porta_laptop2

echo
echo "Laptop 1: connected before the flood, pings the gateway's tunnel address every 10 ms during it."
echo "Laptop 2 (another address): started 2 s into the flood; seconds to its first reply (\"none\": not within the flood)."
