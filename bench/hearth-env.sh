# Sourced by bench/page-cpu.sh and called by bench/run.sh's program (bench/hearthbench/hearthenv.py):
# how the benchmarks start Hearth and become a guest, kept in one place so the two measure the
# same server the same way.

# hearth_bench_env PORT DATA-DIR: the environment a benchmarked Hearth runs with (use as
# `env $(hearth_bench_env ...) target/release/hearth`). The abuse limits are for people; the
# generator is thousands of "people" on one address sending far faster than anyone types, so
# they are off.
hearth_bench_env() {
  echo "HEARTH_STORE=sqlite HEARTH_DATA_DIR=$2 HEARTH_ADDR=127.0.0.1:$1" \
    "HEARTH_MESSAGE_RATE=0 HEARTH_UPGRADES_PER_MINUTE=0 HEARTH_CONNECTIONS_PER_USER=0" \
    "HEARTH_ROOMS_PER_HOUR=0 HEARTH_ROOMS_PER_HOUR_PER_ADDRESS=0" \
    "HEARTH_FORM_POSTS_PER_MINUTE=0" \
    "HEARTH_CONNECTIONS_PER_ADDRESS=0" \
    "LEPTOS_OUTPUT_NAME=hearth LEPTOS_SITE_ROOT=target/site LEPTOS_SITE_PKG_DIR=pkg RUST_LOG=warn"
}

# guest_cookie PORT: a `hearth_session=…` pair for a new guest named "bench", as a browser gets
# one from the home page's name form; empty if the server refused.
guest_cookie() {
  curl -si -X POST -H 'Accept: application/json' --data 'name=bench' \
    "http://127.0.0.1:$1/api/set_name" | tr -d '\r' \
    | sed -n 's/^[Ss]et-[Cc]ookie: \(hearth_session=[0-9a-f]*\).*/\1/p' | head -n 1
}
