// Package prober is the canary prober: on a schedule, the system's canary
// identity sends a nonce to every bridge (or a random sample of them), the
// bridge's canary handler calls the API server's /canary endpoint and
// replies, and the prober matches each reply to its nonce. It records the
// round-trip time, failures and the last success of every bridge in
// Postgres and in metrics, so a missing or slow round trip raises an alert.
//
// The prober is not an actor: it is one goroutine per node with one XMTP
// stream, the canary identity's own, which carries only canary replies.
package prober

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
)

// NoncePrefix starts the text of every canary message; the nonce follows.
const NoncePrefix = "canary "

// Store is the part of the Postgres store the prober uses.
type Store interface {
	CanaryBridges(ctx context.Context) ([]persistence.CanaryTarget, error)
	RecordCanarySent(ctx context.Context, bridgeID, nonce string, sentAt time.Time) error
	RecordCanaryReceived(ctx context.Context, bridgeID, nonce string, receivedAt time.Time) (time.Duration, error)
	RecordCanaryError(ctx context.Context, bridgeID, nonce, reason string) error
}

var _ Store = (*persistence.Store)(nil)

// Messenger is the canary identity's XMTP client. client.Client implements
// it.
type Messenger interface {
	Address() string
	SendText(ctx context.Context, to, text string) (*client.Sent, error)
	Inbound(ctx context.Context) (<-chan *conversation.Message, error)
}

var _ Messenger = (*client.Client)(nil)

// Config configures a Prober.
type Config struct {
	// Store records the results; required.
	Store Store
	// Client is the canary identity; required.
	Client Messenger
	// Metrics receives the results; required (see NewMetrics).
	Metrics *Metrics
	// Logger receives the prober's logs; nil discards them.
	Logger *slog.Logger
	// Interval is the time between two rounds; default one minute.
	Interval time.Duration
	// Sample is how many bridges a round probes, chosen at random; 0
	// probes every bridge.
	Sample int
	// Timeout is how long a canary may take before it counts as failed;
	// default Interval, bounded to between 5 seconds and one minute.
	Timeout time.Duration
	// Concurrency bounds the sends of one round; default 16.
	Concurrency int
	// Leader, when set, is asked before every round; the round is skipped
	// unless it returns true. In a cluster every node runs a prober and
	// only the one holding the prober's lease sends, so a bridge gets one
	// canary per round however many nodes there are.
	Leader func(context.Context) bool
}

// Prober sends canaries and matches their replies.
type Prober struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	pending map[string]*probe // by nonce
	known   map[string]bool   // bridges with a last-success series
}

// probe is one canary in flight.
type probe struct {
	bridgeID string
	address  string
	sentAt   time.Time
}

// New checks cfg and fills its defaults.
func New(cfg Config) (*Prober, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("new canary prober: Store is required")
	case cfg.Client == nil:
		return nil, errors.New("new canary prober: Client is required")
	case cfg.Metrics == nil:
		return nil, errors.New("new canary prober: Metrics is required")
	case cfg.Sample < 0:
		return nil, errors.New("new canary prober: Sample must not be negative")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = min(max(cfg.Interval, 5*time.Second), time.Minute)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	return &Prober{cfg: cfg, log: cfg.Logger, pending: map[string]*probe{}, known: map[string]bool{}}, nil
}

// Run opens the canary identity's stream, probes at once and then every
// Interval, and expires canaries that got no reply in time, until ctx ends.
// It returns nil when ctx ends and an error when the stream cannot open.
func (p *Prober) Run(ctx context.Context) error {
	in, err := p.cfg.Client.Inbound(ctx)
	if err != nil {
		return fmt.Errorf("open canary stream: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m := range in {
			p.receive(ctx, m)
		}
	}()
	round := time.NewTicker(p.cfg.Interval)
	defer round.Stop()
	expire := time.NewTicker(min(p.cfg.Timeout/4+time.Millisecond, time.Second))
	defer expire.Stop()
	p.Round(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-round.C:
			p.Round(ctx)
		case now := <-expire.C:
			p.expire(ctx, now)
		}
	}
}

