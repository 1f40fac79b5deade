package actors

// The live hub: one per node, whatever the number of identities and
// sockets. It keeps the node's live sessions (one per consumer socket,
// opened by the HTTP front), listens on Postgres for new live messages
// (LISTEN bridge_live: the grain of a bridge, on any node, announces each
// one it stores) and wakes the sessions of that bridge. On a timer it
// renews the claims its sessions hold, wakes every session (a missed
// announcement costs at most one period) and refreshes the backlog
// metrics. It runs two goroutines; a session costs none of its own here.
//
// Delivery rules. Every message is a row until a consumer acknowledges it.
// A session claims the rows it sends, at most its window of them
// unacknowledged; a claim lasts ClaimTTL and is renewed while the socket
// is up, so each message goes to one consumer of the bridge at a time. A
// session that closes gives its claims back; one whose node died loses
// them when they lapse. Either way the messages go out again: at least
// once, oldest first.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/persistence"
)

// Defaults of the live hub.
const (
	DefaultLiveWindow   = 100
	MaxLiveWindow       = 1000
	DefaultLiveClaimTTL = 15 * time.Second
)

// LiveStore is the part of the store the live hub uses.
type LiveStore interface {
	ClaimLive(ctx context.Context, bridgeID, consumer string, after int64, limit int, ttl time.Duration) ([]persistence.LiveMessage, error)
	AckLive(ctx context.Context, bridgeID, consumer, messageID string) error
	RenewLiveClaims(ctx context.Context, consumers []string, ttl time.Duration) error
	ReleaseLive(ctx context.Context, consumer string) error
	LiveBacklog(ctx context.Context) (persistence.LiveBacklog, error)
	ListenLive(ctx context.Context, ready func(), fn func(persistence.LiveEvent)) error
	RevokedAPIKeys(ctx context.Context, keyIDs []string) ([]string, error)
	LiveTarget(ctx context.Context, bridgeID, messageID string) (persistence.LiveTarget, error)
	EnqueueLiveReply(ctx context.Context, messageID string, r persistence.Reply, replyMessageID string) (string, error)
	ConversationByTopic(ctx context.Context, bridgeID, topic string) (persistence.Conversation, error)
	KeyBundle(ctx context.Context, bridgeID string) ([]byte, error)
}

var _ LiveStore = (*persistence.Store)(nil)

// LiveConfig configures a LiveHub.
type LiveConfig struct {
	Store      LiveStore
	NodeID     string
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Window is the default number of messages a consumer may hold
	// unacknowledged; DefaultLiveWindow when 0.
	Window int
	// ClaimTTL is how long a claim lasts without renewal;
	// DefaultLiveClaimTTL when 0. The hub renews claims every third of it.
	ClaimTTL time.Duration
	// Nudge asks the grain of a bridge, wherever it runs, to publish its
	// due outbox replies now. Runtime.Nudge does.
	Nudge func(bridgeID string)
}

// LiveHub is the node's registry of live sessions; see the file comment.
type LiveHub struct {
	cfg     LiveConfig
	log     *slog.Logger
	metrics *liveMetrics

	mu       sync.Mutex
	sessions map[string]map[*LiveSession]struct{} // by bridge id
	ready    bool

	stop chan struct{}
	done sync.WaitGroup
}

// NewLiveHub builds a hub and registers its metrics.
func NewLiveHub(cfg LiveConfig) (*LiveHub, error) {
	if cfg.Store == nil || cfg.Registerer == nil {
		return nil, errors.New("new live hub: Store and Registerer are required")
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultLiveWindow
	}
	if cfg.ClaimTTL <= 0 {
		cfg.ClaimTTL = DefaultLiveClaimTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newLiveMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("new live hub: %w", err)
	}
	return &LiveHub{cfg: cfg, log: cfg.Logger, metrics: m, sessions: map[string]map[*LiveSession]struct{}{}}, nil
}

// Window returns the default window of a session.
func (h *LiveHub) Window() int { return h.cfg.Window }

// Start runs the listener and the timer until Stop.
func (h *LiveHub) Start() {
	h.stop = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	h.done.Add(3)
	go func() {
		defer h.done.Done()
		<-h.stop
		cancel()
	}()
	go func() {
		defer h.done.Done()
		h.listen(ctx)
	}()
	go func() {
		defer h.done.Done()
		h.tick(ctx)
	}()
}

// Stop ends the hub's goroutines. Sessions still open keep their claims
// until they close or the claims lapse.
func (h *LiveHub) Stop() {
	if h.stop == nil {
		return
	}
	close(h.stop)
	h.done.Wait()
}

// Ready reports whether the hub listens for announcements.
func (h *LiveHub) Ready() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ready
}

func (h *LiveHub) setReady(v bool) {
	h.mu.Lock()
	h.ready = v
	h.mu.Unlock()
}

