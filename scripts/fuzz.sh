#!/usr/bin/env bash
# Runs the property tests in tests/fuzz.rs (protocol decoder, input validation, cookie and
# origin parsing) with many more cases than `cargo test` does, for a bounded time.
#
#   ./scripts/fuzz.sh                 # 20,000 cases per property, at most 300 s
#   FUZZ_CASES=200000 FUZZ_SECONDS=1800 ./scripts/fuzz.sh
#
# A failure prints the smallest input proptest found and stores its seed under
# tests/fuzz.proptest-regressions, so the next run tries it first.
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${FUZZ_CASES:-20000}"
seconds="${FUZZ_SECONDS:-300}"
echo "fuzz: ${cases} cases per property, at most ${seconds} s"
# The debug build is the one `cargo test` already made, so this starts at once.
PROPTEST_CASES="$cases" timeout --signal=INT "$seconds" \
    cargo test --features ssr --test fuzz -- --test-threads=2
