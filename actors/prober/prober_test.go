package prober

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/persistence/storetest"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/keys"
	"github.com/xmtpbridge/bridge/xmtp/node"
	"github.com/xmtpbridge/bridge/xmtp/node/nodetest"
)

// world is a store and a local XMTP node in one test database.
type world struct {
	store   *persistence.Store
	xmtp    *api.Client
	account persistence.Account
}

func newWorld(t *testing.T) *world {
	t.Helper()
	db := pgtest.NewDatabase(t, pgtest.Template{Name: "prober", Migrate: func(ctx context.Context, url string) error {
		if err := persistence.Migrate(ctx, url); err != nil {
			return err
		}
		return node.Migrate(ctx, url)
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := nodetest.Start(t, node.Config{DatabaseURL: db})
	xc, err := api.Dial(ctx, n.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = xc.Close() })
	st := storetest.Open(t, db, storetest.Sealer(t))
	acct, _, _, err := st.CreateAccount(ctx, "owner")
	if err != nil {
		t.Fatal(err)
	}
	return &world{store: st, xmtp: xc, account: acct}
}

// identity returns a started Go client and, when bridge is set, registers
// it as a bridge of the store.
func (w *world) identity(t *testing.T, bridge bool) (*client.Client, string) {
	t.Helper()
	b, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Bundle: b, API: w.xmtp})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !bridge {
		return c, ""
	}
	raw, _ := b.Marshal()
	br, _, err := w.store.CreateBridge(context.Background(), persistence.NewBridge{
		AccountID: w.account.ID, Address: b.Address(), Name: "probed", KeyBundle: raw,
		Forward: persistence.ForwardConfig{URL: "https://example.com/", BodyFormat: persistence.FormatJSON,
			ReplyMode: persistence.ReplyNone, Timeout: time.Second, MaxConcurrency: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, br.ID
}

// TestProberMatchesRepliesAndCountsFailures probes two bridges: one whose
// identity answers like a bridge's canary handler, and one that stays
// silent. The first round trip is recorded with its time and last
// success, the second fails by timeout, both in Postgres and in metrics.
func TestProberMatchesRepliesAndCountsFailures(t *testing.T) {
	w := newWorld(t)
	canary, _ := w.identity(t, false)
	answering, answeringID := w.identity(t, true)
	_, silentID := w.identity(t, true)

	// The answering bridge replies the way the canary handler does: the
	// /canary answer quotes the message.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in, err := answering.Inbound(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for m := range in {
			text, _ := m.Content.Text()
			_, _ = answering.Reply(ctx, m.Topic, content.Text("Hello from the proxied server! Your message was: "+text))
		}
	}()

	reg := prometheus.NewRegistry()
	pm, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Store: w.store, Client: canary, Metrics: pm, Interval: time.Hour, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	testkit.WaitFor(t, 30*time.Second, func() bool {
		c, err := w.store.LatestCanary(context.Background(), answeringID)
		return err == nil && c.ReceivedAt != nil
	}, "the answering bridge's round trip")
	testkit.WaitFor(t, 30*time.Second, func() bool {
		c, err := w.store.LatestCanary(context.Background(), silentID)
		return err == nil && strings.Contains(c.Error, "no reply within")
	}, "the silent bridge's timeout")
	if got := value(t, pm.lastSuccess.WithLabelValues(answeringID)); got < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Fatalf("last success of the answering bridge = %v", got)
	}
	if got := value(t, pm.failures.WithLabelValues("timeout")); got != 1 {
		t.Fatalf("timeout failures = %v, want 1", got)
	}
	var h dto.Metric
	if err := pm.rtt.Write(&h); err != nil || h.GetHistogram().GetSampleCount() != 1 {
		t.Fatalf("rtt observations = %d, want 1 (%v)", h.GetHistogram().GetSampleCount(), err)
	}
	if silent, _ := w.store.LatestCanary(context.Background(), silentID); silent.ReceivedAt != nil {
		t.Fatalf("the silent bridge has a round trip: %+v", silent)
	}
	if p.Pending() != 0 {
		t.Fatalf("%d canaries still pending", p.Pending())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestProberSampleAndSendFailure probes a sample of one bridge whose
// identity never published a contact bundle: the send fails and is
// counted as such.
func TestProberSampleAndSendFailure(t *testing.T) {
	w := newWorld(t)
	canary, _ := w.identity(t, false)
	k, _ := keys.Generate()
	raw, _ := k.Marshal()
	b, _, err := w.store.CreateBridge(context.Background(), persistence.NewBridge{
		AccountID: w.account.ID, Address: k.Address(), Name: "offline", KeyBundle: raw,
		Forward: persistence.ForwardConfig{URL: "https://example.com/", BodyFormat: persistence.FormatJSON,
			ReplyMode: persistence.ReplyNone, Timeout: time.Second, MaxConcurrency: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	pm, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Store: w.store, Client: canary, Metrics: pm, Sample: 1, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sent := p.Round(context.Background()); sent != 0 {
		t.Fatalf("Round sent %d canaries to an identity that is not on the network", sent)
	}
	if got := value(t, pm.failures.WithLabelValues("send")); got != 1 {
		t.Fatalf("send failures = %v, want 1", got)
	}
	c, err := w.store.LatestCanary(context.Background(), b.ID)
	if err != nil || !strings.Contains(c.Error, "send canary") {
		t.Fatalf("latest canary = %+v, %v; want the send error recorded", c, err)
	}
}

// value reads a counter or a gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.GetGauge().GetValue()
}
