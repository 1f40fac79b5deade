package actors

import (
	"testing"
	"time"
)

// TestWakesAreBounded: retries a sender multiplies (a flood of messages
// to a bridge whose endpoint fails) arm at most maxWakes wakes; the ones
// past the bound are left to the periodic pass over the due work, which
// finds them in the store.
func TestWakesAreBounded(t *testing.T) {
	s := newScheduler(nil)
	later := time.Now().Add(time.Hour)
	for i := range maxWakes + 1000 {
		s.wake("bridge", later.Add(time.Duration(i)))
	}
	if n := len(s.queue); n != maxWakes {
		t.Fatalf("%d wakes armed, want at most %d", n, maxWakes)
	}
	if first := s.queue[0]; !first.at.Equal(later) {
		t.Fatalf("the earliest wake is at %v, want %v", first.at, later)
	}
}
