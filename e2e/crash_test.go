package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// burst is a set of Go XMTP senders, each sending its share of messages
// to one bridge in order.
type burst struct {
	t       testing.TB
	bridge  string
	senders []*client.Client
	per     int
	sent    atomic.Int64
	sentAt  sync.Map // text -> time.Time the publish returned
	done    chan struct{}
	errs    chan error
}

// newBurst makes n senders with published contacts on the XMTP node at
// grpcAddr.
func newBurst(t testing.TB, grpcAddr, bridge string, n, per int) *burst {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	xc, err := api.Dial(ctx, grpcAddr)
	if err != nil {
		t.Fatalf("dial xmtp node: %v", err)
	}
	t.Cleanup(func() { _ = xc.Close() })
	b := &burst{t: t, bridge: bridge, per: per, done: make(chan struct{}), errs: make(chan error, n)}
	for range n {
		k, err := keys.Generate()
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.New(client.Config{Bundle: k, API: xc})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatalf("start sender: %v", err)
		}
		b.senders = append(b.senders, c)
	}
	return b
}

func (b *burst) text(sender, i int) string { return fmt.Sprintf("burst %02d-%03d", sender, i) }

// total is the number of messages of the burst.
func (b *burst) total() int { return len(b.senders) * b.per }

// start sends every message; the XMTP node stays up whatever happens to
// the bridge node.
func (b *burst) start() {
	var wg sync.WaitGroup
	for s, c := range b.senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range b.per {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := c.SendText(ctx, b.bridge, b.text(s, i))
				cancel()
				if err != nil {
					b.errs <- fmt.Errorf("sender %d message %d: %w", s, i, err)
					return
				}
				b.sentAt.Store(b.text(s, i), time.Now())
				b.sent.Add(1)
			}
		}()
	}
	go func() { wg.Wait(); close(b.done) }()
}

// wait waits until every message was published.
func (b *burst) wait(timeout time.Duration) {
	b.t.Helper()
	select {
	case <-b.done:
	case err := <-b.errs:
		b.t.Fatalf("burst: %v", err)
	case <-time.After(timeout):
		b.t.Fatalf("burst: only %d of %d messages published within %s", b.sent.Load(), b.total(), timeout)
	}
	select {
	case err := <-b.errs:
		b.t.Fatalf("burst: %v", err)
	default:
	}
}

// replies counts, per message text, the bridge's replies "echo: <text>" on
// every sender's conversation topics, with a Query of the XMTP node.
func (b *burst) replies() (map[string]int, error) {
	counts, _, err := b.replyTimes()
	return counts, err
}

