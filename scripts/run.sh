#!/usr/bin/env bash
# Installs what is missing, then builds and serves Hearth in release mode.
# The address is `site-addr` from Cargo.toml (http://127.0.0.1:3000) unless
# LEPTOS_SITE_ADDR (read by cargo-leptos and the server) says otherwise, e.g.
#   LEPTOS_SITE_ADDR=127.0.0.1:3100 ./scripts/run.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in *":$CARGO_BIN:"*) ;; *) export PATH="$CARGO_BIN:$PATH" ;; esac

SITE_ADDR="${HEARTH_ADDR:-${LEPTOS_SITE_ADDR:-}}"
if [ -z "$SITE_ADDR" ]; then
  SITE_ADDR="$(sed -n 's/^site-addr *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)"
fi
SITE_ADDR="${SITE_ADDR:-127.0.0.1:3000}"
HOST="${SITE_ADDR%:*}"
PORT="${SITE_ADDR##*:}"
case "$HOST" in 0.0.0.0 | "[::]") HOST=127.0.0.1 ;; esac

# Refuse before the (long) build if something already listens there.
if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
  echo "run.sh: port $PORT on $HOST is already in use; stop whatever holds it" >&2
  echo "        (\`ss -ltnp 'sport = :$PORT'\` shows who) or pick another address:" >&2
  echo "        LEPTOS_SITE_ADDR=127.0.0.1:3100 ./scripts/run.sh" >&2
  exit 1
fi

bash "$ROOT/scripts/setup.sh"
echo "==> cargo leptos serve --release  (http://$SITE_ADDR)"
exec cargo leptos serve --release
