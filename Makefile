# The two set-up commands are `make run` and `make test`. On a fresh
# machine they find or start Postgres (`bridge dev` itself, or
# scripts/ensure-postgres.sh for the tests), install the npm packages of
# the xmtp-js scripts (scripts/ensure-node-deps.sh) and, for the tests, the
# Debian packages of etcd, Prometheus, Alertmanager, docker-compose, nginx, pebble and certbot
# (scripts/ensure-tools.sh), or stop with a message naming what is missing.
# `make test` includes the end-to-end and cluster tests in e2e/, which build
# bin/bridge into a temporary directory and run it as separate processes.
#
# Building needs only the Go toolchain. `make proto` regenerates
# actors/actorpb from its .proto with protoc and protoc-gen-go.
# The Go version is pinned by go.mod and checked by `check-go`.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
export PATH := /usr/local/go/bin:$(PATH)

GO        ?= go
GO_MIN    := $(shell sed -n 's/^go \([0-9][0-9.]*\)$$/\1/p' go.mod)
BIN       := bin/bridge
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# FUZZTIME counts the fuzz engine's first pass over the corpus (the seeds
# and the inputs it keeps under GOCACHE/fuzz): at 2s the targets of the
# larger packages (actors, cmd/bridge, http, smoke) spent it all there on
# 2 cores and tried no new input, so make test keeps 4s.
FUZZTIME  ?= 4s
LONGFUZZ  ?= 60s
BENCHTIME ?= 1s
SCALE_IDENTITIES ?= 10000
BENCH_SUBSCRIBERS ?= 10000
BENCH     ?= .
PKGS      ?= ./...
# TESTP is how many packages `make test` builds and tests at once: twice
# the cores, because most of a package's test time is spent waiting on
# its own servers, processes and timers, not on the CPU (go test's
# default, one per core, lets two sleeping packages hold both slots).
TESTP     ?= $(shell echo $$(( 2 * $$(nproc 2>/dev/null || echo 1) )))

PROTOC_GEN_GO := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12

.PHONY: all build run test bench lint fuzz clean clean-data check-go env readme-env readme-quickstart proto

all: build

## check-go: stop with a clear message unless Go >= the go.mod version is installed.
check-go:
	@command -v $(GO) >/dev/null || { echo "make: Go $(GO_MIN) or newer is needed: install it from https://go.dev/dl/ into /usr/local/go"; exit 1; }
	@have=$$($(GO) env GOVERSION | sed 's/^go//'); \
	  if [ "$$(printf '%s\n%s\n' "$(GO_MIN)" "$$have" | sort -V | head -n1)" != "$(GO_MIN)" ]; then \
	    echo "make: Go $$have is older than $(GO_MIN) (go.mod): install a newer Go from https://go.dev/dl/"; exit 1; fi

## build: compile bin/bridge with the version and commit stamped in.
build: check-go
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/bridge

## run: build and run a development node: `bridge dev` finds or starts Postgres itself (DATABASE_URL, the machine's, or a private one under .data/), the local XMTP node, the API, the canary, and prints a quick start.
run:
	@echo "make run: building bin/bridge (the first build takes a few minutes; later ones seconds)"
	@$(MAKE) --no-print-directory build
	@scripts/ensure-node-deps.sh || echo "make run: the xmtp-js quick start needs Node.js 20 and npm; the bridge runs without them" >&2
	exec $(BIN) dev

## test: vet, then every test against the real Postgres (the import-direction check of internal/layout among them; -vet=off because the full go vet has just run, and go test's own vet checks are a subset of it), then a short fuzz (FUZZTIME, 4s a target) of every decoder of outside input (scripts/fuzz-smoke.sh lists the targets left to `make fuzz`).
test: check-go
	@url=$$(scripts/ensure-postgres.sh); \
	  scripts/ensure-node-deps.sh; \
	  scripts/ensure-tools.sh; \
	  echo "make test: go vet"; \
	  $(GO) vet $(PKGS); \
	  echo "make test: go test against $$url"; \
	  TEST_DATABASE_URL="$$url" $(GO) test -count=1 -timeout 12m -p $(TESTP) -vet=off $(PKGS); \
	  TEST_DATABASE_URL="$$url" FUZZTIME=$(FUZZTIME) FUZZSET=outside scripts/fuzz-smoke.sh

