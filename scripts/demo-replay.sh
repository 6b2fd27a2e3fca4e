#!/usr/bin/env bash
# The demo: client connections through lvsfwd's real data plane, replayed
# from a capture, showing which real server took each connection.
# Usage: scripts/demo.sh [CONFIG]   (default configs/demo.toml)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh pkg-config clang llvm libelf-dev libclang-dev zlib1g-dev m4 libbpf-dev iproute2 curl
config=${1:-configs/demo.toml}
cargo build --release -q --bin lvsfwd --example replay_demo
target/release/examples/replay_demo target/release/lvsfwd "$config"