// Round sends one canary to every bridge of the round and returns the
// number sent.
func (p *Prober) Round(ctx context.Context) int {
	if p.cfg.Leader != nil && !p.cfg.Leader(ctx) {
		return 0
	}
	targets, err := p.cfg.Store.CanaryBridges(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("list canary bridges", "error", err)
		}
		return 0
	}
	p.forget(targets)
	if n := p.cfg.Sample; n > 0 && n < len(targets) {
		mrand.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
		targets = targets[:n]
	}
	sem := make(chan struct{}, p.cfg.Concurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent := 0
	for _, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if p.send(ctx, t) {
				mu.Lock()
				sent++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return sent
}

// send sends one canary and reports whether it was published.
func (p *Prober) send(ctx context.Context, t persistence.CanaryTarget) bool {
	nonce, err := newNonce()
	if err != nil {
		p.log.Error("make canary nonce", "error", err)
		return false
	}
	now := time.Now()
	if err := p.cfg.Store.RecordCanarySent(ctx, t.BridgeID, nonce, now); err != nil {
		if ctx.Err() == nil {
			p.log.Warn("record canary", "bridge", t.BridgeID, "error", err)
		}
		return false
	}
	p.mu.Lock()
	p.pending[nonce] = &probe{bridgeID: t.BridgeID, address: t.Address, sentAt: now}
	p.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	if _, err := p.cfg.Client.SendText(sctx, t.Address, NoncePrefix+nonce); err != nil {
		p.mu.Lock()
		delete(p.pending, nonce)
		p.mu.Unlock()
		p.fail(ctx, t.BridgeID, nonce, "send", fmt.Sprintf("send canary: %v", err))
		return false
	}
	p.cfg.Metrics.sent.Inc()
	return true
}

// receive matches a reply to its canary by the nonce it quotes and by its
// sender, the probed bridge.
func (p *Prober) receive(ctx context.Context, m *conversation.Message) {
	text, err := m.Content.Text()
	if err != nil {
		return
	}
	nonce, ok := quotedNonce(text)
	if !ok {
		return
	}
	p.mu.Lock()
	pr := p.pending[nonce]
	if pr != nil && strings.EqualFold(pr.address, m.Sender) {
		delete(p.pending, nonce)
	} else {
		pr = nil
	}
	p.mu.Unlock()
	if pr == nil {
		return
	}
	now := time.Now()
	rtt := now.Sub(pr.sentAt)
	if _, err := p.cfg.Store.RecordCanaryReceived(ctx, pr.bridgeID, nonce, now); err != nil && ctx.Err() == nil {
		p.log.Warn("record canary arrival", "bridge", pr.bridgeID, "error", err)
	}
	p.cfg.Metrics.rtt.Observe(rtt.Seconds())
	p.cfg.Metrics.lastSuccess.WithLabelValues(pr.bridgeID).Set(float64(now.UnixNano()) / 1e9)
	p.mu.Lock()
	p.known[pr.bridgeID] = true
	p.mu.Unlock()
	p.log.Debug("canary round trip", "bridge", pr.bridgeID, "rtt", rtt)
}

// expire fails the canaries older than Timeout.
func (p *Prober) expire(ctx context.Context, now time.Time) {
	var late []string
	var probes []*probe
	p.mu.Lock()
	for nonce, pr := range p.pending {
		if now.Sub(pr.sentAt) > p.cfg.Timeout {
			late = append(late, nonce)
			probes = append(probes, pr)
			delete(p.pending, nonce)
		}
	}
	p.mu.Unlock()
	for i, nonce := range late {
		p.fail(ctx, probes[i].bridgeID, nonce, "timeout", fmt.Sprintf("no reply within %s", p.cfg.Timeout))
	}
}

func (p *Prober) fail(ctx context.Context, bridgeID, nonce, reason, detail string) {
	p.cfg.Metrics.failures.WithLabelValues(reason).Inc()
	p.log.Warn("canary failed", "bridge", bridgeID, "reason", reason, "detail", detail)
	if err := p.cfg.Store.RecordCanaryError(ctx, bridgeID, nonce, detail); err != nil && ctx.Err() == nil {
		p.log.Warn("record canary error", "bridge", bridgeID, "error", err)
	}
}

// forget drops the last-success series of bridges that are no longer
// probed, so deleted bridges do not alert forever.
func (p *Prober) forget(targets []persistence.CanaryTarget) {
	live := make(map[string]bool, len(targets))
	for _, t := range targets {
		live[t.BridgeID] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.known {
		if !live[id] {
			p.cfg.Metrics.lastSuccess.DeleteLabelValues(id)
			delete(p.known, id)
		}
	}
}

// Pending returns the number of canaries waiting for a reply.
func (p *Prober) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}

// nonceLen is the length of a nonce: 16 random bytes in hex.
const nonceLen = 32

func newNonce() (string, error) {
	b := make([]byte, nonceLen/2)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// quotedNonce finds the canary text "canary <nonce>" in a reply, which
// quotes it (the API's /canary answers "…Your message was: canary <nonce>").
func quotedNonce(text string) (string, bool) {
	i := strings.LastIndex(text, NoncePrefix)
	if i < 0 {
		return "", false
	}
	rest := text[i+len(NoncePrefix):]
	if len(rest) < nonceLen {
		return "", false
	}
	nonce := rest[:nonceLen]
	if _, err := hex.DecodeString(nonce); err != nil || strings.ToLower(nonce) != nonce {
		return "", false
	}
	return nonce, true
}
