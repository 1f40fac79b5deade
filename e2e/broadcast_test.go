package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// subscriberPool is n Go XMTP clients with their contacts published,
// subscribed to a bridge by rows in its subscribers table (the subscribe
// command itself is shown in actors.TestSubscribersGetEachBroadcastOnce).
type subscriberPool struct {
	t       testing.TB
	clients []*client.Client
}

func newSubscriberPool(t testing.TB, grpcAddr, db, bridgeID string, n int) *subscriberPool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	xc, err := api.Dial(ctx, grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = xc.Close() })
	p := &subscriberPool{t: t, clients: make([]*client.Client, n)}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				k, err := keys.Generate()
				if err == nil {
					p.clients[i], err = client.New(client.Config{Bundle: k, API: xc})
				}
				if err == nil {
					err = p.clients[i].Start(ctx)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("start subscriber: %v", err)
	}
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows := make([][]any, n)
	for i, c := range p.clients {
		rows[i] = []any{bridgeID, c.Address()}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"subscribers"}, []string{"bridge_id", "address"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	return p
}

// counts returns, per subscriber, how many messages from addr had each
// text.
func (p *subscriberPool) counts(addr string) ([]map[string]int, error) {
	out := make([]map[string]int, len(p.clients))
	var wg sync.WaitGroup
	errs := make(chan error, len(p.clients))
	sem := make(chan struct{}, 16)
	for i, c := range p.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			convs, err := c.Conversations(ctx)
			if err != nil {
				errs <- err
				return
			}
			got := map[string]int{}
			for _, conv := range convs {
				msgs, err := c.Messages(ctx, conv.Topic)
				if err != nil {
					errs <- err
					return
				}
				for _, m := range msgs {
					if strings.EqualFold(m.Sender, addr) {
						text, _ := m.Content.Text()
						got[text]++
					}
				}
			}
			out[i] = got
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return nil, err
	}
	return out, nil
}

// everyOnce reports whether every subscriber has each text exactly once;
// more than once fails the test at once.
func (p *subscriberPool) everyOnce(addr string, texts ...string) bool {
	p.t.Helper()
	all, err := p.counts(addr)
	if err != nil {
		return false
	}
	done := true
	for i, got := range all {
		for _, text := range texts {
			switch n := got[text]; {
			case n > 1:
				p.t.Fatalf("subscriber %d got %q %d times", i, text, n)
			case n == 0:
				done = false
			}
		}
	}
	return done
}

// TestBroadcastReachesAThousandSubscribersOnceThroughKill9: one broadcast
// to 1,000 subscribers reaches each exactly once; a second one, during
// which the node that hosts the bridge is killed with -9, reaches each
// exactly once too, finished by the other node.
func TestBroadcastReachesAThousandSubscribersOnceThroughKill9(t *testing.T) {
	t.Parallel()
	c := newBridgeCluster(t, clusterOpts{provider: "automanaged", nodes: 2, tune: map[string]string{"BRIDGE_BROADCAST_RATE": "100"}})
	entry := c.nodes[0]
	acct := mustCall(t, 201, "POST", entry.api+"/v1/accounts", "", map[string]any{"name": "owner", "signupKey": signupKey})
	c.apiKey = str(acct, "apiKey")
	created := mustCall(t, 201, "POST", entry.api+"/v1/bridges", c.apiKey, map[string]any{
		"name": "news", "forward": map[string]any{"url": "http://127.0.0.1:9/unused"},
	})
	id, addr := str(created, "bridge", "id"), str(created, "bridge", "address")
	host := c.hostOf(id)
	pool := newSubscriberPool(t, c.x.xmtpGRPC, c.x.db, id, 1000)
	status := func(n *clusterNode, bid string) map[string]any {
		return mustCall(t, 200, "GET", n.api+"/v1/bridges/"+id+"/broadcasts/"+bid, c.apiKey, nil)
	}

	first := mustCall(t, 202, "POST", entry.api+"/v1/bridges/"+id+"/broadcasts", c.apiKey, map[string]any{"content": "first news"})
	if first["recipients"] != 1000.0 {
		t.Fatalf("broadcast: %v", first)
	}
	testkit.WaitFor(t, 5*time.Minute, func() bool {
		st := status(entry, str(first, "id"))
		return st["broadcast"].(map[string]any)["sent"] == 1000.0
	}, "the first broadcast sent")
	testkit.WaitFor(t, 2*time.Minute, func() bool { return pool.everyOnce(addr, "first news") }, "each subscriber has the first broadcast")

	// Kill -9 of the host mid-broadcast.
	second := mustCall(t, 202, "POST", entry.api+"/v1/bridges/"+id+"/broadcasts", c.apiKey, map[string]any{"content": "second news"})
	bid := str(second, "id")
	testkit.WaitFor(t, 2*time.Minute, func() bool {
		st := status(entry, bid)["broadcast"].(map[string]any)
		return st["sent"].(float64) >= 100
	}, "the second broadcast under way")
	survivor := c.nodes[0]
	if survivor == host {
		survivor = c.nodes[1]
	}
	st := status(survivor, bid)["broadcast"].(map[string]any)
	host.kill9()
	if st["pending"].(float64) == 0 {
		t.Fatalf("the broadcast was done before the kill: %v", st)
	}
	testkit.WaitFor(t, 5*time.Minute, func() bool {
		st := status(survivor, bid)["broadcast"].(map[string]any)
		return st["sent"] == 1000.0 && st["failed"] == 0.0 && st["pending"] == 0.0
	}, "the second broadcast finished by the other node")
	testkit.WaitFor(t, 2*time.Minute, func() bool {
		return pool.everyOnce(addr, "first news", "second news")
	}, "each subscriber has both broadcasts once")
	if got := fmt.Sprint(c.hostOf(id).id); got != survivor.id {
		t.Fatalf("bridge hosted by %s, want %s", got, survivor.id)
	}
}
