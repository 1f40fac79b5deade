package actors

import (
	"strings"
	"sync"
	"testing"
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
