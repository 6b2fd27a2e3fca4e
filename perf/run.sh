#!/usr/bin/env bash
# lvsfwd's performance harness: builds release binaries, a veth rig in
# network namespaces (lfperf-<pid>-*, 198.18.0.0/15 only, removed at the end
# even on failure), measures the raw AF_XDP forwarder, lvsfwd (DR, NAT) and
# nftables DNAT, and writes perf/README.md, perf/results.json and the plots.
#
#   perf/run.sh            full run (under 10 minutes)
#   perf/run.sh --quick    the reference point, two NICs and latency (1-2 minutes)
#   perf/run.sh --profile  also perf-record the raw forwarder and lvsfwd DR
#                          at their peak (perf/profile-*.txt, *.svg)
#
# Any other lvsperf run option passes through (lvsperf run --help).
# Run as root on a quiet machine: the numbers are only as good as the CPU
# time the tester and the DUT get.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh pkg-config clang llvm libelf-dev libclang-dev zlib1g-dev m4 libbpf-dev \
  iproute2 ethtool nftables conntrack fonts-dejavu-core
if [[ " $* " == *" --profile "* ]]; then
  scripts/deps.sh linux-perf
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --bin lvsfwd -p lvsfwd
cargo build --release --bin lvsperf -p lvsfwd-perf
exec "$CARGO_TARGET_DIR/release/lvsperf" run --out perf --command "perf/run.sh $*" "$@"
