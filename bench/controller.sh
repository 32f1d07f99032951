#!/usr/bin/env bash
# Controller benchmark: enrollments per second and revoke → stream-end delay
# with 1,000 devices watching, beside the disk's durable-write cost.
# Everything runs on 127.0.0.1. Usage: bench/controller.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin porta-controller
cargo bench --locked -p porta-tests --bench controller
