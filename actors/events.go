package actors

// Configuration events.
//
// Not an actor: one goroutine per runtime keeps one LISTEN connection to
// Postgres (persistence.Store.Listen) for the channels of the node. On
// bridge_changed, which the store's triggers send with the id of every
// bridge whose row, forward configuration or webhook secrets changed, the
// runtime drops its copy of that bridge's configuration (runtime.go's
// bridgeConfig), wakes the bridge's forward child if it hosts it, so a
// change of status or a broadcast is acted on at once, and names the
// bridge to placement (cluster.Node.BridgeChanged), which looks at the
// bridges named instead of every bridge while the connection is up. Notifications sent
// while the connection was down are lost: after every (re)connection
// every copy is dropped, and while it is down none is kept. Other parts
// of the node add their channels with Config.Listeners, on the same
// connection.

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmtpbridge/bridge/persistence"
)

// Listener is a notification channel of another part of the node that the
// runtime's LISTEN connection carries.
type Listener struct {
	// Channel is the Postgres notification channel.
	Channel string
	// Notify is called with the payload of each notification, on the
	// listener's goroutine.
	Notify func(payload string)
	// Reset is called after each (re)connection, before any
	// notification: whatever was sent meanwhile is lost.
	Reset func()
}

type events struct {
	rt *Runtime
	on atomic.Bool

	cancel context.CancelFunc
	done   sync.WaitGroup
}

func newEvents(rt *Runtime) *events { return &events{rt: rt} }

// listening reports whether notifications reach the runtime now.
func (e *events) listening() bool { return e.on.Load() }

func (e *events) start() {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.done.Add(1)
	go func() {
		defer e.done.Done()
		e.run(ctx)
	}()
}

func (e *events) close() {
	if e.cancel != nil {
		e.cancel()
		e.done.Wait()
	}
}

func (e *events) run(ctx context.Context) {
	rt := e.rt
	channels := []string{persistence.BridgeChangedChannel}
	byChannel := map[string]Listener{}
	for _, l := range rt.cfg.Listeners {
		channels = append(channels, l.Channel)
		byChannel[l.Channel] = l
	}
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := rt.cfg.Store.Listen(ctx, channels, func() {
			e.on.Store(true)
			rt.forgetBridges()
			rt.cluster.EventsLive(true)
			for _, l := range rt.cfg.Listeners {
				if l.Reset != nil {
					l.Reset()
				}
			}
			wait = 100 * time.Millisecond
		}, func(channel, payload string) {
			if channel == persistence.BridgeChangedChannel {
				rt.forgetBridge(payload)
				rt.sweepBridge(payload)
				rt.cluster.BridgeChanged(payload)
				return
			}
			if l, ok := byChannel[channel]; ok && l.Notify != nil {
				l.Notify(payload)
			}
		})
		e.on.Store(false)
		rt.cluster.EventsLive(false)
		rt.forgetBridges()
		if ctx.Err() != nil {
			return
		}
		rt.log.Warn("configuration events connection lost", "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}
