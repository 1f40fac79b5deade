#!/usr/bin/env bash
# ensure-tools.sh makes sure the outside programs the tests run are
# installed: etcd (cluster membership), promtool and prometheus (alert rule
# tests and the live scrape test), amtool (Alertmanager config check),
# docker-compose (validates the compose file; it needs no docker engine),
# nginx (ingress config), pebble and certbot (ACME). They all come from
# Debian's packages. Debian bookworm serves docker-compose (Compose v1,
# `docker-compose config`), not docker-compose-plugin (`docker compose`);
# the compose test uses whichever of the two is installed. When one is missing
# and we are root with apt-get, it is installed; otherwise the script stops
# and names the package to install.
#
# Usage: scripts/ensure-tools.sh            # every tool
#        scripts/ensure-tools.sh etcd nginx  # only these
#
# Debian's packages start their service when they are installed where an
# init system runs; the tests never use those services (each test starts its
# own process on its own ports), so they are stopped again here to leave
# the default ports free.
set -euo pipefail

say() { echo "ensure-tools: $*" >&2; }
die() { say "$*"; exit 1; }

# tool name -> Debian package
declare -A pkg=(
  [etcd]=etcd-server
  [promtool]=prometheus
  [prometheus]=prometheus
  [amtool]=prometheus-alertmanager
  [docker-compose]=docker-compose
  [nginx]=nginx
  [pebble]=pebble
  [certbot]=certbot
)
# where Debian puts a program that is not on PATH
declare -A alt=(
  [pebble]=/usr/bin/pebble
  [nginx]=/usr/sbin/nginx
)

want=("$@")
if [ ${#want[@]} -eq 0 ]; then
  want=(etcd promtool prometheus amtool docker-compose nginx pebble certbot)
fi

have() {
  command -v "$1" >/dev/null 2>&1 || [ -x "${alt[$1]:-/nonexistent}" ] ||
    # the compose plugin serves the compose test as well as docker-compose
    { [ "$1" = docker-compose ] && docker compose version >/dev/null 2>&1; }
}

missing=()
for t in "${want[@]}"; do
  [ -n "${pkg[$t]:-}" ] || die "unknown tool $t (known: ${!pkg[*]})"
  have "$t" || missing+=("${pkg[$t]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
# one package can provide several tools
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  die "the tests need these Debian packages: ${missing[*]} (install them with: sudo apt-get install ${missing[*]})"
fi
say "installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
  apt-get update -qq >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
    die "apt-get could not install ${missing[*]}"
fi
for svc in etcd prometheus prometheus-alertmanager nginx; do
  if command -v service >/dev/null 2>&1; then
    service "$svc" stop >/dev/null 2>&1 || true
  fi
done
for t in "${want[@]}"; do
  have "$t" || die "$t is still missing after installing ${pkg[$t]}"
done
