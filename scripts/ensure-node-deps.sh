#!/usr/bin/env bash
# ensure-node-deps.sh installs the npm packages of the xmtp-js interop
# tests (xmtp/interop/js) with `npm ci` when node_modules is missing or
# older than package-lock.json. It needs Node.js 20 or newer and npm; when
# they are missing and we are root, it installs Debian's nodejs and npm.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir="$root/xmtp/interop/js"
lock="$dir/package-lock.json"
stamp="$dir/node_modules/.package-lock.json"

say() { echo "ensure-node-deps: $*" >&2; }
die() { say "$*"; exit 1; }

if [ ! -f "$lock" ]; then
  say "no $lock; nothing to install"
  exit 0
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing nodejs and npm with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
  else
    die "node and npm are needed for the xmtp-js interop tests: install Node.js 20 or newer with npm (Debian/Ubuntu: sudo apt-get install nodejs npm)"
  fi
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  die "node $(node --version) is too old for xmtp-js 12: install Node.js 20 or newer"
fi

if [ -f "$stamp" ] && [ ! "$lock" -nt "$stamp" ] && [ ! "$dir/package.json" -nt "$stamp" ]; then
  say "node_modules is up to date"
  exit 0
fi

say "running npm ci in xmtp/interop/js"
npm ci --prefix "$dir" --no-audit --no-fund >&2 || die "npm ci failed in $dir (is the npm registry reachable?)"
