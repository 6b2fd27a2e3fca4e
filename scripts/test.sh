#!/usr/bin/env bash
# The whole test suite: unit tests, replay tests over generated pcaps,
# the benches compiled and run once in test mode, and formatting.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh pkg-config
cargo fmt --all -- --check
cargo test --all-targets 2>&1