// listen keeps one LISTEN connection up; after a failure it listens again
// and wakes every session, since announcements may have been missed.
func (h *LiveHub) listen(ctx context.Context) {
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := h.cfg.Store.ListenLive(ctx, func() {
			h.setReady(true)
			h.wakeAll()
		}, h.event)
		h.setReady(false)
		if ctx.Err() != nil {
			return
		}
		h.log.Warn("live listener", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func (h *LiveHub) tick(ctx context.Context) {
	t := time.NewTicker(h.cfg.ClaimTTL / 3)
	defer t.Stop()
	for {
		h.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// event handles one announcement: a bridge's new live message wakes its
// sessions; a revoked API key ends the sessions opened with it.
func (h *LiveHub) event(e persistence.LiveEvent) {
	if e.RevokedKeyID != "" {
		h.revokeKey(e.RevokedKeyID)
		return
	}
	h.wakeBridge(e.BridgeID)
}

// revokeKey tells the sessions opened with the API key to close.
func (h *LiveHub) revokeKey(keyID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ss := range h.sessions {
		for s := range ss {
			if s.keyID == keyID {
				s.revoke()
			}
		}
	}
}

// refresh renews the claims of the node's sessions, ends those whose API
// key was revoked (in case the announcement was missed), wakes them all
// and updates the backlog gauges.
func (h *LiveHub) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.ClaimTTL/3)
	defer cancel()
	var consumers, keyIDs []string
	seenKey := map[string]bool{}
	h.mu.Lock()
	for _, ss := range h.sessions {
		for s := range ss {
			consumers = append(consumers, s.consumer)
			if s.keyID != "" && !seenKey[s.keyID] {
				seenKey[s.keyID] = true
				keyIDs = append(keyIDs, s.keyID)
			}
		}
	}
	h.mu.Unlock()
	if err := h.cfg.Store.RenewLiveClaims(ctx, consumers, h.cfg.ClaimTTL); err != nil && ctx.Err() == nil {
		h.log.Warn("renew live claims", "error", err)
	}
	revoked, err := h.cfg.Store.RevokedAPIKeys(ctx, keyIDs)
	if err != nil && ctx.Err() == nil {
		h.log.Warn("check the keys of live sockets", "error", err)
	}
	for _, k := range revoked {
		h.revokeKey(k)
	}
	h.wakeAll()
	if b, err := h.cfg.Store.LiveBacklog(ctx); err == nil {
		h.metrics.stored.Set(float64(b.Pending))
		h.metrics.oldest.Set(b.Oldest.Seconds())
	}
}

func (h *LiveHub) wakeBridge(bridgeID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.sessions[bridgeID] {
		s.wake()
	}
}

func (h *LiveHub) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ss := range h.sessions {
		for s := range ss {
			s.wake()
		}
	}
}

// Open starts a session of a consumer of bridgeID, authenticated with the
// API key keyID, that wants the messages after the cursor after, with at
// most window unacknowledged (the hub's default when 0). Revoking the key
// ends the session (LiveSession.Revoked).
func (h *LiveHub) Open(bridgeID, keyID string, after int64, window int) *LiveSession {
	if window <= 0 || window > MaxLiveWindow {
		window = h.cfg.Window
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	s := &LiveSession{
		hub: h, bridgeID: bridgeID, keyID: keyID, revoked: make(chan struct{}), consumer: h.cfg.NodeID + "/" + hex.EncodeToString(nonce[:]),
		after: after, window: window, inflight: map[string]time.Time{}, wakeC: make(chan struct{}, 1),
	}
	s.wake()
	h.mu.Lock()
	if h.sessions[bridgeID] == nil {
		h.sessions[bridgeID] = map[*LiveSession]struct{}{}
	}
	h.sessions[bridgeID][s] = struct{}{}
	n := h.count()
	h.mu.Unlock()
	h.metrics.consumers.Set(float64(n))
	return s
}

// count returns the number of sessions; h.mu is held.
func (h *LiveHub) count() int {
	n := 0
	for _, ss := range h.sessions {
		n += len(ss)
	}
	return n
}

func (h *LiveHub) forget(s *LiveSession) {
	h.mu.Lock()
	delete(h.sessions[s.bridgeID], s)
	if len(h.sessions[s.bridgeID]) == 0 {
		delete(h.sessions, s.bridgeID)
	}
	n := h.count()
	h.mu.Unlock()
	h.metrics.consumers.Set(float64(n))
}

// Closed counts a session the front closed, by reason: slow (window full
// for too long, or writes blocked), protocol, gone (the consumer left),
// revoked (its API key was revoked) or shutdown.
func (h *LiveHub) Closed(reason string) {
	if c, err := h.metrics.closes.GetMetricWithLabelValues(reason); err == nil {
		c.Inc()
	}
}
