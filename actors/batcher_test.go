package actors

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/testkit"
)

// TestBatcherAnswersEveryCallerWhenABatchPanics: a batch that panics, or
// gives fewer results than requests, answers each of its callers with the
// failure, and the batcher goes on to run the next calls.
func TestBatcherAnswersEveryCallerWhenABatchPanics(t *testing.T) {
	type res struct {
		v   int
		err error
	}
	b := &batcher[int, res]{max: 4,
		run: func(reqs []int) []res {
			out := make([]res, 0, len(reqs))
			for _, r := range reqs {
				switch r {
				case -1:
					panic("poison")
				case -2:
					return out // one result short
				}
				out = append(out, res{v: r * 10})
			}
			return out
		},
		fail: func(err error) res { return res{err: err} },
	}
	if got := b.do(-1); got.err == nil || !strings.Contains(got.err.Error(), "panicked: poison") {
		t.Fatalf("a panicking batch answered %+v", got)
	}
	if got := b.do(-2); got.err == nil || !strings.Contains(got.err.Error(), "gave 0 results") {
		t.Fatalf("a batch short of results answered %+v", got)
	}
	// Many callers at once, some of them in a batch with a poison call:
	// every one gets an answer, its own result or the failure.
	var wg sync.WaitGroup
	got := make([]res, 40)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := i
			if i%10 == 3 {
				req = -1
			}
			got[i] = b.do(req)
		}()
	}
	wg.Wait()
	for i, r := range got {
		if r.err == nil && r.v != i*10 {
			t.Fatalf("call %d answered %d", i, r.v)
		}
		if i%10 == 3 && r.err == nil {
			t.Fatalf("poison call %d answered %+v", i, r)
		}
	}
	if r := b.do(7); r.err != nil || r.v != 70 {
		t.Fatalf("after the failures the batcher answered %+v", r)
	}
}

// TestBatcherLingersForMoreUnlessHurried: a lingering batcher holds a
// batch smaller than its bound until linger has passed since its first
// call, so that calls made meanwhile share its statement; a full batch
// goes at once, and hurry sends the calls queued without waiting.
func TestBatcherLingersForMoreUnlessHurried(t *testing.T) {
	const linger = 500 * time.Millisecond
	var mu sync.Mutex
	var sizes []int
	b := &batcher[int, int]{max: 4, linger: linger,
		run: func(reqs []int) []int {
			mu.Lock()
			sizes = append(sizes, len(reqs))
			mu.Unlock()
			return reqs
		},
		fail: func(error) int { return -1 },
	}
	batches := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), sizes...)
	}

	// Three calls 50 ms apart share one batch, which goes linger after
	// the first.
	start := time.Now()
	first := b.enqueue(1)
	time.Sleep(50 * time.Millisecond)
	second := b.enqueue(2)
	time.Sleep(50 * time.Millisecond)
	third := b.enqueue(3)
	for _, c := range []<-chan int{first, second, third} {
		<-c
	}
	if took := time.Since(start); took < linger {
		t.Fatalf("the batch went after %v, before its linger of %v", took, linger)
	}
	if got := batches(); len(got) != 1 || got[0] != 3 {
		t.Fatalf("batches %v, want one of 3", got)
	}

	// A full batch does not wait.
	start = time.Now()
	var full []<-chan int
	for i := range 4 {
		full = append(full, b.enqueue(i))
	}
	for _, c := range full {
		<-c
	}
	if took := time.Since(start); took >= linger {
		t.Fatalf("a full batch waited %v", took)
	}

	// Hurried, a lone call goes at once; the hurry ends with its batch,
	// and the next call lingers again.
	start = time.Now()
	lone := b.enqueue(7)
	b.hurry()
	<-lone
	if took := time.Since(start); took >= linger {
		t.Fatalf("a hurried call waited %v", took)
	}
	start = time.Now()
	<-b.enqueue(8)
	if took := time.Since(start); took < linger {
		t.Fatalf("after a hurry, the next call went after %v, before its linger", took)
	}
}

