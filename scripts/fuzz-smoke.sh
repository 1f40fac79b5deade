#!/usr/bin/env bash
# fuzz-smoke.sh runs the native fuzz targets of the module (each
# `func FuzzXxx(f *testing.F)` in a *_test.go file) for FUZZTIME (default
# 4s), one after another, and stops at the first one that finds a crash.
# The failing input is kept under the package's testdata/fuzz, where
# `go test` replays it from then on.
#
# Each package's fuzz-instrumented test binary is built once
# (`go test -c -fuzz=.`) and run for each of its targets from the
# package's directory with the flags `go test -fuzz` gives it, the
# corpus cache under $(go env GOCACHE)/fuzz included, so a package with
# four targets is compiled and linked once instead of four times.
#
# FUZZSET chooses the targets:
#   outside  (`make test`) every target except those listed in test_only
#            below: the decoders of outside input (XMTP envelopes and
#            content, API requests, webhook answers, tokens, addresses,
#            environment, stored rows), where fuzz time finds real attacks;
#   all      (`make fuzz`, the default) every target.
# test_only is explicit, and a name in it that no longer exists is an
# error, so that a renamed target is never dropped silently. A target not
# in the list is fuzzed by `make test`. The seeds of every target, listed
# or not, still run as ordinary tests in `go test`. FUZZLIST=1 prints the
# chosen "package-dir target" lines and runs nothing.
#
# Go 1.26's fuzz coordinator can fail a target with a bare "context
# deadline exceeded" when -fuzztime runs out while a worker is busy
# (golang/go#75804, fixed in Go 1.27). That failure writes no input: it
# is the engine's, not a finding. A target that fails without writing a
# new input under testdata/fuzz is therefore run once more; a target that
# writes one fails at once.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
fuzztime=${FUZZTIME:-4s}
fuzzset=${FUZZSET:-all}

# test_only: "package-dir target  reason" for the targets `make test` does
# not fuzz (only `make fuzz` does).
test_only=(
  # Parsers that exist only in the tests, of files in this repository.
  "./deploy/deploytest FuzzParseDockerfile   the deploy tests' Dockerfile reader"
  "./deploy/deploytest FuzzParseEnvFile      the deploy tests' env file reader"
  "./deploy/deploytest FuzzInterpolate       the deploy tests' \${VAR} expansion"
  "./deploy/monitoring FuzzMetricNames       the monitoring tests' PromQL tokenizer"
  # Round trips of the bridge's own encoders: the input is the bridge's,
  # not an attacker's. Their decoders of outside input are fuzzed by
  # FuzzDecode, FuzzSealerOpen, FuzzOpenMessage and
  # FuzzUnmarshalPrivateKeyBundle.
  "./xmtp/content FuzzTextRoundTrip          text content encode and decode"
  "./xmtp/content FuzzContentRoundTrip       any content encode and decode"
  "./persistence FuzzSealerRoundTrip         the sealer's Seal and Open"
  "./xmtp/conversation FuzzSealOpenRoundTrip conversation Seal and Open"
  # The bridge's own encoders and key derivations held to the libraries
  # they replace; their input is the bridge's, not an attacker's.
  "./actors/webhook FuzzEncodeBody               webhook bodies against encoding/json"
  "./xmtp/content FuzzEncodeMatchesProtoMarshal content encoding against proto.Marshal"
  "./xmtp/conversation FuzzDerivations         HKDF and HMAC against x/crypto and crypto/hmac"
)
case "$fuzzset" in
  outside | all) ;;
  *) echo "fuzz-smoke: FUZZSET must be outside or all, not $fuzzset" >&2; exit 2 ;;
esac

targets=$(grep -rEo --include='*_test.go' --exclude-dir=node_modules --exclude-dir=.data --exclude-dir=.git \
  '^func Fuzz[A-Za-z0-9_]*\(' . | sed -E 's/^(.*)\/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($/\1 \2/' | sort -u)

if [ -z "$targets" ]; then
  echo "fuzz-smoke: no fuzz targets found"
  exit 0
fi

skipped=0
for entry in "${test_only[@]}"; do
  read -r dir name _ <<<"$entry"
  if ! grep -qxF "$dir $name" <<<"$targets"; then
    echo "fuzz-smoke: test_only names $name in $dir, which has no such fuzz target; update the list" >&2
    exit 1
  fi
  if [ "$fuzzset" = outside ]; then
    targets=$(grep -vxF "$dir $name" <<<"$targets")
    skipped=$((skipped + 1))
  fi
done

if [ -n "${FUZZLIST:-}" ]; then
  echo "$targets"
  exit 0
fi

count=0
start=$(date +%s)
# inputs lists the failing inputs kept for target $2 in package $1.
inputs() { ls "$1/testdata/fuzz/$2" 2>/dev/null | sort || true; }

bindir=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-smoke.XXXXXX")
trap 'rm -rf "$bindir"' EXIT
fuzzcache=$(go env GOCACHE)/fuzz

retried=0
built=""
while read -r dir name; do
  bin="$bindir/$(tr / _ <<<"${dir#./}").test"
  if [ "$dir" != "$built" ]; then
    echo "fuzz-smoke: building the fuzz test binary of $dir" >&2
    importpath=$(go list -f '{{.ImportPath}}' "$dir")
    go test -c -fuzz=. -o "$bin" "$dir"
    built=$dir
  fi
  for try in 1 2; do
    echo "fuzz-smoke: $name in $dir for $fuzztime" >&2
    before=$(inputs "$dir" "$name")
    # The flags `go test -fuzz` passes to the binary it builds.
    if (cd "$dir" && "$bin" -test.paniconexit0 -test.timeout=10m -test.run='^$' \
      -test.fuzz="^${name}\$" -test.fuzztime="$fuzztime" -test.fuzzcachedir="$fuzzcache/$importpath"); then
      break
    fi
    if [ "$(inputs "$dir" "$name")" != "$before" ]; then
      echo "fuzz-smoke: FAIL $name in $dir: the crashing input is under $dir/testdata/fuzz/$name" >&2
      exit 1
    fi
    if [ "$try" = 2 ]; then
      echo "fuzz-smoke: FAIL $name in $dir failed twice without writing an input; see the output above" >&2
      exit 1
    fi
    echo "fuzz-smoke: $name failed without writing an input (the Go fuzz engine's deadline race); running it once more" >&2
    retried=$((retried + 1))
  done
  count=$((count + 1))
done <<<"$targets"
echo "fuzz-smoke: ok, $count fuzz targets ($fuzzset; $skipped left to make fuzz) ran for $fuzztime each in $(( $(date +%s) - start ))s ($retried rerun after an engine deadline failure)"
