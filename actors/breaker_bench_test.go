package actors

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/client"
)

// BenchmarkBreakerRecovery measures the recovery flush: a backlog of 1,000
// messages arrives while the endpoint is down (the breaker opens); the
// figure recovery_s is the time from the endpoint answering again to the
// last reply published. In the same run, healthy_s is the time from the
// first of 1,000 messages sent to an endpoint that was never down to its
// last reply, and healthy_publish_s the part of it the senders took to
// publish them.
func BenchmarkBreakerRecovery(b *testing.B) {
	const n, senders = 1000, 8
	e := newEnv(b)
	rt, _ := e.runtime("bench", func(c *Config) {
		c.Breaker = BreakerConfig{OpenAfter: 3, ProbeMin: 200 * time.Millisecond, ProbeMax: 200 * time.Millisecond}
		c.SweepInterval = 200 * time.Millisecond
	})
	clients := make([]*client.Client, senders)
	for i := range clients {
		clients[i] = e.sender()
	}
	ctx := context.Background()
	bridge := func(ft *flakyTarget) persistence.Bridge {
		br, secret := e.bridge(ft.URL, persistence.FormatJSON, func(f *persistence.ForwardConfig) { f.MaxConcurrency = 16 })
		ft.SetSecret(secret)
		if err := rt.Activate(ctx, br.ID); err != nil {
			b.Fatalf("activate: %v", err)
		}
		return br
	}
	send := func(to, tag string) {
		var wg sync.WaitGroup
		for s, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := s; i < n; i += senders {
					if _, err := c.SendText(ctx, to, fmt.Sprintf("%s-%04d", tag, i)); err != nil {
						b.Errorf("send: %v", err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	sent := func(bridgeID string) bool {
		return e.countRows(b, `SELECT count(*) FROM reply_outbox WHERE bridge_id = $1 AND status = 'sent'`, bridgeID) == n
	}
	var recovery, healthy, publish time.Duration
	b.ResetTimer()
	for range b.N {
		down := newFlakyTarget(b, persistence.FormatJSON, 0)
		down.down.Store(true)
		db := bridge(down)
		send(db.Address, "backlog")
		testkit.WaitFor(b, 2*time.Minute, func() bool {
			return e.countRows(b, `SELECT count(*) FROM deliveries WHERE bridge_id = $1`, db.ID) == n
		}, "the backlog recorded")
		testkit.WaitFor(b, time.Minute, func() bool { return e.health(b, db.ID).State == persistence.EndpointOpen }, "the breaker open")
		down.down.Store(false)
		t0 := time.Now()
		testkit.WaitFor(b, 2*time.Minute, func() bool { return sent(db.ID) }, "every reply of the backlog")
		recovery += time.Since(t0)

		up := newFlakyTarget(b, persistence.FormatJSON, 0)
		hb := bridge(up)
		t1 := time.Now()
		send(hb.Address, "healthy")
		publish += time.Since(t1)
		testkit.WaitFor(b, 2*time.Minute, func() bool { return sent(hb.ID) }, "every reply of the healthy bridge")
		healthy += time.Since(t1)
	}
	b.ReportMetric(recovery.Seconds()/float64(b.N), "recovery_s")
	b.ReportMetric(healthy.Seconds()/float64(b.N), "healthy_s")
	b.ReportMetric(publish.Seconds()/float64(b.N), "healthy_publish_s")
}
