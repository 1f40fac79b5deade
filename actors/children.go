package actors

// The identity's children, spawned on first use: an identity that nobody
// messages has no forward, reverse or canary child, and so no mailbox,
// timer or goroutine of theirs. Each is spawned once per activation, under
// the identity's supervision.Strategy, the first time the identity has a
// message for it; a child that fails is restarted by that strategy as
// before, under the same name.

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/actors/supervision"
)

// forwardChild returns the forward child, spawning it if need be.
func (id *identity) forwardChild(ctx actor.Context) *actor.PID {
	a := id.a
	return id.child(ctx, &id.forward, "forward", id.rt.metrics.spawnsForward, func() actor.Actor { return &forwarder{a: a} })
}

// reverseChild returns the reverse child, spawning it if need be.
func (id *identity) reverseChild(ctx actor.Context) *actor.PID {
	a := id.a
	return id.child(ctx, &id.reverse, "reverse", id.rt.metrics.spawnsReverse, func() actor.Actor { return &reverser{a: a} })
}

// canaryChild returns the canary child, spawning it if need be.
func (id *identity) canaryChild(ctx actor.Context) *actor.PID {
	a := id.a
	return id.child(ctx, &id.canary, "canary", id.rt.metrics.spawnsCanary, func() actor.Actor { return &canary{a: a} })
}

func (id *identity) child(ctx actor.Context, pid **actor.PID, name string, spawned prometheus.Counter, producer actor.Producer) *actor.PID {
	if *pid != nil {
		return *pid
	}
	if id.strategy == nil {
		rt := id.rt
		id.strategy = supervision.New(supervision.Config{
			Identity:        id.a.bridgeID,
			Backoff:         rt.cfg.ChildBackoff,
			PoisonThreshold: rt.cfg.PoisonThreshold,
			Quarantine:      id.quarantine,
			Metrics:         rt.supervision,
			Logger:          rt.log,
		})
	}
	p, err := ctx.SpawnNamed(actor.PropsFromProducer(producer, actor.WithDispatcher(id.rt.workers.dispatcher())), name)
	if err != nil {
		// Only a name already taken fails, and p is then that child.
		id.a.log.Error("spawn child", "child", name, "error", err)
	} else {
		spawned.Inc()
	}
	*pid = p
	return p
}
