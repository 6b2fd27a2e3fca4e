#!/usr/bin/env bash
# Installs what building and testing lvsfwd needs on a fresh Debian machine.
# Idempotent: installs only what is missing.
set -euo pipefail

need_apt=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: lvsfwd needs a Rust toolchain (rustup) on PATH" >&2
  exit 1
fi
