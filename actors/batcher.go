package actors

// Batched round trips of attempts.
//
// Many attempts run at once on a busy node, each on its own goroutine.
// The statements each one makes against Postgres (StartAttempt before the
// webhook call, CompleteDelivery after it) go through a batcher: an
// attempt's call waits while the batch in flight completes, and everything
// that queued up meanwhile goes as the next batch, one round trip for all
// of them. An idle node runs nothing; a lone attempt's call goes at once.

import "sync"

// maxAttemptBatch bounds the attempts of one batched statement.
const maxAttemptBatch = 128

// batcher runs calls of Req in batches through run, which returns one Res
// per Req, in order. It runs a goroutine only while it has work.
type batcher[Req, Res any] struct {
	run func([]Req) []Res
	max int

	mu      sync.Mutex
	queue   []batchCall[Req, Res]
	running bool
}

type batchCall[Req, Res any] struct {
	req  Req
	done chan Res
}

// do queues req and waits for its result.
func (b *batcher[Req, Res]) do(req Req) Res {
	done := make(chan Res, 1)
	b.mu.Lock()
	b.queue = append(b.queue, batchCall[Req, Res]{req: req, done: done})
	if !b.running {
		b.running = true
		go b.drain()
	}
	b.mu.Unlock()
	return <-done
}

// drain runs the queue in batches until it is empty.
func (b *batcher[Req, Res]) drain() {
	for {
		b.mu.Lock()
		n := min(len(b.queue), b.max)
		if n == 0 {
			b.running = false
			b.queue = nil
			b.mu.Unlock()
			return
		}
		batch := b.queue[:n:n]
		b.queue = b.queue[n:]
		b.mu.Unlock()
		reqs := make([]Req, len(batch))
		for i, c := range batch {
			reqs[i] = c.req
		}
		res := b.run(reqs)
		for i, c := range batch {
			c.done <- res[i]
		}
	}
}
