#!/usr/bin/env bash
# clean-data.sh resets everything `bridge dev` created for the checkout in
# the working directory, on whichever Postgres it used (`make clean-data`):
#   1. drops the database dev recorded in .data/dev-database (bridge_dev on
#      the machine's Postgres or the private instance, or the database a
#      DATABASE_URL named that dev created); a checkout whose dev ran before
#      dev recorded its database drops bridge_dev on 127.0.0.1:5432 (unless
#      DATABASE_URL is set);
#   2. stops the private Postgres instance of this checkout, if it runs;
#   3. deletes .data: the master key, the admin token, the signup key and
#      the private instance's data.
# A DATABASE_URL database that existed before dev ran is not dev's and is
# never dropped. The script stops, deleting nothing, if it cannot drop.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data=${BRIDGE_DEV_DATA:-$PWD/.data}

say() { echo "clean-data: $*" >&2; }
die() { say "$*"; exit 1; }

psql_bin() {
  if command -v psql >/dev/null 2>&1; then command -v psql; return; fi
  local d; d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/psql" ]; then echo "$d/psql"; fi
}

url=""
if [ -f "$data/dev-database" ]; then
  url=$(head -n 1 "$data/dev-database")
elif [ -f "$data/dev-master-key" ] && [ -z "${DATABASE_URL:-}" ]; then
  url="postgres://postgres@127.0.0.1:5432/bridge_dev?sslmode=disable"
elif [ -n "${DATABASE_URL:-}" ]; then
  say "dev did not create the database of DATABASE_URL: it is not dropped"
fi

if [ -n "$url" ]; then
  rest=${url#*://}; rest=${rest#*@}
  name=${rest#*/}; name=${name%%\?*}
  [[ "$name" =~ ^[A-Za-z0-9_]+$ ]] || die "the recorded database URL names no plain database: delete $data by hand"
  userhost=${url#*://}; userhost=${userhost%%/*}
  query=""; case "$url" in *\?*) query="?${url#*\?}" ;; esac
  server="${url%%://*}://$userhost/postgres$query"
  psql=$(psql_bin)
  [ -n "$psql" ] || die "psql is needed to drop the dev database $name: install the postgresql-client package"
  if PGCONNECT_TIMEOUT=3 "$psql" "$server" -Atqc 'select 1' >/dev/null 2>&1; then
    "$psql" "$server" -qc "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >&2 || die "could not drop the database $name"
    say "dropped the database $name on ${rest%%/*}"
  else
    say "the server of $name (${rest%%/*}) does not answer: nothing to drop there"
  fi
fi

BRIDGE_PRIVATE_PG_DATA="$data/postgres" "$root/scripts/ensure-postgres.sh" stop
rm -rf "$data"
say "deleted $data"
