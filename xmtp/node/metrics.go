package node

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a request is rejected, used as the reason label of
// bridge_xmtpnode_requests_rejected_total.
const (
	reasonTooLarge        = "envelope_too_large"
	reasonEmptyEnvelope   = "empty_envelope"
	reasonTooManyTopics   = "too_many_topics"
	reasonNoTopics        = "no_topics"
	reasonBadTopic        = "malformed_topic"
	reasonBadTimestamp    = "bad_timestamp"
	reasonBadCursor       = "bad_cursor"
	reasonBadLimit        = "bad_limit"
	reasonUnauthenticated = "unauthenticated"
	reasonForbidden       = "permission_denied"
	reasonBodyTooLarge    = "body_too_large"
	reasonBusy            = "busy"
)

// metrics are the node's Prometheus instruments.
type metrics struct {
	published prometheus.Counter
	relayed   prometheus.Counter
	// ephemeralDropped counts ephemeral envelopes not relayed to a
	// subscriber without room for them.
	ephemeralDropped prometheus.Counter
	subscribers      prometheus.Gauge
	cutOff           prometheus.Counter
	rejected         *prometheus.CounterVec
	refused          *prometheus.CounterVec
	queryTime        prometheus.Histogram
	topicSets        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_xmtpnode_envelopes_published_total",
			Help: "Envelopes stored by the local XMTP node (duplicates not counted).",
		}),
		relayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_xmtpnode_envelopes_relayed_total",
			Help: "Envelopes of ephemeral topics (/xmtp/0/mE-...) the local XMTP node relayed to its streams without storing them.",
		}),
		ephemeralDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_xmtpnode_ephemeral_dropped_total",
			Help: "Envelopes of ephemeral topics not relayed to a subscription stream whose buffer was half full: ephemeral delivery is best effort and never cuts a stream off.",
		}),
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bridge_xmtpnode_subscribers",
			Help: "Subscription streams open on the local XMTP node.",
		}),
		cutOff: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_xmtpnode_subscribers_cut_off_total",
			Help: "Subscription streams ended because the subscriber fell behind: its buffer (envelopes or bytes) filled, or a gateway stream write timed out; the client re-subscribes and catches up with Query.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_xmtpnode_requests_rejected_total",
			Help: "Requests rejected by the local XMTP node, by reason.",
		}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_xmtpnode_subscriptions_refused_total",
			Help: "Subscriptions refused by the local XMTP node because a cap was reached, per client address (per_client) or for the node (node_total).",
		}, []string{"reason"}),
		queryTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bridge_xmtpnode_query_duration_seconds",
			Help:    "Time to answer one query from the envelope store.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		topicSets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_xmtpnode_subscribe_topic_sets_total",
			Help: "Topic sets received on Subscribe2 streams: the first of each stream and every change after it, each replacing the last whole.",
		}),
	}
	var err error
	m.published = register(reg, m.published, &err)
	m.relayed = register(reg, m.relayed, &err)
	m.ephemeralDropped = register(reg, m.ephemeralDropped, &err)
	m.subscribers = register(reg, m.subscribers, &err)
	m.cutOff = register(reg, m.cutOff, &err)
	m.rejected = register(reg, m.rejected, &err)
	m.refused = register(reg, m.refused, &err)
	m.queryTime = register(reg, m.queryTime, &err)
	m.topicSets = register(reg, m.topicSets, &err)
	for _, r := range []string{reasonTooLarge, reasonEmptyEnvelope, reasonTooManyTopics, reasonNoTopics, reasonBadTopic,
		reasonBadTimestamp, reasonBadCursor, reasonBadLimit, reasonUnauthenticated, reasonForbidden, reasonBodyTooLarge, reasonBusy} {
		m.rejected.WithLabelValues(r)
	}
	for _, r := range []string{refusedPerClient, refusedNodeTotal} {
		m.refused.WithLabelValues(r)
	}
	return m, err
}

// register registers c on reg. When a node is restarted on the same
// registry the collector already exists; the existing one is reused so the
// counts carry on.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		if *errp == nil {
			*errp = err
		}
	}
	return c
}
