#!/usr/bin/env bash
# lvsfwd's soak: a bounded reliability run (not in CI). Two lvsfwd directors
# (VRRP MASTER/BACKUP, DR, HTTP_GET checks) in network namespaces
# (lfsoak-<pid>-*, 198.18.0.0/24 only, removed at the end even on failure or
# Ctrl-C), a steady + bursty HTTP load, and on a schedule SIGHUP reloads,
# lvsadm edits, a real server dying and returning, VRRP fail-over and
# fail-back. Writes perf/soak.{json,png} and perf/SOAK.md (runs shorter than
# 30 minutes: perf/soak-short.* and perf/SOAK-SHORT.md).
#
#   perf/soak.sh                 30 minutes
#   perf/soak.sh --minutes 3     a short validation run
#   perf/soak.sh --expire-nodest-conn   the directors with IPVS's
#                                expire_nodest_conn on (keepalived deployments' choice)
#
# Any other lvsperf soak option passes through (lvsperf soak --help). Root.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "perf/soak.sh: run as root" >&2; exit 1; }
scripts/deps.sh pkg-config clang llvm libelf-dev libclang-dev zlib1g-dev m4 libbpf-dev \
  iproute2 python3 fonts-dejavu-core
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --bin lvsfwd --bin lvsadm -p lvsfwd
cargo build --release --bin lvsperf -p lvsfwd-perf
exec "$CARGO_TARGET_DIR/release/lvsperf" soak --out perf --command "perf/soak.sh $*" "$@"
