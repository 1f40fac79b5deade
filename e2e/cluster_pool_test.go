package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// sentMsg is one message a pool published.
type sentMsg struct {
	bridge int // index into the pool's bridges
	sender int
	at     time.Time // when the publish returned
}

// xmtpPool is a set of Go XMTP senders that message the bridges of a
// cluster test. Sender i messages the bridges whose index is i modulo the
// pool size, so each bridge has one conversation. Every sender streams its
// inbound messages, so the pool sees the bridges' replies as they come;
// the final check reads them again with queries of the XMTP node.
type xmtpPool struct {
	t       testing.TB
	db      string // the cluster's database, for waitQuiet
	bridges []clusterBridge
	senders []*client.Client
	ctx     context.Context
	cancel  context.CancelFunc

	mu        sync.Mutex
	seq       int
	sent      map[string]sentMsg
	replies   map[string]int       // text -> replies seen on the streams
	repliedAt map[string]time.Time // text -> first reply seen
	errs      []error

	loop   sync.WaitGroup
	stopCh chan struct{}
}

// newXMTPPool makes n senders with published contacts on the cluster's
// XMTP node and starts their inbound streams.
func newXMTPPool(t testing.TB, c *bridgeCluster, bridges []clusterBridge, n int) *xmtpPool {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	defer dcancel()
	xc, err := api.Dial(dctx, c.x.xmtpGRPC)
	if err != nil {
		t.Fatalf("dial xmtp node: %v", err)
	}
	t.Cleanup(func() { _ = xc.Close() })
	p := &xmtpPool{
		t: t, db: c.x.db, bridges: bridges, ctx: ctx, cancel: cancel, sent: map[string]sentMsg{},
		replies: map[string]int{}, repliedAt: map[string]time.Time{}, stopCh: make(chan struct{}),
	}
	byAddr := map[string]bool{}
	for _, b := range bridges {
		byAddr[strings.ToLower(b.Address)] = true
	}
	for range n {
		k, err := keys.Generate()
		if err != nil {
			t.Fatal(err)
		}
		cl, err := client.New(client.Config{Bundle: k, API: xc})
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Start(dctx); err != nil {
			t.Fatalf("start sender: %v", err)
		}
		in, err := cl.Inbound(ctx)
		if err != nil {
			t.Fatalf("stream the sender's inbound messages: %v", err)
		}
		go func() {
			for m := range in {
				if !byAddr[strings.ToLower(m.Sender)] {
					continue
				}
				text, _ := m.Content.Text()
				p.noteReply(strings.TrimPrefix(text, "echo: "))
			}
		}()
		p.senders = append(p.senders, cl)
	}
	return p
}

func (p *xmtpPool) noteReply(text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// A reply can beat the sender's bookkeeping by a hair, so it is counted
	// whether or not the text is known yet; the final check decides about
	// replies to texts nobody sent, from queries of the XMTP node.
	p.replies[text]++
	if _, ok := p.repliedAt[text]; !ok {
		p.repliedAt[text] = time.Now()
	}
}

// send publishes one message tagged tag to bridge i and returns its text.
// A publish error is recorded and fails the test at the next check: the
// XMTP node stays up in every cluster test.
func (p *xmtpPool) send(i int, tag string) (string, error) {
	p.mu.Lock()
	p.seq++
	text := fmt.Sprintf("%s b%03d #%d", tag, i, p.seq)
	p.mu.Unlock()
	s := i % len(p.senders)
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if _, err := p.senders[s].SendText(ctx, p.bridges[i].Address, text); err != nil {
		err = fmt.Errorf("sender %d to bridge %d: %w", s, i, err)
		p.mu.Lock()
		p.errs = append(p.errs, err)
		p.mu.Unlock()
		return "", err
	}
	p.mu.Lock()
	p.sent[text] = sentMsg{bridge: i, sender: s, at: time.Now()}
	p.mu.Unlock()
	return text, nil
}

// round sends one message tagged tag to every bridge, each sender
// publishing its share in order, and returns the texts.
func (p *xmtpPool) round(tag string) []string {
	p.t.Helper()
	texts := make([]string, len(p.bridges))
	var wg sync.WaitGroup
	for s := range p.senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := s; i < len(p.bridges); i += len(p.senders) {
				texts[i], _ = p.send(i, tag)
			}
		}()
	}
	wg.Wait()
	p.checkErrors()
	return texts
}

// startContinuous makes every sender message its bridges in turn, one
// message per interval, until stop.
func (p *xmtpPool) startContinuous(interval time.Duration) {
	for s := range p.senders {
		p.loop.Add(1)
		go func() {
			defer p.loop.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for k := 0; ; k++ {
				var mine []int
				for i := s; i < len(p.bridges); i += len(p.senders) {
					mine = append(mine, i)
				}
				if len(mine) == 0 {
					return
				}
				if _, err := p.send(mine[k%len(mine)], "c"); err != nil {
					return
				}
				select {
				case <-p.stopCh:
					return
				case <-tick.C:
				}
			}
		}()
	}
}

// stop ends the continuous senders and waits for them.
func (p *xmtpPool) stop() {
	select {
	case <-p.stopCh:
	default:
		close(p.stopCh)
	}
	p.loop.Wait()
	p.checkErrors()
}

