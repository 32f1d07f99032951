#!/usr/bin/env bash
# Revocation delay: from `portactl devices revoke` to the gateway dropping
# the device's packets, with $PEERS other devices configured on it.
#
#   ns "a" (laptop: wireguard-go, set up from `porta export-wg`)
#      ──veth 10.210.0.0/24──  ns "b" (porta-controller serve + embedded gateway)
#
# The laptop is wireguard-go on purpose: it does not watch the controller,
# so what stops its traffic is the gateway dropping the peer, nothing else.
# It pings the gateway's tunnel address every 2 ms (ping -D timestamps each
# reply); the delay is the last reply's time minus the time just before
# portactl started. Repeated $ROUNDS times with a fresh device each round.
#
# Traffic stays inside the two namespaces this script creates and removes.
# Needs root. Usage: sudo bench/revoke.sh   (PEERS=200 ROUNDS=5 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/netns.sh
umask 077
PEERS=${PEERS:-200}
ROUNDS=${ROUNDS:-5}
A=prevoke-a B=prevoke-b
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do kill "$pid" 2>/dev/null || true; done
    netns_remove $A $B
    rm -f /var/run/wireguard/prv*.sock
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in wireguard-go wg wg-quick ping; do
    command -v $tool >/dev/null || { echo "missing $tool (apt-get install wireguard-go wireguard-tools iputils-ping)" >&2; exit 1; }
done
cargo build --release --locked --quiet --bin porta --bin porta-controller --bin portactl
BIN=$PWD/target/release

ip netns add $A; ip netns add $B
ip link add prv-a type veth peer name prv-b
ip link set prv-a netns $A; ip link set prv-b netns $B
ip -n $A addr add 10.210.0.1/24 dev prv-a; ip -n $B addr add 10.210.0.2/24 dev prv-b
for ns in $A $B; do ip -n $ns link set lo up; done
ip -n $A link set prv-a up; ip -n $B link set prv-b up

ip netns exec $B "$BIN/porta-controller" init --data "$WORK/data" --api-endpoint 10.210.0.2:7443 \
    --endpoint 10.210.0.2:51830 --vpn-prefix 10.211.0.0/16 --no-ipv6 --route 10.211.0.1/32 --json >"$WORK/init.json"
ip netns exec $B "$BIN/porta-controller" serve --data "$WORK/data" --listen 10.210.0.2:7443 \
    --gateway-interface prvgw >"$WORK/serve.log" 2>&1 & PIDS+=($!)
sleep 1
ctl() { ip netns exec $B "$BIN/portactl" --config "$WORK/p.toml" --json --yes "$@"; }
ip netns exec $B "$BIN/portactl" --config "$WORK/p.toml" login \
    "$(python3 -c "import json; print(json.load(open('$WORK/init.json'))['admin_invitation'])")" >/dev/null

# enroll NAME: a device enrolled with `porta enroll` (its key made in $WORK/NAME).
enroll() {
    local invitation
    invitation=$(ctl enroll --user bench --device "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["invitation"])')
    ip netns exec $A "$BIN/porta" --state "$WORK/$1" enroll "$invitation" >/dev/null
}

echo "enrolling $PEERS other devices…" >&2
for i in $(seq 1 "$PEERS"); do enroll "other-$i"; done

ip netns exec $A wireguard-go -f prvc >"$WORK/wg.log" 2>&1 & PIDS+=($!)
sleep 1
delays=() returns=()
for round in $(seq 1 "$ROUNDS"); do
    enroll "laptop-$round"
    ip netns exec $A "$BIN/porta" --state "$WORK/laptop-$round" export-wg >"$WORK/laptop.conf"
    address=$(awk -F' = ' '/^Address/ {print $2}' "$WORK/laptop.conf" | cut -d, -f1)
    ip netns exec $A wg setconf prvc <(wg-quick strip "$WORK/laptop.conf")
    ip -n $A addr flush dev prvc
    ip -n $A addr add "$address" dev prvc
    ip -n $A link set prvc up mtu 1420
    ip -n $A route replace 10.211.0.1/32 dev prvc
    ip netns exec $A ping -c 2 -W 2 10.211.0.1 >/dev/null || { echo "round $round: no tunnel" >&2; exit 1; }

    ip netns exec $A ping -D -i 0.002 10.211.0.1 >"$WORK/ping.log" 2>&1 & PING=$!
    sleep 1
    started=$(date +%s.%N)
    ctl devices revoke "laptop-$round" >"$WORK/revoke.json"
    returned=$(date +%s.%N)
    sleep 1
    kill $PING; wait $PING 2>/dev/null || true
    last=$(grep -o '^\[[0-9.]*\]' "$WORK/ping.log" | tail -1 | tr -d '[]')
    delays+=("$(python3 -c "print('%.1f' % (1000 * ($last - $started)))")")
    returns+=("$(python3 -c "print('%.1f' % (1000 * ($returned - $started)))")")
done

echo
echo "Revocation delay, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $PEERS other peers on the gateway, $ROUNDS rounds"
echo
echo "| | each round, ms | median ms |"
echo "|---|---|---:|"
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
echo "| revoke started → last packet through the gateway | ${delays[*]} | $(median "${delays[@]}") |"
echo "| revoke started → portactl returned (gateway confirmed) | ${returns[*]} | $(median "${returns[@]}") |"
echo
echo "The first row includes starting portactl (a process, TLS, one RPC); pings are 2 ms apart."
