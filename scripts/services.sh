# Sourced by scripts/test.sh: the PostgreSQL server and nats-server the cluster tests use,
# from Debian's packages, started for this run only, on loopback, on free ports, with data
# directories of the run's own, and stopped when the run ends.
#
# `services_start` exports:
#   HEARTH_TEST_POSTGRES     postgres://… of a running server; each test makes its own database
#   HEARTH_TEST_PG_BIN       PostgreSQL's programs (tests that restart a server start their own)
#   HEARTH_TEST_NATS_SERVER  the nats-server program (each test starts its own, to stop it at will)
# Anything missing ends the run with a sentence saying what; nothing is skipped.

SERVICES_DIR=""
SERVICES_PG_DATA=""

services_fail() {
  echo "services.sh: $*" >&2
  exit 1
}

# A TCP port in the ephemeral range that nothing on 127.0.0.1 answers on right now.
services_free_port() {
  local port tries=0
  while [ "$tries" -lt 200 ]; do
    port=$(( 20000 + RANDOM % 30000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
    tries=$((tries + 1))
  done
  services_fail "found no free TCP port on 127.0.0.1"
}

# Runs a PostgreSQL program as the `postgres` user when we are root (PostgreSQL refuses root).
services_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

services_start() {
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$bin" ] && [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] \
    || services_fail "PostgreSQL's server programs are missing (no /usr/lib/postgresql/*/bin/initdb): install Debian's 'postgresql' package (scripts/setup.sh does)."
  command -v nats-server >/dev/null \
    || services_fail "nats-server is missing: install Debian's 'nats-server' package (scripts/setup.sh does)."
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    services_fail "there is no 'postgres' user to run PostgreSQL as (it comes with Debian's 'postgresql' package)."
  fi

  SERVICES_DIR="$(mktemp -d /tmp/hearth-services.XXXXXX)"
  SERVICES_PG_DATA="$SERVICES_DIR/pg"
  mkdir -p "$SERVICES_PG_DATA"
  chmod 755 "$SERVICES_DIR"
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$SERVICES_PG_DATA"; fi
  local port
  port="$(services_free_port)"
  services_pg "$bin/initdb" -D "$SERVICES_PG_DATA" -A trust -U postgres --no-locale -E UTF8 \
    >"$SERVICES_DIR/initdb.log" 2>&1 \
    || { cat "$SERVICES_DIR/initdb.log" >&2; services_fail "initdb failed (log above)."; }
  # Durability is not under test against this server: fsync off keeps the run quick.
  services_pg "$bin/pg_ctl" -D "$SERVICES_PG_DATA" -l "$SERVICES_PG_DATA/server.log" -w -t 60 \
    -o "-p $port -k $SERVICES_PG_DATA -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400" \
    start >/dev/null \
    || { cat "$SERVICES_PG_DATA/server.log" >&2; services_fail "PostgreSQL did not start on 127.0.0.1:$port (log above)."; }
  export HEARTH_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres"
  export HEARTH_TEST_PG_BIN="$bin"
  export HEARTH_TEST_NATS_SERVER="$(command -v nats-server)"
  echo "services: PostgreSQL on 127.0.0.1:$port ($SERVICES_PG_DATA), nats-server at $HEARTH_TEST_NATS_SERVER"
}

services_stop() {
  if [ -n "$SERVICES_PG_DATA" ] && [ -f "$SERVICES_PG_DATA/postmaster.pid" ]; then
    services_pg "$HEARTH_TEST_PG_BIN/pg_ctl" -D "$SERVICES_PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ -n "$SERVICES_DIR" ]; then rm -rf "$SERVICES_DIR"; fi
  SERVICES_DIR=""
  SERVICES_PG_DATA=""
}
