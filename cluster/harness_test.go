package cluster

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/persistence/storetest"
)

// Kind is the grain kind the test members register, the runtime's.
const Kind = "bridge"

// env is one test's world: its own database and store.
type env struct {
	t     testing.TB
	store *persistence.Store
	log   *slog.Logger
}

func newEnv(t testing.TB) *env {
	t.Helper()
	db := pgtest.NewDatabase(t, pgtest.Template{Name: "cluster", Migrate: persistence.Migrate})
	st := storetest.Open(t, db, storetest.Sealer(t))
	level := slog.LevelError
	if os.Getenv("CLUSTER_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return &env{t: t, store: st, log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))}
}

// idleHost is a runtime that hosts no identity: the store of these tests
// holds no bridge, so placement never asks it to activate one.
type idleHost struct{}

var errNoIdentities = errors.New("this test member hosts no identities")

func (idleHost) Activate(context.Context, string) error        { return errNoIdentities }
func (idleHost) Hosts(string) bool                             { return false }
func (idleHost) Hosted() []string                              { return nil }
func (idleHost) DeactivateLocal(context.Context, string) error { return nil }
func (idleHost) StopAll(context.Context) int                   { return 0 }
func (idleHost) Leases() []LeaseHolder                         { return nil }

// idleGrain is the grain of the test kind; no test sends it anything.
type idleGrain struct{}

func (idleGrain) Receive(actor.Context) {}

// runtime starts a member over the env as node name; tune adjusts its
// config. It returns the member and the registry of its metrics.
func (e *env) runtime(name string, tune func(*Config)) (*Node, *prometheus.Registry) {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{NodeID: name, Kind: Kind, Store: e.store, Registerer: reg, Logger: e.log, LeaseTTL: 5 * time.Second, DrainTimeout: 5 * time.Second}
	if tune != nil {
		tune(&cfg)
	}
	n, err := New(cfg, idleHost{})
	if err != nil {
		e.t.Fatalf("new node: %v", err)
	}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	kind := cluster.NewKind(Kind, actor.PropsFromProducer(func() actor.Actor { return idleGrain{} }))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e.t.Cleanup(func() {
		if n.BeginStop() {
			_ = n.Stop()
		}
	})
	if err := n.Start(ctx, system, kind); err != nil {
		e.t.Fatalf("start node: %v", err)
	}
	return n, reg
}
