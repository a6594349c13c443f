#!/usr/bin/env bash
# The project's whole check, as CI runs it: formatting, lints for both the
# server and the browser build, unit + integration tests, a bounded property-test
# (fuzz) run over the decoder and input validation, the site build, and
# the Playwright suite in Chromium (with and without JavaScript). PostgreSQL and
# nats-server run for the cluster tests (scripts/services.sh), stopped at the end.
# Stops at the first failure with a non-zero exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in *":$CARGO_BIN:"*) ;; *) export PATH="$CARGO_BIN:$PATH" ;; esac
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# A one-shot run gains nothing from incremental caches, which roughly double
# target/'s size; set CARGO_INCREMENTAL=1 to keep them for edit-test loops.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

SUMMARY=()
CURRENT=""
START_ALL=$SECONDS

summary() {
  local status=$?
  services_stop
  echo
  echo "---- timing ----"
  local line
  for line in "${SUMMARY[@]}"; do echo "$line"; done
  if [ -n "$CURRENT" ]; then
    printf '  %-12s FAILED (exit %d)\n' "$CURRENT" "$status"
  fi
  printf '  %-12s %4ds\n' "total" "$((SECONDS - START_ALL))"
}
trap summary EXIT

run() {
  local name="$1"; shift
  CURRENT="$name"
  echo
  echo "==> [$name] $*"
  local t0=$SECONDS
  "$@"
  SUMMARY+=("$(printf '  %-12s %4ds   target/ %s' "$name" "$((SECONDS - t0))" \
    "$(du -sh target 2>/dev/null | cut -f1)")")
  CURRENT=""
}

run setup        bash "$ROOT/scripts/setup.sh"
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"
run services     services_start
run fmt          cargo fmt --check
run clippy-ssr   cargo clippy --features ssr --all-targets -- -D warnings
run clippy-wasm  cargo clippy --lib --features hydrate --target wasm32-unknown-unknown -- -D warnings
run clippy-load  cargo clippy --features loadgen --bin hearth-loadgen --bin hearth-bare -- -D warnings
run test-load    cargo test --features loadgen --bin hearth-loadgen --bin hearth-bare
run cargo-test   cargo test --features ssr
run fuzz         env FUZZ_CASES=5000 FUZZ_SECONDS=180 bash "$ROOT/scripts/fuzz.sh"
run build        cargo leptos build
run playwright   bash -c 'cd end2end && npx playwright test'
