package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// LiveSession is one consumer socket of a bridge's live stream. The front
// calls Next when Wake fires and sends what it returns, then Ack as the
// consumer acknowledges; Close gives back what was not acknowledged. It is
// safe for concurrent use.
type LiveSession struct {
	hub      *LiveHub
	bridgeID string
	keyID    string
	consumer string
	after    int64
	window   int
	wakeC    chan struct{}

	mu       sync.Mutex
	inflight map[string]time.Time // message id → when it was sent
	closed   bool
	// revoked is closed when the session's API key is revoked.
	revoked     chan struct{}
	revokedOnce sync.Once
}

// Revoked is closed when the API key the session was opened with is
// revoked, on this node or another: the front then closes the socket.
func (s *LiveSession) Revoked() <-chan struct{} { return s.revoked }

func (s *LiveSession) revoke() {
	s.revokedOnce.Do(func() { close(s.revoked) })
}

// Consumer is the session's id in the claims it holds.
func (s *LiveSession) Consumer() string { return s.consumer }

// Window is how many messages the session may hold unacknowledged.
func (s *LiveSession) Window() int { return s.window }

// Wake fires when the session may have messages to send.
func (s *LiveSession) Wake() <-chan struct{} { return s.wakeC }

func (s *LiveSession) wake() {
	select {
	case s.wakeC <- struct{}{}:
	default:
	}
}

// Inflight returns how many messages were sent and not acknowledged, and
// since when the oldest of them waits.
func (s *LiveSession) Inflight() (int, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var oldest time.Time
	for _, at := range s.inflight {
		if oldest.IsZero() || at.Before(oldest) {
			oldest = at
		}
	}
	return len(s.inflight), oldest
}

// Next claims the next messages to send, oldest first, as many as the
// window leaves room for, and counts them as in flight.
func (s *LiveSession) Next(ctx context.Context) ([]persistence.LiveMessage, error) {
	s.mu.Lock()
	room := s.window - len(s.inflight)
	closed := s.closed
	s.mu.Unlock()
	if closed || room <= 0 {
		return nil, nil
	}
	msgs, err := s.hub.cfg.Store.ClaimLive(ctx, s.bridgeID, s.consumer, s.after, room, s.hub.cfg.ClaimTTL)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	s.mu.Lock()
	for _, m := range msgs {
		s.inflight[m.MessageID] = now
		s.hub.metrics.lag.Observe(now.Sub(m.CreatedAt).Seconds())
	}
	s.mu.Unlock()
	s.hub.metrics.sent.Add(float64(len(msgs)))
	if len(msgs) == room {
		s.wake() // there may be more once acknowledged; Next checks the room
	}
	return msgs, nil
}

// Ack acknowledges a message the session was sent.
func (s *LiveSession) Ack(ctx context.Context, messageID string) error {
	if err := s.hub.cfg.Store.AckLive(ctx, s.bridgeID, s.consumer, messageID); err != nil {
		return err
	}
	s.mu.Lock()
	_, held := s.inflight[messageID]
	delete(s.inflight, messageID)
	s.mu.Unlock()
	if held {
		s.hub.metrics.acks.Inc()
		s.wake()
	}
	return nil
}

// Reply answers a live message of the bridge in its own conversation:
// sealed here, once, into the outbox, which the grain of the bridge
// publishes. A message has one reply: replying again returns the first
// reply's id with persistence.ErrAlreadyReplied.
func (s *LiveSession) Reply(ctx context.Context, messageID, text string) (string, error) {
	st := s.hub.cfg.Store
	t, err := st.LiveTarget(ctx, s.bridgeID, messageID)
	if err != nil {
		return "", err
	}
	if t.ReplyMessageID != "" {
		return t.ReplyMessageID, fmt.Errorf("reply to %s: %w", messageID, persistence.ErrAlreadyReplied)
	}
	raw, err := st.KeyBundle(ctx, s.bridgeID)
	if err != nil {
		return "", fmt.Errorf("reply to %s: %w", messageID, err)
	}
	bundle, err := keys.UnmarshalPrivateKeyBundle(raw)
	if err != nil {
		return "", fmt.Errorf("reply to %s: decode key bundle: %w", messageID, err)
	}
	c, err := st.ConversationByTopic(ctx, s.bridgeID, t.Topic)
	if err != nil {
		return "", fmt.Errorf("reply to %s: %w", messageID, err)
	}
	conv, err := conversation.RestoreBytes(bundle.Address(), c.PeerAddress, time.Unix(0, c.CreatedNs), c.KeyMaterial)
	if err != nil {
		return "", fmt.Errorf("reply to %s: restore conversation: %w", messageID, err)
	}
	env, err := conv.Seal(bundle, content.Text(text), time.Now())
	if err != nil {
		return "", fmt.Errorf("reply to %s: seal: %w", messageID, err)
	}
	envBytes, err := proto.Marshal(env)
	if err != nil {
		return "", fmt.Errorf("reply to %s: encode: %w", messageID, err)
	}
	id, err := st.EnqueueLiveReply(ctx, messageID, persistence.Reply{
		BridgeID: s.bridgeID, Topic: t.Topic, TimestampNs: int64(env.TimestampNs), Envelope: envBytes,
	}, conversation.MessageID(env.Message))
	if err != nil && !errors.Is(err, persistence.ErrAlreadyReplied) {
		return "", err
	}
	if err == nil && s.hub.cfg.Nudge != nil {
		s.hub.cfg.Nudge(s.bridgeID)
	}
	return id, err
}

// Close ends the session and gives back the messages it holds.
func (s *LiveSession) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.hub.forget(s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.hub.cfg.Store.ReleaseLive(ctx, s.consumer); err != nil {
		// The claims lapse after ClaimTTL instead.
		s.hub.log.Warn("release live claims", "consumer", s.consumer, "error", err)
	}
	// Another consumer of the bridge on this node may take them now.
	s.hub.wakeBridge(s.bridgeID)
}

// liveMetrics are the live hub's metrics.
type liveMetrics struct {
	consumers prometheus.Gauge
	stored    prometheus.Gauge
	oldest    prometheus.Gauge
	lag       prometheus.Histogram
	sent      prometheus.Counter
	acks      prometheus.Counter
	closes    *prometheus.CounterVec
}

// LiveCloseReasons are the label values of bridge_live_closed_total.
var LiveCloseReasons = []string{"slow", "protocol", "gone", "revoked", "shutdown"}

func newLiveMetrics(reg prometheus.Registerer) (*liveMetrics, error) {
	m := &liveMetrics{
		consumers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bridge_live_consumers", Help: "Live consumer sockets connected to this node.",
		}),
		stored: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bridge_live_stored_messages", Help: "Live messages of all bridges waiting for an acknowledgement (the offline store), as this node last read it.",
		}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bridge_live_oldest_unacked_seconds", Help: "Age of the oldest live message not yet acknowledged, as this node last read it; 0 when none.",
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bridge_live_lag_seconds", Help: "Time from storing a live message to sending it to a consumer of this node.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 300, 3600, 86400},
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_live_messages_sent_total", Help: "Live messages this node sent to consumers, resends included.",
		}),
		acks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_live_acks_total", Help: "Live messages consumers of this node acknowledged.",
		}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_live_closed_total", Help: "Live consumer sockets this node closed, by reason (slow, protocol, gone, revoked, shutdown).",
		}, []string{"reason"}),
	}
	for _, r := range LiveCloseReasons {
		m.closes.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.consumers, m.stored, m.oldest, m.lag, m.sent, m.acks, m.closes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register live metrics: %w", err)
		}
	}
	return m, nil
}