// keyed is a call of the pipelined batcher tests: a key and a value.
type keyed struct {
	key string
	v   int
}

// pipelined is a batcher of depth 2 whose batches each block in run until
// the test releases them, one gate per batch in the order they begin.
type pipelined struct {
	b *batcher[keyed, int]
	// begun gets each batch's calls as it enters run; its gate is the
	// channel it then waits on.
	begun chan []keyed
	gates chan chan struct{}
	mu    sync.Mutex
	// handed are the values of the calls handed back, in order (deliver).
	handed []int
}

func newPipelined() *pipelined {
	p := &pipelined{begun: make(chan []keyed, 16), gates: make(chan chan struct{}, 16)}
	p.b = &batcher[keyed, int]{max: 8, depth: 2,
		key: func(k keyed) string { return k.key },
		run: func(reqs []keyed) []int {
			gate := make(chan struct{})
			p.gates <- gate
			p.begun <- reqs
			<-gate
			out := make([]int, len(reqs))
			for i, r := range reqs {
				out[i] = r.v
			}
			return out
		},
		deliver: func(_ keyed, res int) {
			p.mu.Lock()
			p.handed = append(p.handed, res)
			p.mu.Unlock()
		},
		fail: func(error) int { return -1 },
	}
	return p
}

// next returns the calls of the next batch to begin and its gate; it fails
// the test if none begins.
func (p *pipelined) next(t *testing.T) ([]keyed, chan struct{}) {
	t.Helper()
	select {
	case reqs := <-p.begun:
		return reqs, <-p.gates
	case <-time.After(10 * time.Second):
		t.Fatal("no batch began")
		return nil, nil
	}
}

// idle fails the test if a batch begins before the calls in flight are
// released; it gives the batcher a moment to start one.
func (p *pipelined) idle(t *testing.T) {
	t.Helper()
	select {
	case reqs := <-p.begun:
		t.Fatalf("a batch of %v began while it had to wait", reqs)
	case <-time.After(100 * time.Millisecond):
	}
}

func (p *pipelined) handedBack() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.handed...)
}

// TestBatcherRunsASecondBatchBesideOneInFlight: with a depth of two, a
// call that comes while a batch is in flight goes at once in a batch of
// its own instead of waiting for the first to end; a third waits for one
// of them. Seen failing with depth 1 (the second call waited).
func TestBatcherRunsASecondBatchBesideOneInFlight(t *testing.T) {
	p := newPipelined()
	first := p.b.enqueue(keyed{"a", 1})
	_, gate1 := p.next(t)
	second := p.b.enqueue(keyed{"b", 2})
	reqs, gate2 := p.next(t)
	if len(reqs) != 1 || reqs[0].v != 2 {
		t.Fatalf("the second batch is %v", reqs)
	}
	third := p.b.enqueue(keyed{"c", 3})
	p.idle(t) // two in flight: the third waits
	close(gate1)
	if got := answer(t, first); got != 1 {
		t.Fatalf("first call answered %d", got)
	}
	reqs, gate3 := p.next(t)
	if len(reqs) != 1 || reqs[0].v != 3 {
		t.Fatalf("the third batch is %v", reqs)
	}
	close(gate2)
	close(gate3)
	if a, b := answer(t, second), answer(t, third); a != 2 || b != 3 {
		t.Fatalf("answers %d and %d", a, b)
	}
}

