#!/usr/bin/env bash
# ensure-postgres.sh prints the URL of a reachable Postgres server on stdout;
# every message goes to stderr. It tries, in order:
#   1. DATABASE_URL, when it is set and answers;
#   2. the machine's Postgres at 127.0.0.1:5432 (trust auth, user postgres);
#   3. a private instance of this checkout on 127.0.0.1:55432 with its data
#      under .data/postgres, started from the system PostgreSQL binaries
#      (installed with apt-get when they are missing and we are root).
# Running it again reuses whatever answered. `ensure-postgres.sh stop` stops
# the private instance. BRIDGE_PRIVATE_PG=1 skips steps 1 and 2.
# `ensure-postgres.sh --database NAME` also creates the database NAME on
# the local server it chose when it is missing and prints the URL of NAME
# instead; a DATABASE_URL that answers is printed as it is.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
private_port=${BRIDGE_PRIVATE_PG_PORT:-55432}
datadir=${BRIDGE_PRIVATE_PG_DATA:-$root/.data/postgres}
default_url="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
private_url="postgres://postgres@127.0.0.1:${private_port}/postgres?sslmode=disable"

say() { echo "ensure-postgres: $*" >&2; }
die() { say "$*"; exit 1; }

# bindir is the newest system PostgreSQL binary directory, or empty.
bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; fi
}

psql_bin() {
  if command -v psql >/dev/null 2>&1; then command -v psql; return; fi
  local d; d=$(bindir)
  if [ -n "$d" ] && [ -x "$d/psql" ]; then echo "$d/psql"; fi
}

# answers URL succeeds when URL accepts a login and runs a query.
answers() {
  local psql; psql=$(psql_bin)
  if [ -z "$psql" ]; then
    # Without a client, a TCP connection is the best check there is.
    local hostport=${1#*@}; hostport=${hostport%%/*}
    timeout 3 bash -c "exec 3<>/dev/tcp/${hostport%:*}/${hostport##*:}" 2>/dev/null
    return
  fi
  PGCONNECT_TIMEOUT=3 "$psql" "$1" -Atqc 'select 1' >/dev/null 2>&1
}

# as_owner runs a command as the owner of the data directory: the postgres
# user when we are root, because initdb and postgres refuse to run as root.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

install_binaries() {
  [ -n "$(bindir)" ] && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing PostgreSQL with apt-get (no binaries under /usr/lib/postgresql)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    [ -n "$(bindir)" ] || die "apt-get installed postgresql but /usr/lib/postgresql/*/bin/initdb is still missing"
    return
  fi
  die "no Postgres answers and the PostgreSQL server binaries are missing: install them (Debian/Ubuntu: sudo apt-get install postgresql), start Postgres on 127.0.0.1:5432 with trust auth for user postgres, or set DATABASE_URL"
}

stop_private() {
  local d; d=$(bindir)
  if [ -z "$d" ] || [ ! -f "$datadir/postmaster.pid" ]; then
    say "no private instance is running in $datadir"
    return 0
  fi
  as_owner "$d/pg_ctl" -D "$datadir" -m fast -w stop >&2
  say "stopped the private instance in $datadir"
}

start_private() {
  install_binaries
  local d; d=$(bindir)
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "user postgres does not exist; install the postgresql package or create the user"
  fi
  mkdir -p "$datadir"
  chmod 700 "$datadir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$datadir"
    as_owner test -w "$datadir" ||
      die "user postgres cannot write $datadir (a parent directory is closed to it); set BRIDGE_PRIVATE_PG_DATA to a directory it can reach"
  fi
  if [ ! -f "$datadir/PG_VERSION" ]; then
    say "creating a private cluster in $datadir"
    as_owner "$d/initdb" -D "$datadir" -U postgres --auth=trust --encoding=UTF8 >"$datadir.initdb.log" 2>&1 ||
      die "initdb failed; see $datadir.initdb.log"
  fi
  say "starting the private instance on 127.0.0.1:${private_port}"
  as_owner "$d/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 \
    -o "-p ${private_port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=$datadir" start >&2 ||
    die "the private instance did not start; see $datadir/server.log"
  local i
  for i in $(seq 1 60); do
    answers "$private_url" && return 0
    sleep 0.5
  done
  die "the private instance started but does not answer at $private_url; see $datadir/server.log"
}

database=""
case "${1:-}" in
  stop) stop_private; exit 0 ;;
  --database)
    database=${2:-}
    [[ "$database" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "--database needs a name of lowercase letters, digits and underscores"
    ;;
  "") ;;
  *) die "usage: ensure-postgres.sh [stop | --database NAME]" ;;
esac

# emit prints the URL of the chosen server, or of its database $database,
# which it creates first when it is missing.
emit() {
  local url=$1
  if [ -z "$database" ]; then echo "$url"; return; fi
  local psql; psql=$(psql_bin)
  [ -n "$psql" ] || die "psql is needed to create the database $database: install the postgresql-client package"
  if [ "$("$psql" "$url" -Atqc "select 1 from pg_database where datname = '$database'")" != 1 ]; then
    say "creating the database $database"
    "$psql" "$url" -qc "create database $database" >&2 || die "could not create the database $database"
  fi
  url_with_database "$url" "$database"
}

# url_with_database prints url with its path replaced by /name.
url_with_database() {
  local url=$1 name=$2 query="" base
  case "$url" in *\?*) query="?${url#*\?}"; url=${url%%\?*} ;; esac
  base=${url#*://}
  case "$base" in */*) base=${base%%/*} ;; esac
  echo "${url%%://*}://${base}/${name}${query}"
}

if [ "${BRIDGE_PRIVATE_PG:-}" = 1 ]; then
  :
elif [ -n "${DATABASE_URL:-}" ]; then
  if answers "$DATABASE_URL"; then
    say "using DATABASE_URL"
    echo "$DATABASE_URL"
    exit 0
  fi
  say "DATABASE_URL is set but does not answer; trying the local servers"
fi
if [ "${BRIDGE_PRIVATE_PG:-}" != 1 ] && answers "$default_url"; then
  say "using the machine's Postgres at 127.0.0.1:5432"
  emit "$default_url"
  exit 0
fi
if answers "$private_url"; then
  say "reusing the private instance on 127.0.0.1:${private_port}"
  emit "$private_url"
  exit 0
fi
start_private
emit "$private_url"
