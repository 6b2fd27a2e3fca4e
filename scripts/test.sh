#!/usr/bin/env bash
# The whole test suite: clippy, unit tests (with the layering test), replay tests over generated pcaps,
# the benches compiled and run once in test mode, formatting, then a short
# run of every fuzz target (scripts/fuzz.sh; FUZZ_SECONDS per target).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh pkg-config clang llvm libelf-dev libclang-dev zlib1g-dev m4 libbpf-dev iproute2 curl python3 ethtool iputils-ping keepalived tshark tcpdump nftables prometheus systemd openssl util-linux dnsmasq-base bird2
cargo fmt --all -- --check
# Lints as errors (Cargo.toml [lints]: unsafe blocks documented, one
# unsafe operation each); tests/layering.rs checks the module layering.
cargo clippy --all-targets -- -D warnings
cargo test --all-targets 2>&1
(cd fuzz && cargo fmt --all -- --check)
scripts/fuzz.sh "${FUZZ_SECONDS:-25}"
