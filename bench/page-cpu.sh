#!/usr/bin/env bash
# Server CPU per room page: the server's user+system time divided by the requests it served.
# Time the hypervisor takes is not charged to the process, so on a shared host this moves less
# than requests/s and latency do. It still drifts: this host's speed wanders by ±25 % over
# minutes, so two builds are compared with BASE=, which runs both servers side by side (both
# on CPU 0, never busy at once) and alternates short bursts between them, so drift hits both
# alike. Starts a release Hearth on CPU 0, fills #bench with MSGS messages, and sends N
# requests with oha from CPU 1.
#
#   bench/page-cpu.sh                        # target/release/hearth, 20,000 requests
#   BASE=/tmp/hearth-old bench/page-cpu.sh   # the same, beside an older build, in 20 bursts
#   BIN=/tmp/hearth-new N=8000 bench/page-cpu.sh
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
BASE="${BASE:-}"
N="${N:-20000}"
MSGS="${MSGS:-50}"
PORT="${PORT:-23990}"
BURSTS=20
for bin in "$BIN" ${BASE:+"$BASE"}; do
  [ -x "$bin" ] || { echo "page-cpu: $bin is missing (cargo build --release --features ssr)" >&2; exit 1; }
done
DATA="$(mktemp -d)"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DATA"' EXIT

# serve BIN PORT: starts BIN on CPU 0 with #bench filled; sets PID, URL and COOKIE.
serve() {
  mkdir -p "$DATA/$2"
  # shellcheck disable=SC2046 # the variables are NAME=value words, split on purpose
  env $(hearth_bench_env "$2" "$DATA/$2") taskset -c 0 "$1" >"$DATA/$2/server.log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$2/" && break; sleep 0.1; done
  COOKIE="$(guest_cookie "$2")"
  node bench/peers/seed-room.js "$2" bench "$MSGS" "$COOKIE" >/dev/null
  URL="http://127.0.0.1:$2/r/bench"
  local rows
  rows="$(curl -s -H "Cookie: $COOKIE" "$URL" | grep -o '<li class="message' | wc -l)"
  [ "$rows" -eq "$MSGS" ] || echo "page-cpu: $1 shows $rows messages, expected $MSGS" >&2
  taskset -c 1 oha -n 2000 -c 20 --no-tui -H "Cookie: $COOKIE" "$URL" >/dev/null   # warm-up
}
cpu() { awk '{print $14, $15}' "/proc/$1/stat"; }   # user and system ticks
steal() { awk '/^cpu /{print $9}' /proc/stat; }
# load PID URL COOKIE REQUESTS: sends the requests; sets U and K to the user and system ticks
# they took (variables, not output: a failed request must stop the script, not a subshell).
load() {
  local u0 k0 u1 k1
  read -r u0 k0 <<<"$(cpu "$1")"
  taskset -c 1 oha -n "$4" -c 20 --no-tui -H "Cookie: $3" "$2" >"$DATA/oha.out"
  grep -q "Success rate:.*100.00%" "$DATA/oha.out" || { echo "page-cpu: requests to $2 failed" >&2; cat "$DATA/oha.out" >&2; exit 1; }
  read -r u1 k1 <<<"$(cpu "$1")"
  U=$((u1 - u0)) K=$((k1 - k0))
}
# report NAME USER SYSTEM REQUESTS
report() {
  python3 -c "import sys; u, k, n = map(int, sys.argv[2:]); us = 1e6 / $(getconf CLK_TCK) / n; print(f'{sys.argv[1]}: server CPU per page {(u + k) * us:.0f} us (user {u * us:.0f}, system {k * us:.0f})')" "$@"
}

serve "$BIN" "$PORT"
S0="$(steal)"
if [ -z "$BASE" ]; then
  load "$PID" "$URL" "$COOKIE" "$N"
  report "$BIN" "$U" "$K" "$N"
else
  NEW=("$PID" "$URL" "$COOKIE")
  serve "$BASE" "$((PORT + 1))"
  OLD=("$PID" "$URL" "$COOKIE")
  NU=0 NK=0 OU=0 OK=0
  for _ in $(seq "$BURSTS"); do
    load "${NEW[@]}" $((N / BURSTS)); NU=$((NU + U)); NK=$((NK + K))
    load "${OLD[@]}" $((N / BURSTS)); OU=$((OU + U)); OK=$((OK + K))
  done
  report "$BIN" "$NU" "$NK" "$((N / BURSTS * BURSTS))"
  report "$BASE" "$OU" "$OK" "$((N / BURSTS * BURSTS))"
  PID="${NEW[0]}" URL="${NEW[1]}" COOKIE="${NEW[2]}"
fi
echo "(machine steal ticks meanwhile: $(($(steal) - S0)))"
if [ -n "${PROFILE:-}" ]; then
  # shellcheck disable=SC2086 # PERF_CG is perf options, split into words on purpose
  perf record -F 999 ${PERF_CG:--g} -p "$PID" -o /tmp/page-cpu.perf -- sleep 8 2>/dev/null &
  PERF=$!
  taskset -c 1 oha -z 8s -c 20 --no-tui -H "Cookie: $COOKIE" "$URL" >/dev/null
  wait "$PERF"
  echo "profile: perf report -i /tmp/page-cpu.perf --no-children"
fi
