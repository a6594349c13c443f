#!/usr/bin/env bash
# Hearth benchmark: Hearth and its Node peers through the same scenarios, one Markdown table
# (bench/results/latest.md). The program is the Python package bench/hearthbench; its settings
# (BENCH_QUICK, BENCH_ONLY, BENCH_SERVERS, ...) are described in bench/README.md and
# bench/hearthbench/config.py.
#
#   ./bench/run.sh                  full run (about 30-40 minutes after the builds)
#   BENCH_QUICK=1 ./bench/run.sh    smoke run: small counts, one repeat (a few minutes)
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHONPATH="$BENCH_DIR${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m hearthbench "$@"
