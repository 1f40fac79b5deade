package plugin

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xmtpbridge/bridge/actors/plugin/plugintest"
	"github.com/xmtpbridge/bridge/actors/webhook"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

var testTemplate = pgtest.Template{Name: "bridge", Migrate: persistence.Migrate}

// sharedCache is the compilation cache the tests share unless they need
// their own, so each test plug-in is compiled once per run.
var sharedCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plugin-test-cache-")
	if err != nil {
		panic(err)
	}
	sharedCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// harness is a real store with one account, a Host on it, a webhook
// deliverer wrapped by the plug-in deliverer, and a target that counts
// what it receives.
type harness struct {
	t       testing.TB
	ctx     context.Context
	url     string
	store   *persistence.Store
	account string
	host    *Host
	reg     *prometheus.Registry
	deliver *Deliverer
	target  *httptest.Server
	hits    atomic.Int64
	answer  atomic.Value // string body the target answers
	secret  webhook.Secret
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, ctx: context.Background(), reg: prometheus.NewRegistry()}
	h.url = pgtest.NewDatabase(t, testTemplate)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	sealer, err := persistence.NewSealer(persistence.MasterKey{ID: "k1", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	h.store, err = persistence.Open(h.ctx, h.url, sealer)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(h.store.Close)
	acc, _, _, err := h.store.CreateAccount(h.ctx, "plugins")
	if err != nil {
		t.Fatal(err)
	}
	h.account = acc.ID
	h.answer.Store(`{"reply":"from the endpoint"}`)
	h.target = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(h.answer.Load().(string)))
	}))
	t.Cleanup(h.target.Close)
	h.secret, _ = webhook.ParseSecret("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	cfg.Source = h.store
	if cfg.CacheDir == "" {
		cfg.CacheDir = sharedCache
	}
	cfg.Registerer = h.reg
	h.host, err = NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.host.Start(h.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.host.Stop)
	next := webhook.NewDeliverer(webhook.Config{Client: webhook.NewClient(webhook.ClientOptions{AllowPrivate: true})})
	h.deliver = NewDeliverer(h.host, next)
	return h
}

// bridge creates a bridge of the account and returns its id and address.
func (h *harness) bridge() (string, string) {
	h.t.Helper()
	kb, err := keys.Generate()
	if err != nil {
		h.t.Fatal(err)
	}
	raw, _ := kb.Marshal()
	b, _, err := h.store.CreateBridge(h.ctx, persistence.NewBridge{AccountID: h.account, Address: kb.Address(), KeyBundle: raw,
		Forward: persistence.ForwardConfig{URL: h.target.URL, BodyFormat: persistence.FormatJSON, ReplyMode: persistence.ReplyReply, MaxConcurrency: 8, Timeout: 5 * time.Second}})
	if err != nil {
		h.t.Fatalf("create bridge: %v", err)
	}
	return b.ID, b.Address
}

// upload validates and saves a plug-in.
func (h *harness) upload(name string, wasm []byte) persistence.Plugin {
	h.t.Helper()
	exports, err := h.host.Validate(h.ctx, wasm)
	if err != nil {
		h.t.Fatalf("validate %s: %v", name, err)
	}
	p, _, err := h.store.SavePlugin(h.ctx, h.account, name, wasm, exports, 0)
	if err != nil {
		h.t.Fatalf("save plugin %s: %v", name, err)
	}
	return p
}

// bind binds and applies the change as the event would.
func (h *harness) bind(bridgeID string, pt Point, pluginID string, config map[string]string, onError OnError) {
	h.t.Helper()
	if _, err := h.store.BindPlugin(h.ctx, h.account, bridgeID, string(pt), pluginID, config, string(onError)); err != nil {
		h.t.Fatalf("bind: %v", err)
	}
	h.host.BindingChanged(h.ctx, bridgeID)
}

func (h *harness) endpoint() webhook.Endpoint {
	return webhook.Endpoint{URL: h.target.URL, Format: webhook.FormatJSON, Reply: true, Secrets: []webhook.Secret{h.secret},
		Timeout: 5 * time.Second}
}

func (h *harness) send(address, text string) webhook.Result {
	m := webhook.Message{ID: "m-" + text, Bridge: address, Sender: "0x000000000000000000000000000000000000dEaD",
		Topic: "/xmtp/0/m-test/proto", ContentType: "xmtp.org/text:1.0", Content: text, SentAt: time.Now()}
	return h.deliver.Deliver(h.ctx, h.endpoint(), m)
}

func (h *harness) errorsOf(pt Point, reason string) float64 {
	return testutil.ToFloat64(h.host.metrics.errors.WithLabelValues(string(pt), reason))
}

// waitFor polls cond until it holds or the (generous) timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func bot(t testing.TB) []byte { return plugintest.Build(t, plugintest.Bot, "") }
