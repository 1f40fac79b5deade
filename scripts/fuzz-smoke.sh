#!/usr/bin/env bash
# fuzz-smoke.sh runs every native fuzz target of the module (each
# `func FuzzXxx(f *testing.F)` in a *_test.go file) for FUZZTIME (default
# 4s), one after another, and stops at the first one that finds a crash.
# The failing input is kept under the package's testdata/fuzz, where
# `go test` replays it from then on.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
fuzztime=${FUZZTIME:-4s}

targets=$(grep -rEo --include='*_test.go' --exclude-dir=node_modules --exclude-dir=.data --exclude-dir=.git \
  '^func Fuzz[A-Za-z0-9_]*\(' . | sed -E 's/^(.*)\/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($/\1 \2/' | sort -u)

if [ -z "$targets" ]; then
  echo "fuzz-smoke: no fuzz targets found"
  exit 0
fi

count=0
start=$(date +%s)
while read -r dir name; do
  echo "fuzz-smoke: $name in $dir for $fuzztime" >&2
  if ! go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$dir"; then
    echo "fuzz-smoke: FAIL $name in $dir: the crashing input is under $dir/testdata/fuzz/$name" >&2
    exit 1
  fi
  count=$((count + 1))
done <<<"$targets"
echo "fuzz-smoke: ok, $count fuzz targets ran for $fuzztime each in $(( $(date +%s) - start ))s"
