package actors

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/xmtp/conversation"
)

// ingress is the node's only XMTP subscription. It carries the invite and
// conversation topics of every identity the node hosts and routes each
// envelope to every identity actor that registered its topic, as an
// *inboundEnvelope. A topic can belong to several identities at once: two
// bridges of this node in one conversation both hold its topic, and each
// opens the envelope with its own keys. Gaps after a reconnection are
// back-filled by the api subscription itself; gaps across a process restart,
// and what a topic carried before an identity joined it, are back-filled by
// each activation's own queries.
//
// A conversation topic's holders are registered with the fingerprint of
// the key material they open it with; the parties of one conversation share
// that key, so a holder with another key is not a party to the topic, and
// an invitation naming it is refused (see invitations.go).
//
// Goroutines: run, which reads the subscription and routes. The routing
// table is guarded by mu. It holds, per topic, a slice of its holders:
// nearly every topic has one, and a slice of one costs a fraction of a
// map of one.
type ingress struct {
	sub     subscription
	root    *actor.RootContext
	log     *slog.Logger
	metrics *metrics

	mu     sync.RWMutex
	routes map[string][]holder // topic -> its holders, each pid once
	done   chan struct{}
}

// holder is one identity that registered a topic.
type holder struct {
	pid *actor.PID
	// key is the fingerprint of the key material the identity opens the
	// topic with; zero for topics without one (invite topics).
	key [32]byte
}

// subscription is what the ingress needs of an api.Subscription.
type subscription interface {
	Add(topics ...string)
	Remove(topics ...string)
	Envelopes() <-chan *messagev1.Envelope
	Connected() bool
	CatchUpFailingFor() time.Duration
	Close()
}

// inboundEnvelope is an envelope of one of the identity's topics.
type inboundEnvelope struct {
	env *messagev1.Envelope
	// live says it came from the node subscription, not a record tried
	// again (early.go).
	live bool
}

func newIngress(sub subscription, root *actor.RootContext, log *slog.Logger, m *metrics) *ingress {
	in := &ingress{sub: sub, root: root, log: log, metrics: m, routes: map[string][]holder{}, done: make(chan struct{})}
	go in.run()
	return in
}

// samePID reports whether a and b name the same actor.
func samePID(a, b *actor.PID) bool { return a.Id == b.Id && a.Address == b.Address }

// indexOf returns the index of pid in hs, or -1.
func indexOf(hs []holder, pid *actor.PID) int {
	for i, h := range hs {
		if samePID(h.pid, pid) {
			return i
		}
	}
	return -1
}

func (in *ingress) run() {
	defer close(in.done)
	var pids []*actor.PID
	for env := range in.sub.Envelopes() {
		pids = pids[:0]
		in.mu.RLock()
		for _, h := range in.routes[env.GetContentTopic()] {
			pids = append(pids, h.pid)
		}
		in.mu.RUnlock()
		if len(pids) == 0 {
			in.metrics.unroutable.Inc()
			continue
		}
		in.metrics.routed.Inc()
		in.metrics.observeIngressLag(env.GetTimestampNs())
		// Every holder gets the same envelope; none modifies it.
		msg := &inboundEnvelope{env: env, live: true}
		for _, pid := range pids {
			in.root.Send(pid, msg)
		}
	}
}

// add routes topics (invite topics, which carry no key) to pid as well as
// to their other holders, and subscribes to the ones that are new.
func (in *ingress) add(pid *actor.PID, topics ...string) {
	hs := make([]topicHolder, len(topics))
	for i, t := range topics {
		hs[i] = topicHolder{topic: t}
	}
	in.register(pid, hs)
}

// addConversations routes the conversations' topics to pid, each with its
// key's fingerprint.
func (in *ingress) addConversations(pid *actor.PID, convs ...*conversation.Conversation) {
	hs := make([]topicHolder, len(convs))
	for i, c := range convs {
		hs[i] = topicHolder{topic: c.Topic, key: c.Fingerprint()}
	}
	in.register(pid, hs)
}

type topicHolder struct {
	topic string
	key   [32]byte
}

func (in *ingress) register(pid *actor.PID, hs []topicHolder) {
	var fresh []string
	in.mu.Lock()
	for _, h := range hs {
		set, ok := in.routes[h.topic]
		if !ok {
			fresh = append(fresh, h.topic)
		}
		if i := indexOf(set, pid); i >= 0 {
			set[i].key = h.key
			continue
		}
		// A new slice: run may still read the old one's holders.
		next := make([]holder, len(set), len(set)+1)
		copy(next, set)
		in.routes[h.topic] = append(next, holder{pid: pid, key: h.key})
	}
	in.metrics.topics.Set(float64(len(in.routes)))
	in.mu.Unlock()
	if len(fresh) > 0 {
		in.sub.Add(fresh...)
	}
}

// remove drops pid's routes of topics; a topic leaves the subscription
// when its last holder removed it.
func (in *ingress) remove(pid *actor.PID, topics ...string) {
	var gone []string
	in.mu.Lock()
	for _, t := range topics {
		set := in.routes[t]
		i := indexOf(set, pid)
		if i < 0 {
			continue
		}
		if len(set) == 1 {
			delete(in.routes, t)
			gone = append(gone, t)
			continue
		}
		next := make([]holder, 0, len(set)-1)
		next = append(next, set[:i]...)
		in.routes[t] = append(next, set[i+1:]...)
	}
	in.metrics.topics.Set(float64(len(in.routes)))
	in.mu.Unlock()
	if len(gone) > 0 {
		in.sub.Remove(gone...)
	}
}

// foreignHolder reports whether an identity other than pid holds topic
// with key material whose fingerprint differs from key.
func (in *ingress) foreignHolder(pid *actor.PID, topic string, key [32]byte) bool {
	in.mu.RLock()
	defer in.mu.RUnlock()
	for _, h := range in.routes[topic] {
		if !samePID(h.pid, pid) && h.key != ([32]byte{}) && h.key != key {
			return true
		}
	}
	return false
}

// holders is how many identities hold topic.
func (in *ingress) holders(topic string) int {
	in.mu.RLock()
	defer in.mu.RUnlock()
	return len(in.routes[topic])
}

// backlog is how many envelopes wait in the subscription's channel.
func (in *ingress) backlog() float64 {
	return float64(len(in.sub.Envelopes()))
}

// close ends the subscription and waits for the router.
func (in *ingress) close(ctx context.Context) {
	in.sub.Close()
	select {
	case <-in.done:
	case <-ctx.Done():
	}
}