// TestBatcherHandsABatchBackAsItReturns: with keys, a batch that ends
// before the one taken before it, with none of its keys, is handed back at
// once (deliver, then its callers) instead of waiting for that one. Seen
// failing with the wait for the previous batch (the second call was not
// answered until the first batch ended).
func TestBatcherHandsABatchBackAsItReturns(t *testing.T) {
	p := newPipelined()
	first := p.b.enqueue(keyed{"a", 1})
	_, gate1 := p.next(t)
	second := p.b.enqueue(keyed{"b", 2})
	_, gate2 := p.next(t)
	close(gate2) // the second batch ends first
	if got := answer(t, second); got != 2 {
		t.Fatalf("second call answered %d", got)
	}
	if got := p.handedBack(); !slices.Equal(got, []int{2}) {
		t.Fatalf("handed back %v while the first batch is in flight, want [2]", got)
	}
	close(gate1)
	if got := answer(t, first); got != 1 {
		t.Fatalf("first call answered %d", got)
	}
	if got := p.handedBack(); !slices.Equal(got, []int{2, 1}) {
		t.Fatalf("handed back %v, want [2 1]", got)
	}
}

// TestBatcherWithoutKeysHandsBatchesBackInOrder: without keys, a batch
// that ends before the one taken before it waits for that one to be
// handed back (deliver, then its callers) before it is handed back
// itself. Seen failing without the wait for the previous batch (the
// second was handed back first).
func TestBatcherWithoutKeysHandsBatchesBackInOrder(t *testing.T) {
	p := newPipelined()
	p.b.key = nil
	first := p.b.enqueue(keyed{"a", 1})
	_, gate1 := p.next(t)
	second := p.b.enqueue(keyed{"b", 2})
	_, gate2 := p.next(t)
	close(gate2) // the second batch ends first
	select {
	case v := <-second:
		t.Fatalf("the second call was answered (%d) before the first batch ended", v)
	case <-time.After(100 * time.Millisecond):
	}
	if got := p.handedBack(); len(got) != 0 {
		t.Fatalf("handed back %v before the first batch ended", got)
	}
	close(gate1)
	if a, b := answer(t, first), answer(t, second); a != 1 || b != 2 {
		t.Fatalf("answers %d and %d", a, b)
	}
	if got := p.handedBack(); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("handed back %v, want [1 2]", got)
	}
}

// TestBatcherKeepsAKeyOutOfTwoBatchesInFlight: a call whose key is in a
// batch in flight waits until that batch is handed back, and so do the
// later calls of its key, in order, while a call of another key goes
// beside the batch in flight. Seen failing without the check of busy keys
// in take (the second call of key a went beside the first).
func TestBatcherKeepsAKeyOutOfTwoBatchesInFlight(t *testing.T) {
	p := newPipelined()
	first := p.b.enqueue(keyed{"a", 1})
	_, gate1 := p.next(t)
	a2 := p.b.enqueue(keyed{"a", 2})
	b3 := p.b.enqueue(keyed{"b", 3})
	a4 := p.b.enqueue(keyed{"a", 4})
	reqs, gate2 := p.next(t)
	if len(reqs) != 1 || reqs[0] != (keyed{"b", 3}) {
		t.Fatalf("beside a batch of key a, the batch %v began", reqs)
	}
	close(gate2)
	p.idle(t) // the calls of key a wait for the first batch
	close(gate1)
	reqs, gate3 := p.next(t)
	if !slices.Equal(reqs, []keyed{{"a", 2}, {"a", 4}}) {
		t.Fatalf("after the first batch, the batch %v began, want a's calls in order", reqs)
	}
	close(gate3)
	if x, y, z, w := answer(t, first), answer(t, b3), answer(t, a2), answer(t, a4); x != 1 || y != 3 || z != 2 || w != 4 {
		t.Fatalf("answers %d, %d, %d, %d", x, y, z, w)
	}
	// b's batch was handed back as it returned, before a's first; a's
	// calls come back in order.
	if got := p.handedBack(); !slices.Equal(got, []int{3, 1, 2, 4}) {
		t.Fatalf("handed back %v, want [3 1 2 4]", got)
	}
}

// answer waits for a call's result; it fails the test if none comes.
func answer(t *testing.T, c <-chan int) int {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("a call got no answer")
		return 0
	}
}

