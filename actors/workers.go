package actors

import (
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// Goroutines with warm stacks.
//
// A busy node starts several short goroutines per forwarded message: the
// run of each mailbox that has mail (protoactor's default dispatcher
// starts one each time), the attempt of each delivery, and the drain of
// each batcher and reply queue that has work. Each new goroutine starts
// on a small stack, and opening a message or making a webhook call grows
// it again, a copy each time. workers keeps up to max goroutines that have
// finished their function parked, and hands the next function to one of
// them, stack and all; with none parked it starts a goroutine as before.
// Nothing waits for a free worker, so a function that blocks delays only
// itself. A parked worker holds its stack (the garbage collector shrinks
// an idle one) and no timer; how many there are follows the node's peak
// concurrency, bounded by max, not its identities.

// maxParkedWorkers bounds the node's parked workers.
const maxParkedWorkers = 128

// workers is safe for concurrent use.
type workers struct {
	idle     chan func() // unbuffered: a send succeeds only into a parked worker
	quit     chan struct{}
	stopOnce sync.Once
	parked   atomic.Int32
	max      int32
}

func newWorkers(max int) *workers {
	return &workers{idle: make(chan func()), quit: make(chan struct{}), max: int32(max)}
}

// stop ends the parked workers; a later Go starts a goroutine of its
// own, which ends with its function.
func (w *workers) stop() { w.stopOnce.Do(func() { close(w.quit) }) }

// Go runs fn on a parked worker or, with none parked, on a new goroutine.
func (w *workers) Go(fn func()) {
	select {
	case w.idle <- fn:
	default:
		go w.run(fn)
	}
}

func (w *workers) run(fn func()) {
	for {
		fn()
		fn = nil // let what fn held go while parked
		if w.parked.Add(1) > w.max {
			w.parked.Add(-1)
			return
		}
		select {
		case fn = <-w.idle:
			w.parked.Add(-1)
		case <-w.quit:
			w.parked.Add(-1)
			return
		}
	}
}

// dispatcher is a protoactor dispatcher that runs mailboxes on w, with
// protoactor's default throughput (messages a mailbox run takes before
// it lets others go).
func (w *workers) dispatcher() actor.Dispatcher { return workerDispatcher{w} }

type workerDispatcher struct{ w *workers }

func (d workerDispatcher) Schedule(fn func()) { d.w.Go(fn) }
func (workerDispatcher) Throughput() int      { return 300 }
