#!/usr/bin/env bash
# Installs what building and testing Hearth needs, skipping each step that is
# already satisfied. Registries only: crates.io (cargo install), npm, Debian apt.
# Safe to run again and again.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in *":$CARGO_BIN:"*) ;; *) export PATH="$CARGO_BIN:$PATH" ;; esac
# The suite uses the system Chromium; Playwright must never try to fetch one.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

CARGO_LEPTOS_VERSION="0.3.10"   # 0.3.11 needs rustc >= 1.96
BINARYEN_VERSION="132"          # Debian's binaryen (108) breaks hydration

step() { printf '==> %-18s %s\n' "$1" "$2"; }

# Prints a command's output, or nothing if it is missing or fails. Matching on a
# captured string (not `cmd | grep -q`) avoids SIGPIPE failures under pipefail.
output_of() { "$@" 2>/dev/null || true; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# --- Rust WASM target ---------------------------------------------------------
if grep -qx wasm32-unknown-unknown <<<"$(output_of rustup target list --installed)"; then
  step "wasm32 target" "present"
else
  step "wasm32 target" "installing"
  rustup target add wasm32-unknown-unknown
fi

# --- cargo-leptos -------------------------------------------------------------
if grep -qwF "$CARGO_LEPTOS_VERSION" <<<"$(output_of cargo leptos --version)"; then
  step "cargo-leptos" "$CARGO_LEPTOS_VERSION present"
else
  step "cargo-leptos" "installing $CARGO_LEPTOS_VERSION (slow: ~15 min on 2 cores)"
  cargo install cargo-leptos --locked --features no_downloads --version "$CARGO_LEPTOS_VERSION"
fi

# --- wasm-bindgen CLI, exactly the lockfile's version ----------------------------
if [ ! -f Cargo.lock ]; then
  step "wasm-bindgen-cli" "no Cargo.lock yet, generating it"
  cargo generate-lockfile
fi
WBG_VERSION="$(awk '
  /^\[\[package\]\]/ { in_wbg = 0 }
  /^name = "wasm-bindgen"$/ { in_wbg = 1; next }
  in_wbg && /^version = / { gsub(/"/, "", $3); print $3; exit }
' Cargo.lock)"
if [ -z "$WBG_VERSION" ]; then
  echo "setup.sh: could not find the wasm-bindgen version in Cargo.lock" >&2
  exit 1
fi
if grep -qwF "$WBG_VERSION" <<<"$(output_of wasm-bindgen --version)"; then
  step "wasm-bindgen-cli" "$WBG_VERSION present"
else
  step "wasm-bindgen-cli" "installing $WBG_VERSION"
  # --locked can fail when the CLI's own lockfile names a crate version this
  # registry lacks; the exact CLI version is what matters, so retry without.
  cargo install wasm-bindgen-cli --version "$WBG_VERSION" --locked \
    || cargo install wasm-bindgen-cli --version "$WBG_VERSION"
fi

# --- wasm-opt (release builds) ------------------------------------------------------
if grep -qwF "version $BINARYEN_VERSION" <<<"$(output_of wasm-opt --version)"; then
  step "wasm-opt" "binaryen $BINARYEN_VERSION present"
else
  step "wasm-opt" "installing binaryen@$BINARYEN_VERSION from npm"
  npm install -g --no-fund --no-audit "binaryen@$BINARYEN_VERSION"
fi

# --- Chromium for the Playwright suite ---------------------------------------
if [ -x /usr/bin/chromium ]; then
  step "chromium" "present"
else
  step "chromium" "installing from Debian"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

# --- PostgreSQL and nats-server, for the cluster tests --------------------------------
# The test command starts private instances of both; nothing here starts them.
PACKAGES=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || PACKAGES+=(postgresql)
command -v nats-server >/dev/null || PACKAGES+=(nats-server)
if [ "${#PACKAGES[@]}" -eq 0 ]; then
  step "postgresql, nats" "present"
else
  step "postgresql, nats" "installing ${PACKAGES[*]} from Debian"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${PACKAGES[@]}"
fi

# --- Playwright (npm) -------------------------------------------------------------
# npm ci wipes and reinstalls node_modules; only do it when the lockfile is
# newer than the last install (npm writes node_modules/.package-lock.json).
E2E="$ROOT/end2end"
if [ -f "$E2E/node_modules/.package-lock.json" ] \
  && [ ! "$E2E/package-lock.json" -nt "$E2E/node_modules/.package-lock.json" ] \
  && [ ! "$E2E/package.json" -nt "$E2E/node_modules/.package-lock.json" ]; then
  step "end2end npm" "up to date"
else
  step "end2end npm" "npm ci"
  (cd "$E2E" && npm ci --no-fund --no-audit)
fi

step "setup" "done"
