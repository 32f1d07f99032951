#!/usr/bin/env bash
# Gateway scale: memory for 10,000 configured peers and the cost of a peer
# removal in Porta's node, beside wireguard-go holding the same 10,000 peers
# (loaded with wg setconf into an interface in a namespace this script
# creates and removes). Needs root for the wireguard-go reference.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/netns.sh
umask 077
WORK=$(mktemp -d)
NS=pbench-gw
cleanup() { netns_remove $NS; rm -f /var/run/wireguard/pbgwref.sock; rm -rf "$WORK"; }
trap cleanup EXIT

cargo bench --locked --quiet -p porta-tests --bench gateway -- "$WORK/peers.conf"

ip netns add $NS
ip netns exec $NS wireguard-go -f pbgwref >/dev/null 2>&1 &
sleep 1
PID=$(pgrep -f "wireguard-go -f pbgwref")
before=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
started=$(date +%s.%N)
ip netns exec $NS wg setconf pbgwref "$WORK/peers.conf"
ended=$(date +%s.%N)
after=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
echo "reference: wireguard-go, the same 10000 peers (wg setconf)"
python3 -c "print('  memory: %.1f MiB for the peers (%.1f KiB each)' % (($after - $before) / 1024, ($after - $before) / 10000))"
python3 -c "print('  configuring all peers: %.0f ms' % (1000 * ($ended - $started)))"
