package actors

import (
	"strings"
	"sync"
	"testing"
	"time"
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