// TestBatcherLetsCallsQueueBehindALargeBatch: a second batch opens beside
// one in flight only while the calls in flight are few (smallBatch): with
// a large batch in flight a new call waits for it and goes in the next
// batch, so a busy node makes one round trip for many calls. Seen failing
// without the check (the ninth call's batch began beside the six).
func TestBatcherLetsCallsQueueBehindALargeBatch(t *testing.T) {
	p := newPipelined()
	first := p.b.enqueue(keyed{"a", 1})
	_, gate1 := p.next(t)
	second := p.b.enqueue(keyed{"b", 2})
	_, gate2 := p.next(t)
	var queued []<-chan int
	for i := 3; i <= 8; i++ {
		queued = append(queued, p.b.enqueue(keyed{fmt.Sprint("k", i), i}))
	}
	p.idle(t) // two in flight: the six wait
	close(gate1)
	reqs, gate3 := p.next(t)
	if len(reqs) != 6 {
		t.Fatalf("the third batch is %v, want the six that waited", reqs)
	}
	close(gate2)
	if a, b := answer(t, first), answer(t, second); a != 1 || b != 2 {
		t.Fatalf("answers %d and %d", a, b)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		p.b.mu.Lock()
		defer p.b.mu.Unlock()
		return p.b.running == 1
	}, "the second drain done")
	ninth := p.b.enqueue(keyed{"i", 9})
	p.idle(t) // six in flight: the ninth waits for them
	close(gate3)
	reqs, gate4 := p.next(t)
	if len(reqs) != 1 || reqs[0].v != 9 {
		t.Fatalf("the fourth batch is %v", reqs)
	}
	close(gate4)
	for i, q := range queued {
		if got := answer(t, q); got != i+3 {
			t.Fatalf("call %d answered %d", i+3, got)
		}
	}
	if got := answer(t, ninth); got != 9 {
		t.Fatalf("the ninth call answered %d", got)
	}
}

// TestCursorWaitsForItsOwnTopicsRecords: the committer answers an
// identity's deliveries in order only within a conversation, so a topic's
// cursor marked behind a delivery still being recorded waits for that
// delivery, even when a delivery of another topic handed over later is
// answered first. Seen failing with identity-wide counts (the cursor of T
// was ready with a of T unanswered, which a crash would lose).
func TestCursorWaitsForItsOwnTopicsRecords(t *testing.T) {
	var r recordState
	r.submit("T") // p
	r.submit("T") // a
	r.mark("T")   // b, skipped: the cursor of T goes past a once ready
	r.submit("U") // c
	r.answer("T") // p
	r.answer("U") // c, before a: another conversation's batch
	if r.ready("T") {
		t.Fatal("the cursor of T is ready while a delivery of T handed over before its mark is unanswered")
	}
	if !r.ready("U") {
		t.Fatal("the cursor of U waits with nothing of U in flight")
	}
	r.answer("T") // a
	if !r.ready("T") || r.inFlight() {
		t.Fatalf("after every answer: T ready %v, in flight %v", r.ready("T"), r.inFlight())
	}
	r.submit("T")
	if !r.ready("T") {
		t.Fatal("a delivery handed over after the mark holds the cursor back")
	}
}

