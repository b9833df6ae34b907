#!/usr/bin/env bash
# The whole test suite, as CI runs it: lints, every crate's unit and integration tests (PHP
# interop included, which must run when CI=true), the end-to-end run of the eight blog pairs, the
# reliability runs (load, faults, hostile input and other users, with their counts), the
# docker compose demo when a Docker engine is reachable (required when CI=true), and a quick
# benchmark whose numbers are printed, never asserted.
set -euo pipefail

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

section() { printf '\n=== %s\n' "$*" >&2; }

section "cargo fmt --check"
cargo fmt --all --check

section "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

section "shellcheck"
shopt -s nullglob
shell_scripts=(scripts/*.sh docker/*.sh .ci/run)
shopt -u nullglob
if command -v shellcheck >/dev/null; then
  shellcheck "${shell_scripts[@]}"
elif [[ ${CI:-} == true ]]; then
  echo "error: shellcheck is required in CI (apt-get install -y shellcheck)" >&2
  exit 1
else
  echo "skipping shellcheck: not installed (apt-get install -y shellcheck)" >&2
fi

section "cargo test"
cargo test --workspace --quiet 2>&1

section "scripts/run-all.sh"
timeout 600 scripts/run-all.sh

section "scripts/reliability.sh (load, faults, hostile input, other users, leaks)"
timeout 900 scripts/reliability.sh

if [[ -x scripts/docker-demo.sh ]]; then
  section "scripts/docker-demo.sh"
  timeout 1200 scripts/docker-demo.sh
fi

if [[ -d crates/bench ]]; then
  section "ipc-bench --quick (numbers are printed, not asserted)"
  timeout 300 cargo run --quiet --release -p bench --bin ipc-bench -- --quick
fi
