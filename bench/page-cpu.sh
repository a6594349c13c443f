#!/usr/bin/env bash
# Server CPU per room page: the server's user+system time divided by the requests it served.
# Time the hypervisor takes is not charged to the process, so on a shared host this moves less
# than requests/s and latency do, though still by ±25 % from run to run here: compare two
# builds by alternating them several times (BIN=...). Starts a release Hearth on CPU 0, fills
# #bench with 50 messages, and sends N requests with oha from CPU 1.
#
#   bench/page-cpu.sh                        # target/release/hearth, 20,000 requests
#   BIN=/tmp/hearth-old N=8000 bench/page-cpu.sh
#   MSGS=1 bench/page-cpu.sh                 # the room with 1 message: the cost of a page itself
#   PROFILE=1 bench/page-cpu.sh              # then 8 s of `perf record -g` into /tmp/page-cpu.perf
#   PROFILE=1 PERF_CG='--call-graph dwarf,65528' bench/page-cpu.sh   # whole async stacks
#
# Needs what bench/run.sh builds and installs: the release server and site, node with
# bench/peers/node_modules, oha. Loopback only.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/hearth-env.sh
. "$ROOT/bench/hearth-env.sh"
BIN="${BIN:-target/release/hearth}"
N="${N:-20000}"
MSGS="${MSGS:-50}"
PORT="${PORT:-23990}"
[ -x "$BIN" ] || { echo "page-cpu: $BIN is missing (cargo build --release --features ssr)" >&2; exit 1; }
DATA="$(mktemp -d)"
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$DATA"' EXIT
# shellcheck disable=SC2046 # the variables are NAME=value words, split on purpose
env $(hearth_bench_env "$PORT" "$DATA") taskset -c 0 "$BIN" >"$DATA/server.log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
COOKIE="$(guest_cookie "$PORT")"
node bench/peers/seed-room.js "$PORT" bench "$MSGS" "$COOKIE" >/dev/null
URL="http://127.0.0.1:$PORT/r/bench"
ROWS="$(curl -s -H "Cookie: $COOKIE" "$URL" | grep -o '<li class="message"' | wc -l)"
[ "$ROWS" -eq "$MSGS" ] || echo "page-cpu: the page shows $ROWS messages, expected $MSGS" >&2
cpu() { awk '{print $14, $15}' "/proc/$PID/stat"; }   # user and system ticks
steal() { awk '/^cpu /{print $9}' /proc/stat; }
taskset -c 1 oha -n 2000 -c 20 --no-tui -H "Cookie: $COOKIE" "$URL" >/dev/null   # warm-up
read -r U0 K0 <<<"$(cpu)"; S0="$(steal)"
taskset -c 1 oha -n "$N" -c 20 --no-tui -H "Cookie: $COOKIE" "$URL" | grep -E "Success rate|Requests/sec"
read -r U1 K1 <<<"$(cpu)"; S1="$(steal)"
python3 -c "import sys; u, k, n, s = map(int, sys.argv[1:]); us = 1e6 / $(getconf CLK_TCK) / n; print(f'server CPU per page: {(u + k) * us:.0f} us (user {u * us:.0f}, system {k * us:.0f})  (machine steal ticks meanwhile: {s})')" \
  "$((U1 - U0))" "$((K1 - K0))" "$N" "$((S1 - S0))"
if [ -n "${PROFILE:-}" ]; then
  # shellcheck disable=SC2086 # PERF_CG is perf options, split into words on purpose
  perf record -F 999 ${PERF_CG:--g} -p "$PID" -o /tmp/page-cpu.perf -- sleep 8 2>/dev/null &
  PERF=$!
  taskset -c 1 oha -z 8s -c 20 --no-tui -H "Cookie: $COOKIE" "$URL" >/dev/null
  wait "$PERF"
  echo "profile: perf report -i /tmp/page-cpu.perf --no-children"
fi
