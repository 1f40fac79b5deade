package actors

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
)

// metrics are the runtime's instruments; the cluster's (members,
// placement, leases, drain) are package cluster's. Identities are never labels: a
// node hosts too many of them.
type metrics struct {
	messagesIn  *prometheus.CounterVec
	messagesOut *prometheus.CounterVec
	hosted      prometheus.Gauge
	activations *prometheus.CounterVec
	stale       prometheus.Counter
	routed      prometheus.Counter
	unroutable  prometheus.Counter
	// ingressLag is how old an envelope is when the ingress routes it.
	ingressLag prometheus.Histogram
	topics     prometheus.Gauge
	rejected   *prometheus.CounterVec
	// invitationsRejected counts invitations refused, by reason.
	invitationsRejected *prometheus.CounterVec
	// loopSuppressed counts replies the loop guard held back.
	loopSuppressed prometheus.Counter
	deadLetters    prometheus.Counter
	replies        *prometheus.CounterVec
	// repliesHeld counts replies left for the sweep behind an older reply
	// of their conversation (replies.go).
	repliesHeld prometheus.Counter
	// attemptStarts counts webhook attempts by where they started from:
	// the row and secrets read with the delivery's record (recorded) or
	// read by the attempt (read); startedRead and startedRecorded are
	// its two series.
	attemptStarts                *prometheus.CounterVec
	startedRead, startedRecorded prometheus.Counter
	// earlyAttempts counts the webhook calls started early, by outcome
	// (early.go); earlyJoined and earlyDropped are its two series.
	earlyAttempts             *prometheus.CounterVec
	earlyJoined, earlyDropped prometheus.Counter
	mailbox                   prometheus.GaugeFunc
	// failingReply is the age of the node's oldest reply failing to publish.
	failingReply   prometheus.GaugeFunc
	connected      prometheus.GaugeFunc
	catchUpFailing prometheus.GaugeFunc
	// proofs* read the subscription's set proof counts (xmtp/api
	// proof.go): publishes that went through and failed, and proofs
	// that came back.
	proofsPublished, proofsFailed, proofsSeen prometheus.CounterFunc
	// spawns and stops count the node's actors by actor: identity (the
	// grain of a bridge identity) and its children forward, reverse and
	// canary (children.go); their series are resolved once, below.
	spawns, stops                                              *prometheus.CounterVec
	spawnsIdentity, spawnsForward, spawnsReverse, spawnsCanary prometheus.Counter
	stopsIdentity, stopsForward, stopsReverse, stopsCanary     prometheus.Counter
	// panics counts the panics the node recovered from, by where.
	panics *prometheus.CounterVec
	// undelivered counts protoactor's dead letters: messages sent to an
	// actor that no longer (or never) existed.
	undelivered prometheus.Counter
	// stages times the steps of a new message's way through the bridge,
	// by step (stages.go); stage holds its series, resolved once.
	stages *prometheus.HistogramVec
	stage  [numStages]prometheus.Observer
	// statements times the batched statements on the way of a message
	// (delivery records, completions); recordStatement and
	// completeStatement are its series.
	statements                         *prometheus.HistogramVec
	recordStatement, completeStatement prometheus.Observer
}

