#!/usr/bin/env bash
# Installs what is missing, then builds and serves Hearth in release mode.
# The address comes from `site-addr` in Cargo.toml (http://127.0.0.1:3000).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in *":$CARGO_BIN:"*) ;; *) export PATH="$CARGO_BIN:$PATH" ;; esac

SITE_ADDR="$(sed -n 's/^site-addr *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)"
SITE_ADDR="${SITE_ADDR:-127.0.0.1:3000}"
HOST="${SITE_ADDR%:*}"
PORT="${SITE_ADDR##*:}"
[ "$HOST" = "0.0.0.0" ] && HOST=127.0.0.1

# Refuse before the (long) build if something already listens there.
if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
  echo "run.sh: port $PORT on $HOST is already in use; stop whatever holds it" >&2
  echo "        (e.g. \`ss -ltnp 'sport = :$PORT'\` shows who) and try again." >&2
  exit 1
fi

bash "$ROOT/scripts/setup.sh"
echo "==> cargo leptos serve --release  (http://$SITE_ADDR)"
exec cargo leptos serve --release