// TestBatcherHandsOverPastAPanic: a panic in the hand-over of one call
// loses that call's hand-over only: the calls after it in its batch are
// handed over, every caller gets its result, the next batch runs, and
// the batcher reports the panic. Seen failing with one recovery for the
// whole batch (the calls after the panicking one were not handed over).
func TestBatcherHandsOverPastAPanic(t *testing.T) {
	var mu sync.Mutex
	var handed []int
	var panics []string
	gate := make(chan struct{})
	b := &batcher[int, int]{max: 8,
		run: func(reqs []int) []int {
			<-gate
			return reqs
		},
		deliver: func(req, res int) {
			if req == 2 {
				panic("hand-over of 2")
			}
			mu.Lock()
			handed = append(handed, res)
			mu.Unlock()
		},
		fail:     func(error) int { return -1 },
		panicked: func(where string, p any) { mu.Lock(); panics = append(panics, fmt.Sprint(where, ": ", p)); mu.Unlock() },
	}
	first := b.enqueue(0) // in flight while the next three queue up
	var rest []<-chan int
	for v := 1; v <= 3; v++ {
		rest = append(rest, b.enqueue(v))
	}
	close(gate)
	if got := answer(t, first); got != 0 {
		t.Fatalf("first call answered %d", got)
	}
	for i, ch := range rest {
		if got := answer(t, ch); got != i+1 {
			t.Fatalf("call %d answered %d", i+1, got)
		}
	}
	if got := answer(t, b.enqueue(4)); got != 4 {
		t.Fatalf("the call after the panic answered %d", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(handed) != "[0 1 3 4]" {
		t.Fatalf("handed over %v; want every call but the one whose hand-over panicked, [0 1 3 4]", handed)
	}
	if len(panics) != 1 || panics[0] != "deliver: hand-over of 2" {
		t.Fatalf("panics reported: %q", panics)
	}
}

// TestBatcherSurvivesAPanickingKey: a panic in key puts its call under
// the empty key and is reported; the batcher is not left locked, and
// the calls after it, of any key, are answered. Seen failing with key
// taken under the batcher's lock (the next call never returned).
func TestBatcherSurvivesAPanickingKey(t *testing.T) {
	var panics atomic.Int64
	b := &batcher[keyed, int]{max: 8, depth: 2,
		key: func(k keyed) string {
			if k.key == "boom" {
				panic("no key")
			}
			return k.key
		},
		run: func(reqs []keyed) []int {
			out := make([]int, len(reqs))
			for i, r := range reqs {
				out[i] = r.v
			}
			return out
		},
		fail:     func(error) int { return -1 },
		panicked: func(string, any) { panics.Add(1) },
	}
	done := make(chan int, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- -2
			}
		}()
		done <- b.do(keyed{"boom", 1})
	}()
	select {
	case v := <-done:
		if v != 1 {
			t.Fatalf("the call whose key panicked answered %d", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call whose key panicked got no answer")
	}
	for i, k := range []string{"a", "b", "boom"} {
		if got := answer(t, b.enqueue(keyed{k, 10 + i})); got != 10+i {
			t.Fatalf("call of %q answered %d", k, got)
		}
	}
	if panics.Load() != 2 {
		t.Fatalf("%d panics reported, want 2", panics.Load())
	}
}

// TestBatcherOpensNoDrainForABusyKey: calls of a key whose batch is in
// flight open no drain of their own (it would find nothing to take): the
// drain of that batch takes them once it has handed the batch back, and
// every call is answered. Seen failing with a drain opened beside the busy
// one (two drains for one key).
func TestBatcherOpensNoDrainForABusyKey(t *testing.T) {
	var drains atomic.Int64
	gate := make(chan struct{})
	b := &batcher[keyed, int]{max: 8, depth: 2,
		key: func(k keyed) string { return k.key },
		run: func(reqs []keyed) []int {
			<-gate
			out := make([]int, len(reqs))
			for i, r := range reqs {
				out[i] = r.v
			}
			return out
		},
		fail:  func(error) int { return -1 },
		spawn: func(f func()) { drains.Add(1); go f() },
	}
	calls := []<-chan int{b.enqueue(keyed{"a", 0})}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.busy["a"] == 1
	}, "the first batch in flight")
	for v := 1; v <= 3; v++ {
		calls = append(calls, b.enqueue(keyed{"a", v}))
	}
	close(gate)
	for v, ch := range calls {
		if got := answer(t, ch); got != v {
			t.Fatalf("call %d answered %d", v, got)
		}
	}
	if n := drains.Load(); n != 1 {
		t.Fatalf("%d drains opened for calls of one key, want 1", n)
	}
}
