#!/usr/bin/env bash
# A city's fleet: 50,000 devices on the embedded and two remote gateways,
# 2,000 watching; enrollment rate, revoke → confirmed by every gateway,
# controller memory and restart time, beside the disk's durable-write cost.
# Root (the gateways create TUN devices); everything on 127.0.0.1.
# Usage: sudo bench/fleet.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin porta-controller --bin porta-gateway
cargo bench --locked -p porta-tests --bench fleet
