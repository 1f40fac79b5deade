package actors

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// goroutineID is the number runtime.Stack prints for the calling
// goroutine.
func goroutineID() int {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	buf = bytes.TrimPrefix(buf, []byte("goroutine "))
	n, _ := strconv.Atoi(string(buf[:bytes.IndexByte(buf, ' ')]))
	return n
}

// waitParked waits until w has n parked workers.
func waitParked(t *testing.T, w *workers, n int32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for w.parked.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("parked workers: %d, want %d", w.parked.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWorkersRunTheNextFunctionOnAParkedGoroutine: a function handed to
// workers after an earlier one ended runs on the goroutine that ran the
// earlier one, not on a new goroutine.
func TestWorkersRunTheNextFunctionOnAParkedGoroutine(t *testing.T) {
	w := newWorkers(4)
	defer w.stop()
	ids := make(chan int, 2)
	w.Go(func() { ids <- goroutineID() })
	first := <-ids
	waitParked(t, w, 1)
	w.Go(func() { ids <- goroutineID() })
	if second := <-ids; second != first {
		t.Fatalf("the second function ran on goroutine %d, the first on %d: the parked worker was not used", second, first)
	}
}

// TestWorkersDoNotWaitForABusyWorker: while every worker is busy, a new
// function runs at once on a goroutine of its own, and no more than max
// workers stay parked afterwards.
func TestWorkersDoNotWaitForABusyWorker(t *testing.T) {
	w := newWorkers(2)
	defer w.stop()
	release := make(chan struct{})
	var started sync.WaitGroup
	for range 5 {
		started.Add(1)
		w.Go(func() { started.Done(); <-release })
	}
	ran := make(chan struct{})
	w.Go(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("a function waited for busy workers")
	}
	started.Wait()
	close(release)
	waitParked(t, w, 2)
	time.Sleep(20 * time.Millisecond)
	if n := w.parked.Load(); n != 2 {
		t.Fatalf("parked workers: %d, want at most 2", n)
	}
}

// TestWorkersStop: stop ends the parked workers, and functions handed over
// after it still run.
func TestWorkersStop(t *testing.T) {
	w := newWorkers(4)
	done := make(chan struct{})
	w.Go(func() { done <- struct{}{} })
	<-done
	waitParked(t, w, 1)
	w.stop()
	waitParked(t, w, 0)
	w.Go(func() { close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a function handed over after stop did not run")
	}
	waitParked(t, w, 0)
}
