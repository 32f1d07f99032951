#!/usr/bin/env bash
# Porta in five minutes, on one Linux box, as root: a town hall (controller
# with its gateway), a town server and a staff laptop, each in its own
# network namespace. The laptop enrolls and reaches the server; IT revokes
# it and it is cut off; the auditor's connection log shows what happened.
# Everything it creates is removed when it ends.
#
#   home (laptop) ──10.98.1.0/24── town (porta-controller) ──10.98.2.0/24── lan (server)
#
# Usage: sudo scripts/demo.sh   (PORTA_BIN=dir with the three binaries;
#        default: builds them with cargo --release)
set -euo pipefail
cd "$(dirname "$0")/.."
umask 077
[ "$(id -u)" = 0 ] || { echo "run as root: sudo $0" >&2; exit 1; }
for tool in ip python3; do command -v $tool >/dev/null || { echo "missing $tool" >&2; exit 1; }; done
if [ -z "${PORTA_BIN:-}" ]; then
    cargo build --release --locked --quiet --bin porta-controller --bin porta --bin portactl
    PORTA_BIN=$PWD/target/release
fi
. scripts/lib/netns.sh
TAG=pdemo$$
HOME_NS=$TAG-home TOWN=$TAG-town LAN=$TAG-lan
# The tag is in the work directory's name too, so every process of the run
# (all started inside the namespaces) can be found by it.
WORK=$(mktemp -d -t "$TAG.XXXXXX")
cleanup() {
    netns_remove $HOME_NS $TOWN $LAN
    rm -f /var/run/wireguard/${TAG}*.sock
    rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
portactl() { in_ns $TOWN "$PORTA_BIN/portactl" --config "$WORK/portactl.toml" "$@"; }
porta() { in_ns $HOME_NS "$PORTA_BIN/porta" --state "$WORK/laptop" --interface ${TAG}c --socket "$WORK/run/porta.sock" "$@"; }
fetch() { # fetch URL: print the first line of the page, or fail within 3 s
    in_ns $HOME_NS python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode().splitlines()[0])' "$1"
}

step "Building the little internet: home, town, lan"
for ns in $HOME_NS $TOWN $LAN; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add ${TAG}h type veth peer name ${TAG}t1
ip link add ${TAG}l type veth peer name ${TAG}t2
ip link set ${TAG}h netns $HOME_NS; ip link set ${TAG}t1 netns $TOWN
ip link set ${TAG}l netns $LAN; ip link set ${TAG}t2 netns $TOWN
ip -n $HOME_NS addr add 10.98.1.2/24 dev ${TAG}h; ip -n $TOWN addr add 10.98.1.1/24 dev ${TAG}t1
ip -n $LAN addr add 10.98.2.2/24 dev ${TAG}l; ip -n $TOWN addr add 10.98.2.1/24 dev ${TAG}t2
for pair in "$HOME_NS ${TAG}h" "$TOWN ${TAG}t1" "$LAN ${TAG}l" "$TOWN ${TAG}t2"; do set -- $pair; ip -n "$1" link set "$2" up; done
ip -n $LAN route add 10.77.0.0/16 via 10.98.2.1
in_ns $TOWN sysctl -qw net.ipv4.ip_forward=1
mkdir -p "$WORK/www"; echo "Ajuntament: expedients, GIS, fitxers — you are inside the town network" >"$WORK/www/index.html"
in_ns $LAN python3 -m http.server 8080 --bind 10.98.2.2 --directory "$WORK/www" >/dev/null 2>&1 &

step "Town hall: porta-controller init, then serve (API + embedded WireGuard gateway)"
in_ns $TOWN "$PORTA_BIN/porta-controller" init --data "$WORK/town" --endpoint 10.98.1.1:51820 \
    --api-endpoint 10.98.1.1:7443 --no-ipv6 --json >"$WORK/init.json"
in_ns $TOWN "$PORTA_BIN/porta-controller" serve --data "$WORK/town" --listen 10.98.1.1:7443 \
    --gateway-interface ${TAG}gw >"$WORK/serve.log" 2>&1 &
ADMIN=$(python3 -c "import json; print(json.load(open('$WORK/init.json'))['admin_invitation'])")
for _ in $(seq 50); do portactl login "$ADMIN" >/dev/null 2>&1 && break; sleep 0.2; done
portactl whoami

step "IT admin: a group for the town server, and an invitation for Anna's laptop"
portactl groups add lan --description "Town servers" >/dev/null
portactl groups allow lan 10.98.2.0/24 --proto tcp --ports 8080 >/dev/null
INVITATION=$(portactl --json enroll --user anna --device anna-laptop --groups lan \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["invitation"])')
echo "invitation for Anna: ${INVITATION:0:32}…"

step "Anna, at home: the Porta service runs; porta enroll, porta up"
porta daemon >"$WORK/daemon.log" 2>&1 &
for _ in $(seq 50); do [ -S "$WORK/run/porta.sock" ] && break; sleep 0.2; done
porta enroll "$INVITATION"
porta up
for _ in $(seq 50); do porta status --json 2>/dev/null | grep -q '"last_handshake":[0-9]' && break; sleep 0.2; done
porta status
echo; echo "Anna opens the town server:"
fetch http://10.98.2.2:8080/

step "IT revokes the laptop"
portactl devices revoke anna-laptop --yes
for _ in $(seq 50); do porta status --json 2>/dev/null | grep -q '"state":"revoked"' && break; sleep 0.2; done
echo "Anna's screen says: $(porta status | sed -n 2p | sed 's/^ *//')"
if fetch http://10.98.2.2:8080/ >/dev/null 2>&1; then echo "unexpected: the server is still reachable" >&2; exit 1; fi
echo "The town server is unreachable from the laptop now."

step "Auditor: the connection log (CSV), and its hash chain verified"
for _ in $(seq 20); do portactl logs export --kind connections | grep -q session_end && break; sleep 0.5; done
# (the BOM is for Excel; columns: sequence, kind, at, user, device, from, bytes in/out, reason)
table() { if command -v column >/dev/null; then column -s, -t; else cat; fi; }
portactl logs export --kind connections | sed '1s/^\xEF\xBB\xBF//' | cut -d, -f1,3-6,8,12-14 | table
portactl logs verify

step "Done; cleaning up the namespaces"