// replyTimes is replies with, per message text, the creation time of its
// first reply.
func (b *burst) replyTimes() (map[string]int, map[string]time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[string]int{}
	at := map[string]time.Time{}
	for _, c := range b.senders {
		convs, err := c.Conversations(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, conv := range convs {
			if !strings.EqualFold(conv.Peer, b.bridge) {
				continue
			}
			msgs, err := c.Messages(ctx, conv.Topic)
			if err != nil {
				return nil, nil, err
			}
			for _, m := range msgs {
				if !strings.EqualFold(m.Sender, b.bridge) {
					continue
				}
				text, _ := m.Content.Text()
				text = strings.TrimPrefix(text, "echo: ")
				out[text]++
				if t, ok := at[text]; !ok || m.Sent.Before(t) {
					at[text] = m.Sent
				}
			}
		}
	}
	return out, at, nil
}

// checkNothingLost waits until every message reached the target and got a
// reply, then, once the nodes are quiet (no delivery due, no reply unsent
// in the database db), checks that repeats carry the same webhook-id and
// that no message got two replies.
func (b *burst) checkNothingLost(tg *webhooktest.Target, db string) {
	t := b.t
	t.Helper()
	testkit.WaitFor(t, 3*time.Minute, func() bool {
		return tg.Texts() >= b.total()
	}, "all %d messages at the target", b.total())
	testkit.WaitFor(t, 3*time.Minute, func() bool {
		r, err := b.replies()
		if err != nil {
			return false
		}
		for s := range b.senders {
			for i := range b.per {
				if r[b.text(s, i)] == 0 {
					return false
				}
			}
		}
		return true
	}, "a reply to each of %d messages", b.total())
	pgtest.WaitQuiet(t, db, time.Minute)
	replies, err := b.replies()
	if err != nil {
		t.Fatalf("read the replies once the node is quiet: %v", err)
	}
	byText, allIDs := tg.ByContent(), tg.IDs()
	repeats := 0
	for s := range b.senders {
		for i := range b.per {
			text := b.text(s, i)
			ids := byText[text].IDs
			if len(ids) != 1 {
				t.Errorf("%q reached the target under %d webhook-ids, want 1", text, len(ids))
			}
			for id := range ids {
				repeats += allIDs[id] - 1
			}
			if n := replies[text]; n != 1 {
				t.Errorf("%q got %d replies, want exactly 1", text, n)
			}
		}
	}
	if len(byText) != b.total() {
		t.Errorf("the target got %d distinct messages, want %d", len(byText), b.total())
	}
	if bad := len(tg.BadSignatures()); bad != 0 {
		t.Errorf("%d requests had a bad signature", bad)
	}
	t.Logf("%d messages, %d requests at the target (%d repeats, each under its first webhook-id)", b.total(), tg.Requests(), repeats)
}

// echoBridge creates an account and a json bridge that replies with the
// target's answer.
func echoBridge(t testing.TB, c *cluster, tg *webhooktest.Target) (id, address string) {
	t.Helper()
	acct := mustCall(t, 201, "POST", c.api+"/v1/accounts", "", map[string]any{"name": "owner", "signupKey": signupKey})
	created := mustCall(t, 201, "POST", c.api+"/v1/bridges", str(acct, "apiKey"), map[string]any{
		"name": "echo", "forward": map[string]any{"url": tg.URL, "bodyFormat": "json", "replyMode": "reply", "maxConcurrency": 16},
	})
	tg.SetSecret(str(created, "webhookSecret"))
	return str(created, "bridge", "id"), str(created, "bridge", "address")
}

// TestKillDuringBurstLosesNothing kills the node with SIGKILL while 500
// messages arrive, starts it again, and checks that every message reached
// the target at least once (repeats under the same webhook-id) and got
// exactly one reply.
func TestKillDuringBurstLosesNothing(t *testing.T) {
	t.Parallel()
	c := newCluster(t, nil)
	tg := webhooktest.NewTarget(t, "json")
	_, addr := echoBridge(t, c, tg)
	b := newBurst(t, c.xmtpGRPC, addr, 10, 50)
	b.start()
	testkit.WaitFor(t, 2*time.Minute, func() bool { return tg.Requests() >= 100 }, "the first 100 deliveries")
	if err := c.node.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if code := c.node.wait(10 * time.Second); code != 128+int(syscall.SIGKILL) {
		t.Fatalf("node exit status %d, want death by SIGKILL", code)
	}
	t.Logf("killed the node after %d requests at the target, %d messages published", tg.Requests(), b.sent.Load())
	c.startNode()
	b.wait(2 * time.Minute)
	b.checkNothingLost(tg, c.db)
	// The killed process never released its lease: the restarted one took
	// it over once it expired, and counts that.
	if v, ok := metricSum(c.api, "bridge_cluster_lease_takeovers_total"); !ok || v < 1 {
		t.Errorf("bridge_cluster_lease_takeovers_total after a kill -9 and a restart: %v (present %v), want at least 1", v, ok)
	}
}

// TestSIGTERMDuringBurstExitsZeroAndLosesNothing stops the node with
// SIGTERM during a burst: it exits 0, and after a restart every message is
// delivered and answered exactly once, and the restarted node took the
// identity's lease without a takeover, because the stopped one released it.
func TestSIGTERMDuringBurstExitsZeroAndLosesNothing(t *testing.T) {
	t.Parallel()
	c := newCluster(t, nil)
	tg := webhooktest.NewTarget(t, "json")
	_, addr := echoBridge(t, c, tg)
	b := newBurst(t, c.xmtpGRPC, addr, 5, 30)
	b.start()
	testkit.WaitFor(t, 2*time.Minute, func() bool { return tg.Requests() >= 30 }, "the first 30 deliveries")
	if err := c.node.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := c.node.wait(45 * time.Second); code != 0 {
		t.Fatalf("node exited with %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(c.node.errs.String(), "bridge stopped") {
		t.Fatalf("the node did not log a clean stop:\n%s", testkit.Tail(c.node.errs.String(), 3000))
	}
	c.startNode()
	b.wait(2 * time.Minute)
	b.checkNothingLost(tg, c.db)
	// The stopped process released its lease: the restarted one took it
	// without waiting for it to expire, so it counts no takeover.
	if v, ok := metricSum(c.api, "bridge_cluster_lease_takeovers_total"); !ok || v != 0 {
		t.Errorf("bridge_cluster_lease_takeovers_total after a SIGTERM and a restart: %v (present %v), want 0: a graceful stop releases its leases", v, ok)
	}
}
