package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// signals hands out one channel per awaited content.
type signals struct {
	mu      sync.Mutex
	waiting map[string]chan struct{}
}

func (s *signals) await(key string) chan struct{} {
	ch := make(chan struct{})
	s.mu.Lock()
	s.waiting[key] = ch
	s.mu.Unlock()
	return ch
}

func (s *signals) fire(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.waiting[key]; ok {
		close(ch)
		delete(s.waiting, key)
	}
}

// consumeLive acknowledges every message of a session and fires its
// content, until ctx ends.
func consumeLive(ctx context.Context, sess *LiveSession, sig *signals) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sess.Wake():
		}
		msgs, err := sess.Next(ctx)
		if err != nil {
			continue
		}
		for _, m := range msgs {
			var body struct {
				Content string `json:"content"`
			}
			_ = json.Unmarshal(m.Body, &body)
			sig.fire(body.Content)
			_ = sess.Ack(ctx, m.MessageID)
		}
	}
}

// BenchmarkLiveDelivery measures, from publishing an XMTP message to a
// bridge to its consumer holding the message (what the socket then writes
// as a frame), p50 and p99 with one message in flight: with the consumer's
// hub on the node that hosts the bridge, with it on another hub (its own
// Postgres listener, as another node has), and the webhook path to a local
// HTTP endpoint in the same run.
func BenchmarkLiveDelivery(b *testing.B) {
	e := newEnv(b)
	sig := &signals{waiting: map[string]chan struct{}{}}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body struct {
			Content string `json:"content"`
		}
		_ = json.Unmarshal(raw, &body)
		sig.fire(body.Content)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(hook.Close)
	mode := func(m persistence.DeliveryMode) persistence.Bridge {
		br, _ := e.bridge(hook.URL, persistence.FormatJSON, func(f *persistence.ForwardConfig) { f.ReplyMode = persistence.ReplyNone })
		if _, err := e.store.UpdateBridge(context.Background(), e.account.ID, br.ID, func(x *persistence.Bridge) error {
			x.Delivery = m
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		return br
	}
	liveBridge, hookBridge := mode(persistence.DeliveryLive), mode(persistence.DeliveryWebhook)
	rt, _ := e.runtime("bench", func(c *Config) { c.SweepInterval = time.Second })
	hub := func(node string) *LiveHub {
		h, err := NewLiveHub(LiveConfig{Store: e.store, NodeID: node, Registerer: prometheus.NewRegistry(),
			Logger: slog.New(slog.DiscardHandler), Nudge: rt.Nudge})
		if err != nil {
			b.Fatal(err)
		}
		h.Start()
		b.Cleanup(h.Stop)
		testkit.WaitFor(b, 10*time.Second, h.Ready, "live listener")
		return h
	}
	sender := e.sender()
	run := func(b *testing.B, br persistence.Bridge) {
		lat := make([]time.Duration, b.N)
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			key := fmt.Sprintf("%s-%d-%d", br.ID[:8], b.N, i)
			ch := sig.await(key)
			t0 := time.Now()
			if _, err := sender.SendText(context.Background(), br.Address, key); err != nil {
				b.Fatal(err)
			}
			select {
			case <-ch:
				lat[i] = time.Since(t0)
			case <-time.After(time.Minute):
				b.Fatalf("%s did not arrive", key)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		reportLatency(b, lat, elapsed)
	}
	for _, tc := range []struct {
		name string
		node string
	}{{"consumer-on-hosting-node", "bench"}, {"consumer-on-other-node", "other"}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sess := hub(tc.node).Open(liveBridge.ID, "", 0, 0)
			defer sess.Close()
			go consumeLive(ctx, sess, sig)
			run(b, liveBridge)
		})
	}
	b.Run("webhook", func(b *testing.B) { run(b, hookBridge) })
}

// BenchmarkBroadcast fans one broadcast out to BENCH_SUBSCRIBERS
// subscribers (1,000 by default; 10,000 for the figure),
// conversations created as needed, and reports the copies queued and
// published per second. In the same run it measures the node's raw
// publish rate, one envelope per call as the fan-out publishes them, and
// reports the ratio of the two. BENCH_CPUPROFILE names a file for a CPU
// profile of the fan-out alone.
func BenchmarkBroadcast(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("BENCH_SUBSCRIBERS")); err == nil && v > 0 {
		n = v
	}
	e := newEnv(b)
	br, _ := e.bridge("http://127.0.0.1:1/", persistence.FormatJSON, nil)
	ctx := context.Background()
	// Subscribers need only their contacts on the network to be sent to.
	subs := make([]string, n)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				k, err := keys.Generate()
				if err != nil {
					b.Error(err)
					return
				}
				c, err := client.New(client.Config{Bundle: k, API: e.xmtp})
				if err == nil {
					err = c.Start(ctx)
				}
				if err != nil {
					b.Error(err)
					return
				}
				subs[i] = k.Address()
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if _, err := e.store.Pool().Exec(ctx, `INSERT INTO subscribers (bridge_id, address) SELECT $1, unnest($2::text[])`, br.ID, subs); err != nil {
		b.Fatal(err)
	}
	rt, _ := e.runtime("bench", func(c *Config) { c.SweepInterval = 100 * time.Millisecond; c.BroadcastRate = 100000 })
	if file := os.Getenv("BENCH_CPUPROFILE"); file != "" {
		f, err := os.Create(file)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	b.ResetTimer()
	start := time.Now()
	total := 0
	for i := range b.N {
		bc, err := e.store.CreateBroadcast(ctx, e.account.ID, br.ID, fmt.Sprintf("news %d", i))
		if err != nil {
			b.Fatal(err)
		}
		rt.Nudge(br.ID)
		var st persistence.BroadcastStatus
		testkit.WaitFor(b, 30*time.Minute, func() bool {
			st, err = e.store.BroadcastStatus(ctx, e.account.ID, br.ID, bc.ID)
			return err == nil && st.Pending == 0
		}, "broadcast sent")
		if st.Sent != n {
			b.Fatalf("broadcast %d: %d of %d copies sent, %d failed: %v", i, st.Sent, n, st.Failed, st.Failures)
		}
		total += n
	}
	copies := float64(total) / time.Since(start).Seconds()
	b.StopTimer()
	pprof.StopCPUProfile()

	// The node's raw publish rate, as many envelopes, one per call, each
	// to a topic of its own.
	t0 := time.Now()
	for i := range total {
		env := &messagev1.Envelope{ContentTopic: fmt.Sprintf("/xmtp/0/m-raw-%d/proto", i), TimestampNs: uint64(time.Now().UnixNano()),
			Message: []byte(fmt.Sprintf("raw-%d", i))}
		if err := e.xmtp.Publish(ctx, nil, env); err != nil {
			b.Fatal(err)
		}
	}
	raw := float64(total) / time.Since(t0).Seconds()
	b.ReportMetric(copies, "copies/s")
	b.ReportMetric(raw, "raw-publishes/s")
	b.ReportMetric(copies/raw, "copies/raw")
	b.Logf("%d subscribers: %.0f copies/s against a raw publish rate of %.0f/s: %.3f", n, copies, raw, copies/raw)
}
