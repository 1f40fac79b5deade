package actors

import (
	"context"
	"log/slog"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
)

// ingress is the node's only XMTP subscription. It carries the invite and
// conversation topics of every identity the node hosts and routes each
// envelope to the identity actor that registered its topic, as an
// *inboundEnvelope. Gaps after a reconnection are back-filled by the api
// subscription itself; gaps across a process restart are back-filled by each
// activation's cursor query.
//
// Goroutines: run, which reads the subscription and routes. The routing
// table is guarded by mu.
type ingress struct {
	sub     subscription
	root    *actor.RootContext
	log     *slog.Logger
	metrics *metrics

	mu     sync.RWMutex
	routes map[string]*actor.PID // topic -> identity actor
	done   chan struct{}
}

// subscription is what the ingress needs of an api.Subscription.
type subscription interface {
	Add(topics ...string)
	Remove(topics ...string)
	Envelopes() <-chan *messagev1.Envelope
	Connected() bool
	Close()
}

// inboundEnvelope is an envelope of one of the identity's topics.
type inboundEnvelope struct {
	env *messagev1.Envelope
}

func newIngress(sub subscription, root *actor.RootContext, log *slog.Logger, m *metrics) *ingress {
	in := &ingress{sub: sub, root: root, log: log, metrics: m, routes: map[string]*actor.PID{}, done: make(chan struct{})}
	go in.run()
	return in
}

func (in *ingress) run() {
	defer close(in.done)
	for env := range in.sub.Envelopes() {
		in.mu.RLock()
		pid := in.routes[env.GetContentTopic()]
		in.mu.RUnlock()
		if pid == nil {
			in.metrics.unroutable.Inc()
			continue
		}
		in.metrics.routed.Inc()
		in.root.Send(pid, &inboundEnvelope{env: env})
	}
}

// add routes topics to pid and subscribes to the ones that are new.
func (in *ingress) add(pid *actor.PID, topics ...string) {
	var fresh []string
	in.mu.Lock()
	for _, t := range topics {
		if _, ok := in.routes[t]; !ok {
			fresh = append(fresh, t)
		}
		in.routes[t] = pid
	}
	in.metrics.topics.Set(float64(len(in.routes)))
	in.mu.Unlock()
	if len(fresh) > 0 {
		in.sub.Add(fresh...)
	}
}

// remove drops the routes of topics that still lead to pid and
// unsubscribes from them.
func (in *ingress) remove(pid *actor.PID, topics ...string) {
	var gone []string
	in.mu.Lock()
	for _, t := range topics {
		if cur, ok := in.routes[t]; ok && cur.Equal(pid) {
			delete(in.routes, t)
			gone = append(gone, t)
		}
	}
	in.metrics.topics.Set(float64(len(in.routes)))
	in.mu.Unlock()
	if len(gone) > 0 {
		in.sub.Remove(gone...)
	}
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
