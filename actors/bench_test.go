package actors

import (
	"context"
	"fmt"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/client"
)

// BenchmarkForwardRoundTrip measures forward round trips: N XMTP senders →
// bridge → local HTTP echo → reply, from publishing a message to receiving
// its reply on the node subscription. Compare with
// BenchmarkNodePublishSubscribe, the node's raw publish→subscribe, in the
// same run.
func BenchmarkForwardRoundTrip(b *testing.B) {
	e := newEnv(b)
	tg := webhooktest.NewTarget(b, persistence.FormatRelaycc)
	br, secret := e.bridge(tg.URL, persistence.FormatRelaycc, func(f *persistence.ForwardConfig) { f.MaxConcurrency = 32 })
	tg.SetSecret(secret)
	e.runtime("bench", func(c *Config) { c.SweepInterval = time.Second })
	const senders = 8
	clients := make([]*client.Client, senders)
	topics := make([]string, senders)
	for i := range clients {
		clients[i] = e.sender()
		sent, err := clients[i].SendText(context.Background(), br.Address, "warm-up")
		if err != nil {
			b.Fatal(err)
		}
		topics[i] = sent.Topic
	}
	for _, c := range clients {
		testkit.WaitFor(b, 30*time.Second, func() bool { return len(messagesFrom(b, c, br.Address)) == 1 }, "warm-up reply")
	}
	sub := e.xmtp.Subscribe(context.Background())
	defer sub.Close()
	sub.Add(topics...)
	byTopic := map[string]*client.Client{}
	for i, t := range topics {
		byTopic[t] = clients[i]
	}

	// Closed loop: every sender waits for the reply to its message before
	// sending the next, so the figures are latency at eight messages in
	// flight, not the length of a queue.
	var mu sync.Mutex
	waiting := map[string]chan struct{}{}
	go func() {
		for env := range sub.Envelopes() {
			c := byTopic[env.ContentTopic]
			m, _, err := c.Handle(env)
			if err != nil || m == nil {
				continue
			}
			text, _ := m.Content.Text()
			mu.Lock()
			if ch, ok := waiting[strings.TrimPrefix(text, "echo: ")]; ok {
				close(ch)
				delete(waiting, strings.TrimPrefix(text, "echo: "))
			}
			mu.Unlock()
		}
	}()
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := s; i < b.N; i += senders {
				key := fmt.Sprintf("bench-%d", i)
				ch := make(chan struct{})
				mu.Lock()
				waiting[key] = ch
				mu.Unlock()
				t0 := time.Now()
				if _, err := clients[s].SendText(context.Background(), br.Address, key); err != nil {
					b.Error(err)
					return
				}
				select {
				case <-ch:
					lat[i] = time.Since(t0)
				case <-time.After(time.Minute):
					b.Errorf("no reply to %s", key)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	reportLatency(b, lat, elapsed)
}

// BenchmarkNodePublishSubscribe is the local node's raw rate: publish an
// envelope, receive it on a subscription.
func BenchmarkNodePublishSubscribe(b *testing.B) {
	e := newEnv(b)
	const topic = "/xmtp/0/m-bench/proto"
	sub := e.xmtp.Subscribe(context.Background())
	defer sub.Close()
	sub.Add(topic)
	testkit.WaitFor(b, 10*time.Second, sub.Connected, "subscription")
	var mu sync.Mutex
	sentAt := map[string]time.Time{}
	var lat []time.Duration
	done := make(chan struct{})
	go func() {
		for env := range sub.Envelopes() {
			mu.Lock()
			if t0, ok := sentAt[string(env.Message)]; ok {
				lat = append(lat, time.Since(t0))
				delete(sentAt, string(env.Message))
				if len(lat) == b.N {
					close(done)
				}
			}
			mu.Unlock()
		}
	}()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		msg := fmt.Sprintf("raw-%d", i)
		mu.Lock()
		sentAt[msg] = time.Now()
		mu.Unlock()
		env := &messagev1.Envelope{ContentTopic: topic, TimestampNs: uint64(time.Now().UnixNano()), Message: []byte(msg)}
		if err := e.xmtp.Publish(context.Background(), nil, env); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("only %d of %d envelopes", len(lat), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	reportLatency(b, lat, elapsed)
}

func reportLatency(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkActivation measures activating identities on one node: the
// time per activation (lease, keys, contact, catch-up queries, topics) with
// eight at a time, and the heap each hosted identity holds.
func BenchmarkActivation(b *testing.B) {
	e := newEnv(b)
	rt, _ := e.runtime("bench", func(c *Config) { c.SweepInterval = time.Minute; c.ReconcileInterval = time.Hour })
	ids := make([]string, b.N)
	for i := range ids {
		br, _ := e.bridge("http://127.0.0.1:1/", persistence.FormatJSON, nil)
		ids[i] = br.ID
	}
	var before, after goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&before)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := rt.Activate(context.Background(), id); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	goruntime.GC()
	goruntime.ReadMemStats(&after)
	if n := len(rt.Hosted()); n != b.N {
		b.Fatalf("hosted %d of %d", n, b.N)
	}
	b.ReportMetric(float64(elapsed.Milliseconds())/float64(b.N), "ms/activation")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(b.N), "heap-B/identity")
}
