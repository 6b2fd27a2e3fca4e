#!/usr/bin/env bash
# Fuzzing lvsfwd (fuzz/, cargo-fuzz, its own workspace).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Regenerates the seed corpora from the repository (frames captured on a
# veth rig, the example lb.toml files, the seeds' keepalived.conf and
# ipvsadm commands: fuzz/src/bin/seeds.rs), replays every corpus file
# through its target's checks once without libFuzzer, then runs each target
# (default: all) under libFuzzer for SECONDS (default $FUZZ_SECONDS, else
# 25) and prints a summary with the executions of each. A crash fails the
# script; its input is kept in fuzz/artifacts/TARGET/.
#
# The machine needs only the stable toolchain: cargo-fuzz passes -Z flags
# (sanitizer, coverage), which RUSTC_BOOTSTRAP=1 lets stable rustc accept.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-${FUZZ_SECONDS:-25}}"
shift || true
cd "$repo/fuzz"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

# The seed generator is an ordinary build: share the main crate's target
# directory, where lvsfwd is already built for the tests.
seeds_target="${CARGO_TARGET_DIR:-$repo/target}"
CARGO_TARGET_DIR="$seeds_target" cargo run -q --bin seeds
CARGO_TARGET_DIR="$seeds_target" cargo run -q --bin seeds -- --check 2>&1 | grep -v '^check '

# The instrumented build always lives in fuzz/target, whatever target
# directory the tests use.
fuzz() { env -u CARGO_TARGET_DIR cargo fuzz "$@"; }
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(fuzz list | grep -vx seeds)
fi
fuzz build
summary=()
for t in "${targets[@]}"; do
  log="$(mktemp)"
  echo "fuzz: $t for ${secs}s" >&2
  if ! fuzz run "$t" "corpus/$t" -- \
      -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
      >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $t FAILED (input in fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  execs="$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')"
  corpus="$(ls "corpus/$t" | wc -l)"
  cov="$(grep -E '^#[0-9]+' "$log" | tail -n1 | grep -o 'cov: [0-9]*' || true)"
  summary+=("$t: ${execs:-?} executions in ${secs}s, corpus $corpus inputs, ${cov:-cov ?}")
  rm -f "$log"
done
echo "fuzz summary:"
printf '  %s\n' "${summary[@]}"