func (p *xmtpPool) checkErrors() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.errs) > 0 {
		p.t.Fatalf("sending failed: %v", p.errs[0])
	}
}

// sentCount returns how many messages were published so far.
func (p *xmtpPool) sentCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

// unanswered returns the texts without a reply on the streams yet.
func (p *xmtpPool) unanswered(texts []string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, text := range texts {
		if p.replies[text] == 0 {
			out = append(out, text)
		}
	}
	return out
}

// waitAnswered waits until each of texts got a reply on the streams and
// returns when the last one came.
func (p *xmtpPool) waitAnswered(texts []string, timeout time.Duration, what string) time.Time {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p.checkErrors()
		left := p.unanswered(texts)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %d of %d messages got no reply within %s, e.g. %q", what, len(left), len(texts), timeout, firstN(left, 5))
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var last time.Time
	for _, text := range texts {
		if at := p.repliedAt[text]; at.After(last) {
			last = at
		}
	}
	return last
}

// queryReplies counts the bridges' replies per message text by reading
// every conversation of every sender from the XMTP node; the streams can
// miss nothing here.
func (p *xmtpPool) queryReplies() (map[string]int, error) {
	ctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	byAddr := map[string]bool{}
	for _, b := range p.bridges {
		byAddr[strings.ToLower(b.Address)] = true
	}
	out := map[string]int{}
	for _, c := range p.senders {
		convs, err := c.Conversations(ctx)
		if err != nil {
			return nil, err
		}
		for _, conv := range convs {
			if !byAddr[strings.ToLower(conv.Peer)] {
				continue
			}
			msgs, err := c.Messages(ctx, conv.Topic)
			if err != nil {
				return nil, err
			}
			for _, m := range msgs {
				if !strings.EqualFold(m.Sender, conv.Peer) {
					continue
				}
				text, _ := m.Content.Text()
				out[strings.TrimPrefix(text, "echo: ")]++
			}
		}
	}
	return out, nil
}

// checkNothingLost waits until every message the pool sent reached the
// target and got a reply, then checks: each reached the target only from
// the bridge it was sent to and under one webhook-id (repeats allowed),
// each got exactly one XMTP reply (counted from queries of the XMTP node
// once the nodes are quiet), no reply answers a message nobody sent, and
// every signature was valid.
func (p *xmtpPool) checkNothingLost(tg *webhooktest.Target, timeout time.Duration) {
	t := p.t
	t.Helper()
	p.checkErrors()
	p.mu.Lock()
	sent := make(map[string]sentMsg, len(p.sent))
	for k, v := range p.sent {
		sent[k] = v
	}
	p.mu.Unlock()
	testkit.WaitFor(t, timeout, func() bool {
		for text := range sent {
			if !tg.Has(text) {
				return false
			}
		}
		return true
	}, "all %d messages at the target", len(sent))
	var replies map[string]int
	var missing []string
	deadline := time.Now().Add(timeout)
	for {
		r, err := p.queryReplies()
		if err == nil {
			replies, missing = r, nil
			for text := range sent {
				if r[text] == 0 {
					missing = append(missing, text)
				}
			}
			if len(missing) == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			sort.Strings(missing)
			t.Fatalf("%d of %d messages got no XMTP reply within %s (last query error: %v), e.g. %q",
				len(missing), len(sent), timeout, err, firstN(missing, 5))
		}
		time.Sleep(time.Second)
	}
	// A duplicate reply could still come from a delivery that is due or a
	// reply not marked sent; once there is neither, the count is final.
	pgtest.WaitQuiet(t, p.db, timeout)
	if r, err := p.queryReplies(); err == nil {
		replies = r
	} else {
		t.Fatalf("read the replies again: %v", err)
	}

	byText := tg.ByContent()
	repeats, doubled := 0, 0
	for _, text := range sortedKeys(sent) {
		m := sent[text]
		h := byText[text]
		if len(h.IDs) != 1 {
			t.Errorf("%q reached the target under %d webhook-ids, want 1 (a repeat carries the same id)", text, len(h.IDs))
		}
		if len(h.Slugs) != 1 || !h.Slugs[p.bridges[m.bridge].slug] {
			t.Errorf("%q reached the target from bridges %v, want only bridge %d's hook", text, sortedKeys(h.Slugs), m.bridge)
		}
		repeats += h.Requests - 1
		if n := replies[text]; n != 1 {
			doubled++
			if doubled <= 20 {
				t.Errorf("%q got %d XMTP replies, want exactly 1", text, n)
			}
		}
	}
	if doubled > 20 {
		t.Errorf("... %d messages in all did not get exactly one reply", doubled)
	}
	for text, n := range replies {
		if _, ok := sent[text]; !ok {
			t.Errorf("a bridge replied %d times to %q, which nobody sent", n, text)
		}
	}
	if bad, unknown := len(tg.BadSignatures()), tg.Unknown(); bad != 0 || unknown != 0 {
		t.Errorf("%d requests had a bad signature and %d came to an unknown hook", bad, unknown)
	}
	t.Logf("%d messages to %d bridges: %d requests at the target (%d repeats, each under its first webhook-id), one XMTP reply each",
		len(sent), len(p.bridges), tg.Requests(), repeats)
}
