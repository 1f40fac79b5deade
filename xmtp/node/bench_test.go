package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"github.com/xmtpbridge/bridge/internal/testkit"
)

// BenchmarkGRPCRoundTrip is the baseline: one Publish of an empty request,
// which crosses gRPC but touches neither Postgres nor subscribers.
func BenchmarkGRPCRoundTrip(b *testing.B) {
	n := startNode(b, testDatabase(b), Config{}, nil)
	c := dialNode(b, n.GRPCAddr())
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Publish(ctx, &messagev1.PublishRequest{}); err != nil {
			b.Fatalf("publish: %v", err)
		}
	}
}

// BenchmarkPublishSubscribe publishes envelopes one at a time and measures
// the delay until each subscriber receives each one. It reports deliveries
// per second and the p50 and p99 publish-to-receive latency.
func BenchmarkPublishSubscribe(b *testing.B) {
	for _, subscribers := range []int{1, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", subscribers), func(b *testing.B) {
			benchPublishSubscribe(b, subscribers)
		})
	}
}

func benchPublishSubscribe(b *testing.B, subscribers int) {
	n := startNode(b, testDatabase(b), Config{}, func(n *Node) { n.subscriberBuffer = 1 << 16 })
	pub := dialNode(b, n.GRPCAddr())
	// Subscribers share a few connections, as a real process would.
	conns := make([]messagev1.MessageApiClient, 4)
	for i := range conns {
		conns[i] = dialNode(b, n.GRPCAddr())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t := topic("bench")

	var mu sync.Mutex
	latencies := make([]time.Duration, 0, b.N*subscribers)
	var wg sync.WaitGroup
	for i := 0; i < subscribers; i++ {
		s, err := conns[i%len(conns)].Subscribe(ctx, &messagev1.SubscribeRequest{ContentTopics: []string{t}})
		if err != nil {
			b.Fatalf("subscribe: %v", err)
		}
		if _, err := s.Header(); err != nil {
			b.Fatalf("subscribe header: %v", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, b.N)
			for len(local) < b.N {
				e, err := s.Recv()
				if err != nil {
					b.Errorf("receive: %v", err)
					return
				}
				sent := int64(binary.BigEndian.Uint64(e.Message))
				local = append(local, time.Duration(time.Now().UnixNano()-sent))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}()
	}
	testkit.WaitFor(b, 20*time.Second, func() bool { return n.fanout.subscriberCount(t) == subscribers }, "subscribers registered")

	msg := make([]byte, 256)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		binary.BigEndian.PutUint64(msg, uint64(time.Now().UnixNano()))
		e := &messagev1.Envelope{ContentTopic: t, TimestampNs: uint64(i + 1), Message: msg}
		if _, err := pub.Publish(ctx, &messagev1.PublishRequest{Envelopes: []*messagev1.Envelope{e}}); err != nil {
			b.Fatalf("publish: %v", err)
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if len(latencies) != b.N*subscribers {
		b.Fatalf("received %d of %d deliveries", len(latencies), b.N*subscribers)
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(latencies[len(latencies)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Nanoseconds()), "p99-ns")
}
