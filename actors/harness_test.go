package actors

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/xmtpbridge/bridge/actors/supervision"
	"github.com/xmtpbridge/bridge/actors/webhook"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/persistence/storetest"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
	"github.com/xmtpbridge/bridge/xmtp/keys"
	"github.com/xmtpbridge/bridge/xmtp/node"
	"github.com/xmtpbridge/bridge/xmtp/node/nodetest"
)

// migrateAll builds the schema of both the store and the local node in one
// database.
func migrateAll(ctx context.Context, url string) error {
	if err := persistence.Migrate(ctx, url); err != nil {
		return err
	}
	return node.Migrate(ctx, url)
}

// env is one test's world: Postgres, a local XMTP node, the store and an
// account.
type env struct {
	t       testing.TB
	db      string
	node    *node.Node
	nodeReg *prometheus.Registry
	xmtp    *api.Client
	store   *persistence.Store
	sealer  *persistence.Sealer
	account persistence.Account
	log     *slog.Logger
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvNode(t, nil)
}

// newEnvNode is newEnv with the local XMTP node's config adjusted by tune.
func newEnvNode(t testing.TB, tune func(*node.Config)) *env {
	t.Helper()
	db := pgtest.NewDatabase(t, pgtest.Template{Name: "actors", Migrate: migrateAll})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodeReg := prometheus.NewRegistry()
	nc := node.Config{DatabaseURL: db, Registerer: nodeReg}
	if tune != nil {
		tune(&nc)
	}
	n := nodetest.Start(t, nc)
	xc, err := api.Dial(ctx, n.GRPCAddr())
	if err != nil {
		t.Fatalf("dial node: %v", err)
	}
	t.Cleanup(func() { _ = xc.Close() })
	sealer := storetest.Sealer(t)
	st := storetest.Open(t, db, sealer)
	acc, _, _, err := st.CreateAccount(ctx, "owner")
	if err != nil {
		t.Fatalf("create account: %v", err)
	}
	level := slog.LevelError
	if os.Getenv("ACTORS_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	return &env{t: t, db: db, node: n, nodeReg: nodeReg, xmtp: xc, store: st, sealer: sealer, account: acc, log: log}
}

// bridge creates a bridge forwarding to url.
func (e *env) bridge(url string, format persistence.BodyFormat, tune func(*persistence.ForwardConfig)) (persistence.Bridge, string) {
	e.t.Helper()
	b, err := keys.Generate()
	if err != nil {
		e.t.Fatalf("generate keys: %v", err)
	}
	raw, err := b.Marshal()
	if err != nil {
		e.t.Fatalf("marshal keys: %v", err)
	}
	fc := persistence.ForwardConfig{URL: url, BodyFormat: format, ReplyMode: persistence.ReplyReply,
		Timeout: 5 * time.Second, MaxConcurrency: 8}
	if tune != nil {
		tune(&fc)
	}
	br, secrets, err := e.store.CreateBridge(context.Background(), persistence.NewBridge{
		AccountID: e.account.ID, Address: b.Address(), Name: "test", KeyBundle: raw, Forward: fc,
	})
	if err != nil {
		e.t.Fatalf("create bridge: %v", err)
	}
	return br, secrets.WebhookSecret
}

// runtime starts a runtime over the env; tune adjusts its config.
func (e *env) runtime(name string, tune func(*Config)) (*Runtime, *prometheus.Registry) {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	wm, err := webhook.NewMetrics(reg)
	if err != nil {
		e.t.Fatalf("webhook metrics: %v", err)
	}
	cfg := Config{
		NodeID: name, Store: e.store, XMTP: e.xmtp, Registerer: reg, Logger: e.log,
		ProtoactorLogger: slog.New(slog.DiscardHandler),
		Deliverer: webhook.NewDeliverer(webhook.Config{
			Client:  webhook.NewClient(webhook.ClientOptions{AllowPrivate: true}),
			Logger:  e.log,
			Metrics: wm,
		}),
		Retry:         webhook.RetryPolicy{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond, MaxAttempts: 1000, MaxAge: time.Hour},
		ChildBackoff:  supervision.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Multiplier: 2, Jitter: 0.5},
		LeaseTTL:      5 * time.Second,
		SweepInterval: 200 * time.Millisecond,
		DrainTimeout:  5 * time.Second,
	}
	if tune != nil {
		tune(&cfg)
	}
	rt, err := New(cfg)
	if err != nil {
		e.t.Fatalf("new runtime: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := rt.Start(ctx); err != nil {
		e.t.Fatalf("start runtime: %v", err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = rt.Stop(ctx)
	})
	return rt, reg
}

// sender is a Go XMTP client with its contact published.
func (e *env) sender() *client.Client {
	e.t.Helper()
	b, err := keys.Generate()
	if err != nil {
		e.t.Fatalf("generate keys: %v", err)
	}
	c, err := client.New(client.Config{Bundle: b, API: e.xmtp})
	if err != nil {
		e.t.Fatalf("new client: %v", err)
	}
	if err := c.Start(context.Background()); err != nil {
		e.t.Fatalf("start client: %v", err)
	}
	return c
}

// messagesFrom returns the texts c received from addr.
func messagesFrom(t testing.TB, c *client.Client, addr string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	convs, err := c.Conversations(ctx)
	if err != nil {
		t.Fatalf("list conversations: %v", err)
	}
	var out []string
	for _, conv := range convs {
		if conv.Peer != addr {
			continue
		}
		ms, err := c.Messages(ctx, conv.Topic)
		if err != nil {
			t.Fatalf("read messages: %v", err)
		}
		for _, m := range ms {
			if m.Sender == addr {
				text, _ := m.Content.Text()
				out = append(out, text)
			}
		}
	}
	return out
}

// counterValue reads a counter (summing its label sets that match labels)
// from reg.
func counterValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matches(m, labels) {
				if m.Counter != nil {
					sum += m.Counter.GetValue()
				} else if m.Gauge != nil {
					sum += m.Gauge.GetValue()
				}
			}
		}
	}
	return sum
}

func matches(m *dto.Metric, labels map[string]string) bool {
	for k, v := range labels {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func joined(xs []string) string { return fmt.Sprintf("[%s]", strings.Join(xs, ", ")) }

var _ = conversation.MessageID
