package actors

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the runtime's instruments. Identities are never labels: a
// node hosts too many of them.
type metrics struct {
	messagesIn  *prometheus.CounterVec
	messagesOut *prometheus.CounterVec
	hosted      prometheus.Gauge
	activations *prometheus.CounterVec
	stale       prometheus.Counter
	renewErrors prometheus.Counter
	routed      prometheus.Counter
	unroutable  prometheus.Counter
	topics      prometheus.Gauge
	rejected    *prometheus.CounterVec
	// invitationsRejected counts invitations refused, by reason.
	invitationsRejected *prometheus.CounterVec
	// loopSuppressed counts replies the loop guard held back.
	loopSuppressed prometheus.Counter
	deadLetters    prometheus.Counter
	replies        *prometheus.CounterVec
	mailbox        prometheus.GaugeFunc

	members           prometheus.GaugeFunc
	topologyChanges   prometheus.Counter
	placementLag      prometheus.GaugeFunc
	unplaced          prometheus.Gauge
	rehome            prometheus.Histogram
	takeovers         prometheus.Counter
	fencedWrites      prometheus.Counter
	draining          prometheus.Gauge
	membershipRepairs prometheus.Counter
	connected         prometheus.GaugeFunc
}

// runtimeGauges are the values the runtime's gauges read at scrape time.
type runtimeGauges struct {
	backlog      func() float64
	members      func() float64
	placementLag func() float64
	connected    func() float64
}

func newMetrics(reg prometheus.Registerer, g runtimeGauges) (*metrics, error) {
	m := &metrics{
		messagesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_actor_messages_in_total",
			Help: "XMTP messages handed to a handler, by handler (forward, reverse, canary).",
		}, []string{"handler"}),
		messagesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_actor_messages_out_total",
			Help: "XMTP messages published by a handler, by handler.",
		}, []string{"handler"}),
		hosted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bridge_actor_hosted_identities",
			Help: "Bridge identities active on this node.",
		}),
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_actor_activations_total",
			Help: "Identity activations, by result (ok, lease_held, error).",
		}, []string{"result"}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_actor_stale_activations_total",
			Help: "Activations that stopped because they lost their fencing lease.",
		}),
		renewErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_actor_lease_renewal_errors_total",
			Help: "Lease renewal rounds of this node that failed; the node's identities fence themselves once their leases run out.",
		}),
		routed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_ingress_envelopes_routed_total",
			Help: "Envelopes of the node subscription routed, each once however many identities of the node hold its topic.",
		}),
		unroutable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_ingress_envelopes_unroutable_total",
			Help: "Envelopes of the node subscription whose topic no hosted identity holds.",
		}),
		topics: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bridge_ingress_topics",
			Help: "Distinct topics carried by the node subscription; a topic held by several identities of the node counts once.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_actor_envelopes_rejected_total",
			Help: "Envelopes an identity could not open, by reason; not_party: sealed with a key another identity of the node holds the topic with.",
		}, []string{"reason"}),
		invitationsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_ingress_invitations_rejected_total",
			Help: "Validly sealed invitations an identity refused, by reason: topic_in_use (another identity of the node holds the topic with other key material), foreign_key (none of the topic's messages opens with the invitation's key).",
		}, []string{"reason"}),
		loopSuppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_forward_loop_suppressed_total",
			Help: "Automatic replies not sent because their conversation reached the reply loop limit; the delivery is completed without a reply.",
		}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_forward_dead_letters_total",
			Help: "Deliveries that ran out of attempts or age and became dead letters.",
		}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_forward_replies_total",
			Help: "Outbox replies, by result (sent, retry, dead).",
		}, []string{"result"}),
	}
	m.mailbox = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bridge_ingress_backlog_envelopes",
		Help: "Envelopes received by the node subscription and not yet routed.",
	}, g.backlog)
	// Every labelled series exists from the start, at 0, so its first
	// event shows as an increase.
	for _, h := range []string{"forward", "reverse", "canary"} {
		m.messagesIn.WithLabelValues(h)
		m.messagesOut.WithLabelValues(h)
	}
	for _, r := range []string{"ok", "lease_held", "error"} {
		m.activations.WithLabelValues(r)
	}
	for _, r := range []string{"sent", "retry", "dead"} {
		m.replies.WithLabelValues(r)
	}
	m.members = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bridge_cluster_members",
		Help: "Members of the cluster in this node's view of the topology.",
	}, g.members)
	m.topologyChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bridge_cluster_topology_changes_total",
		Help: "Changes of the cluster's member set seen by this node.",
	})
	m.placementLag = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bridge_cluster_placement_lag_seconds",
		Help: "Seconds since the last topology change while identities this node owns are not all active; 0 when placement is complete.",
	}, g.placementLag)
	m.unplaced = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "bridge_cluster_unplaced_identities",
		Help: "Identities this node owns that the last placement round could not activate.",
	})
	m.rehome = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "bridge_cluster_rehome_seconds",
		Help:    "Time from a topology change until every identity this node owns is active again.",
		Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300},
	})
	m.takeovers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bridge_cluster_lease_takeovers_total",
		Help: "Leases this node took over after they expired unreleased: their holder crashed, hung or was cut off.",
	})
	m.fencedWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bridge_cluster_fenced_writes_total",
		Help: "Writes (lease renewals included), sends and webhook attempts refused because the activation no longer held the current lease.",
	})
	m.draining = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "bridge_cluster_draining",
		Help: "1 while this node drains (or has drained) its identities to the other members.",
	})
	m.membershipRepairs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bridge_cluster_membership_repairs_total",
		Help: "Members registered in etcd that this node's cluster view missed, announced again so its provider sees them.",
	})
	m.connected = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bridge_ingress_subscription_connected",
		Help: "1 when the node's XMTP subscription is established, 0 when it is down.",
	}, g.connected)
	for _, c := range []prometheus.Collector{m.messagesIn, m.messagesOut, m.hosted, m.activations, m.stale, m.renewErrors, m.routed,
		m.unroutable, m.topics, m.rejected, m.invitationsRejected, m.loopSuppressed, m.deadLetters, m.replies, m.mailbox, m.members, m.topologyChanges, m.placementLag,
		m.unplaced, m.rehome, m.takeovers, m.fencedWrites, m.draining, m.connected, m.membershipRepairs} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register actor metrics: %w", err)
		}
	}
	for _, r := range invitationRefusals {
		m.invitationsRejected.WithLabelValues(r)
	}
	return m, nil
}