// runtimeGauges are the values the runtime's gauges read at scrape time.
type runtimeGauges struct {
	backlog        func() float64
	connected      func() float64
	catchUpFailing func() float64
	proofs         func() api.ProofCounts
	// oldestFailingReply is the age in seconds of the oldest reply of the
	// node's activations whose publish failed and that is not out yet.
	oldestFailingReply func() float64
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
		routed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_ingress_envelopes_routed_total",
			Help: "Envelopes of the node subscription routed, each once however many identities of the node hold its topic.",
		}),
		unroutable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_ingress_envelopes_unroutable_total",
			Help: "Envelopes of the node subscription whose topic no hosted identity holds.",
		}),
		ingressLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bridge_ingress_lag_seconds",
			Help:    "Age of an envelope when the node subscription routes it: now less the envelope's timestamp, which its sender set (clock skew shows here too; negative ages count as 0). It grows when the XMTP node delivers late or the ingress falls behind.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
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
		repliesHeld: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_forward_replies_held_total",
			Help: "Replies to forwarded messages left in the outbox for the sweep because an older reply of their conversation had not gone out (its publish failed): they go out behind it, in order. It keeps growing while a reply fails to publish (see bridge_forward_reply_oldest_failing_seconds); a reply the XMTP node rejects as invalid is given up, counts as dead in bridge_forward_replies_total and frees its conversation.",
		}),
		attemptStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_forward_attempt_starts_total",
			Help: "Webhook attempts started, by what they started from: recorded (a new delivery's first attempt, with the row and the webhook secrets read in the round trip that recorded it), read (the attempt read them itself: retries, queued and swept deliveries).",
		}, []string{"source"}),
		earlyAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_forward_early_attempts_total",
			Help: "Webhook calls of new messages started while their delivery row committed, by outcome: joined (the row was created, and the call's result finished its first attempt), dropped (the message had a row already, the record was fenced or failed, or its answer never came: the result was dropped, with no attempt recorded and no reply).",
		}, []string{"outcome"}),
		spawns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_actor_spawns_total",
			Help: "Actors spawned on this node, by actor (identity: a bridge identity's grain; forward, reverse, canary: its children, spawned on first use). A restart by supervision is not a spawn (bridge_actor_restarts_total).",
		}, []string{"actor"}),
		stops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_actor_stops_total",
			Help: "Actors of this node that stopped, by actor; spawns less stops is the number alive.",
		}, []string{"actor"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_internal_panics_total",
			Help: "Panics the node recovered from, by where: a webhook attempt (attempt) or a hook of a batched statement (completes_deliver, commits_run, ...). The work is failed or left for a sweep, but each is a defect.",
		}, []string{"where"}),
		undelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_actor_undelivered_messages_total",
			Help: "Messages sent to an actor of this node that did not exist (it had stopped, or not started yet): protoactor's dead letters. A few around activations and stops are normal; the requests among them are answered and tried again.",
		}),
	}
	m.spawnsIdentity, m.spawnsForward, m.spawnsReverse, m.spawnsCanary = m.spawns.WithLabelValues("identity"),
		m.spawns.WithLabelValues("forward"), m.spawns.WithLabelValues("reverse"), m.spawns.WithLabelValues("canary")
	m.stopsIdentity, m.stopsForward, m.stopsReverse, m.stopsCanary = m.stops.WithLabelValues("identity"),
		m.stops.WithLabelValues("forward"), m.stops.WithLabelValues("reverse"), m.stops.WithLabelValues("canary")
	m.stages = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "bridge_forward_stage_seconds",
		Help: "Time a new message spends in each step of its way through the bridge, from the node subscription to its reply's publish, by stage: " +
			"open (the identity opens it and hands it to the committer), record (its delivery row's statement, with the wait for a batch), " +
			"dispatch (from the record to its attempt starting: the identity's and the forward child's mailboxes), webhook (the owner's endpoint), " +
			"seal (waiting for the conversation's older replies, and sealing the reply), complete (the completion's statement, with the wait for a batch), " +
			"publish_queue (the reply waiting for the activation's publish in flight), publish (the XMTP node's publish call). Open is timed for every message the identity opens, dispatch and webhook for first attempts of new deliveries, the later stages for those with a reply: each stage counts its own set of messages. " +
			"A call started while its record commits (bridge_forward_early_attempts_total) has dispatch and webhook first, and record is what is left of the record's answer after the call.",
		Buckets: stageBuckets,
	}, []string{"stage"})
	m.statements = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "bridge_forward_statement_seconds",
		Help: "Round trip of one batched statement on a message's way through the bridge, commit included, by statement: record (delivery rows), complete (completions with their replies). " +
			"The record and complete stages of bridge_forward_stage_seconds less these are the wait for a batch.",
		Buckets: stageBuckets,
	}, []string{"statement"})
	m.recordStatement, m.completeStatement = m.statements.WithLabelValues("record"), m.statements.WithLabelValues("complete")
	for i := range m.stage {
		m.stage[i] = m.stages.WithLabelValues(stageNames[i])
	}
	m.startedRead, m.startedRecorded = m.attemptStarts.WithLabelValues("read"), m.attemptStarts.WithLabelValues("recorded")
	m.earlyJoined, m.earlyDropped = m.earlyAttempts.WithLabelValues("joined"), m.earlyAttempts.WithLabelValues("dropped")
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
	for r := range (&conversation.Rejections{}).Snapshot() {
		m.rejected.WithLabelValues(r)
	}
	m.failingReply = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bridge_forward_reply_oldest_failing_seconds",
		Help: "Age of the oldest outbox reply of the identities this node hosts whose last publish failed because the XMTP node could not take it (down, busy, unreachable) and that is not out yet; 0 when none fails. Such a reply is retried, at most a minute apart, for as long as it takes, and the younger replies of its conversation wait behind it.",
	}, g.oldestFailingReply)
	m.connected = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bridge_ingress_subscription_connected",
		Help: "1 when the node's XMTP subscription is established, 0 when it is down.",
	}, g.connected)
	m.catchUpFailing = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bridge_ingress_catchup_failing_seconds",
		Help: "How long the node subscription's catch-up queries have failed without one round succeeding, 0 while they work. While they fail, topics newly held or reconnected deliver nothing, though the subscription is connected.",
	}, g.catchUpFailing)
	proof := func(f func(api.ProofCounts) int64) func() float64 {
		return func() float64 { return float64(f(g.proofs())) }
	}
	m.proofsPublished = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "bridge_ingress_set_proofs_published_total",
		Help: "Proof envelopes the node subscription published to prove its topic sets.",
	}, proof(func(c api.ProofCounts) int64 { return c.Published }))
	m.proofsFailed = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "bridge_ingress_set_proofs_failed_total",
		Help: "Proof publishes of the node subscription that failed; its held topics are probed instead.",
	}, proof(func(c api.ProofCounts) int64 { return c.Failed }))
	m.proofsSeen = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "bridge_ingress_set_proofs_seen_total",
		Help: "Proof envelopes the node subscription's streams brought back, each proving its topic set.",
	}, proof(func(c api.ProofCounts) int64 { return c.Seen }))
	for _, c := range []prometheus.Collector{m.proofsPublished, m.proofsFailed, m.proofsSeen, m.messagesIn, m.messagesOut, m.hosted, m.activations, m.stale, m.routed,
		m.unroutable, m.ingressLag, m.topics, m.rejected, m.invitationsRejected, m.loopSuppressed, m.deadLetters, m.replies, m.repliesHeld, m.attemptStarts, m.earlyAttempts, m.mailbox, m.failingReply, m.connected, m.catchUpFailing,
		m.spawns, m.stops, m.undelivered, m.panics, m.stages, m.statements} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register actor metrics: %w", err)
		}
	}
	m.panics.WithLabelValues("attempt")
	for _, r := range invitationRefusals {
		m.invitationsRejected.WithLabelValues(r)
	}
	return m, nil
}

// observeIngressLag records the age of an envelope with timestamp ns (its
// sender's clock) as the ingress routes it.
func (m *metrics) observeIngressLag(ns uint64) {
	m.ingressLag.Observe(max(0, time.Since(time.Unix(0, int64(ns))).Seconds()))
}

// countSpawns is a spawn function that counts in c the actors a props
// spawns. (protoactor's spawn middleware would count the children of
// those actors instead: it runs on the parent's props.)
func countSpawns(c prometheus.Counter) actor.SpawnFunc {
	return func(sys *actor.ActorSystem, id string, props *actor.Props, parent actor.SpawnerContext) (*actor.PID, error) {
		pid, err := actor.DefaultSpawner(sys, id, props, parent)
		if err == nil {
			c.Inc()
		}
		return pid, err
	}
}