## bench: run every benchmark of the module and print the figures.
bench: check-go
	@url=$$(scripts/ensure-postgres.sh); \
	  scripts/ensure-node-deps.sh; \
	  scripts/ensure-tools.sh etcd; \
	  SCALE_IDENTITIES= TEST_DATABASE_URL="$$url" BENCH_SUBSCRIBERS=$(BENCH_SUBSCRIBERS) $(GO) test -run='^$$' -bench='$(BENCH)' -benchmem -benchtime=$(BENCHTIME) -timeout 60m $(PKGS); \
	  echo "make bench: the per-message goals of issue 12 (goal 1 CPU, goal 2 throughput, goal 3 latency) are the \"goal N\" lines of BenchmarkForwardGoals above; PERF_MESSAGES sets its run length"; \
	  echo "make bench: activation time and memory per identity with $(SCALE_IDENTITIES) identities on one node"; \
	  TEST_DATABASE_URL="$$url" $(GO) test -run='^$$' -bench='^BenchmarkActivation$$' -benchtime=$(SCALE_IDENTITIES)x -timeout 20m ./actors/; \
	  echo "make bench: goal 4 of issue 12 (hosted, idle CPU, RSS per identity, a sample answers) with $(SCALE_IDENTITIES) identities on one bridge node process"; \
	  SCALE_IDENTITIES=$(SCALE_IDENTITIES) TEST_DATABASE_URL="$$url" $(GO) test -run='^$$' -bench='^BenchmarkIdleScale$$' -benchtime=1x -timeout 90m ./e2e/

## proto: regenerate actors/actorpb/bridge.pb.go (needs protoc: apt-get install protobuf-compiler).
proto: check-go
	@command -v protoc >/dev/null || { echo "make proto: protoc is missing: apt-get install protobuf-compiler"; exit 1; }
	GOBIN=$(CURDIR)/bin $(GO) install $(PROTOC_GEN_GO)
	PATH=$(CURDIR)/bin:$$PATH protoc --go_out=. --go_opt=module=github.com/xmtpbridge/bridge actors/actorpb/bridge.proto

## lint: gofmt must have nothing to change, go vet must pass, and no import may break the layout's directions (internal/layout).
lint: check-go
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -run '^TestImportDirections$$' ./internal/layout/

## fuzz: run every fuzz target, test-only parsers and round trips included, for LONGFUZZ (default 60s) each.
fuzz: check-go
	@url=$$(scripts/ensure-postgres.sh); \
	  TEST_DATABASE_URL="$$url" FUZZTIME=$(LONGFUZZ) FUZZSET=all scripts/fuzz-smoke.sh

## env: print every environment variable of the bridge.
env: build
	@$(BIN) env

## readme-env: rewrite README.md's environment table from `bridge env --markdown`.
readme-env: build
	@$(BIN) env --markdown > bin/env.md
	@awk -v f=bin/env.md 'BEGIN { while ((getline l < f) > 0) t = t l "\n" } \
	  /^<!-- env:begin/ { print; printf "%s", t; skip = 1; next } /^<!-- env:end/ { skip = 0 } !skip' README.md > bin/README.md
	@mv bin/README.md README.md
	@echo "README.md: environment table updated"

## readme-quickstart: rewrite README.md's quick start from cmd/bridge/quickstart.tmpl, the steps `bridge dev` prints.
readme-quickstart: check-go
	@$(GO) test -count=1 -run '^TestReadmeQuickStartIsTheTemplate$$' ./cmd/bridge -args -update-readme
	@echo "README.md: quick start updated"

## clean: remove build output and the test cache.
clean:
	rm -rf bin
	$(GO) clean -testcache

## clean-data: reset everything `bridge dev` made: drop its database (on whichever Postgres it used), stop the private Postgres, delete .data (master key, admin token, signup key).
clean-data:
	scripts/clean-data.sh
