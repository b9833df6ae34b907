#!/usr/bin/env bash
# The whole test suite, as CI runs it: lints, every crate's unit and integration tests (PHP
# interop included, which must run when CI=true), the end-to-end run of the eight blog pairs, the
# reliability runs (load, faults, the contract's generated schedules and attackers, hostile
# input and other users, with their counts), the docker compose demo when a Docker engine is
# reachable (required when CI=true), and a quick benchmark whose numbers are printed, never
# asserted.
#
# It ends with a summary: each section ran, or was skipped and why (with the command that
# installs what was missing), and every kind of test that skipped inside cargo test (no PHP, not
# root), so a green run cannot hide a suite that did not run.
set -euo pipefail

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

summary=()
current=
skip_log=$(mktemp /tmp/ipc-test-skips.XXXXXX)
export TEST_SKIP_LOG=$skip_log

section() {
  current=$*
  printf '\n=== %s\n' "$*" >&2
}
ran() { summary+=("ran      $current"); }
skipped() { summary+=("SKIPPED  $current: $*"); }

print_summary() {
  local status=$?
  {
    printf '\n=== summary\n'
    printf '%s\n' "${summary[@]}"
    if ((status != 0)); then
      printf 'FAILED   %s (exit %s)\n' "$current" "$status"
    fi
    if [[ -s $skip_log ]]; then
      echo "tests that skipped inside cargo test (each kind once):"
      sort "$skip_log" | uniq -c | sed 's/^ */  /'
    fi
  } >&2
  rm -f -- "$skip_log"
}
trap print_summary EXIT
# Without these, a killed run would skip the EXIT trap and leave the skip log in /tmp.
trap 'exit 130' INT
trap 'exit 143' TERM

section "cargo fmt --check"
cargo fmt --all --check
ran

section "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
ran

section "shellcheck"
shopt -s nullglob
shell_scripts=(scripts/*.sh docker/*.sh .ci/run)
shopt -u nullglob
if command -v shellcheck >/dev/null; then
  shellcheck "${shell_scripts[@]}"
  ran
elif [[ ${CI:-} == true ]]; then
  echo "error: shellcheck is required in CI (apt-get install -y shellcheck)" >&2
  exit 1
else
  echo "skipping shellcheck: not installed (apt-get install -y shellcheck)" >&2
  skipped "not installed (apt-get install -y shellcheck)"
fi

section "cargo test"
cargo test --workspace --quiet 2>&1
ran

section "scripts/run-all.sh"
timeout 600 scripts/run-all.sh
ran

section "scripts/run-all.sh --blog (the blog's scripts line for line, and against ours)"
timeout 600 scripts/run-all.sh --blog
ran

section "scripts/reliability.sh (load, faults, contract, hostile input, other users, leaks)"
timeout 1200 scripts/reliability.sh
ran

if [[ -x scripts/docker-demo.sh ]]; then
  section "scripts/docker-demo.sh"
  if docker info >/dev/null 2>&1 || [[ ${CI:-} == true ]]; then
    timeout 1200 scripts/docker-demo.sh
    ran
  else
    echo "skipping the docker demo: no Docker engine reachable" >&2
    skipped "no Docker engine reachable (install docker.io and start it)"
  fi
fi

if [[ -d crates/bench ]]; then
  section "ipc-bench --quick (numbers are printed, not asserted)"
  bench_out=$(mktemp /tmp/ipc-test-bench.XXXXXX)
  bench_status=0
  timeout 300 cargo run --quiet --release -p bench --bin ipc-bench -- --quick |
    tee "$bench_out" || bench_status=$?
  redis_rows=$(grep -c '^Redis Streams, UDS' "$bench_out" || true)
  rm -f -- "$bench_out"
  ((bench_status == 0)) || exit "$bench_status"
  # The Redis rows run only where redis-server is installed; in CI it must be.
  if ((redis_rows > 0)); then
    ran
  elif [[ ${CI:-} == true ]]; then
    echo "ipc-bench ran without its Redis rows in CI: is redis-server installed (.ci/run)?" >&2
    exit 1
  else
    skipped "its Redis rows: redis-server not installed (apt-get install -y redis-server)"
  fi
fi
