#!/usr/bin/env bash
# The whole test suite: unit tests, replay tests over generated pcaps,
# the benches compiled and run once in test mode, formatting, then a short
# run of every fuzz target (scripts/fuzz.sh; FUZZ_SECONDS per target).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh pkg-config clang llvm libelf-dev libclang-dev zlib1g-dev m4 libbpf-dev iproute2 curl python3 ethtool iputils-ping keepalived tshark tcpdump nftables
cargo fmt --all -- --check
cargo test --all-targets 2>&1
(cd fuzz && cargo fmt --all -- --check)
scripts/fuzz.sh "${FUZZ_SECONDS:-25}"
