package actors

import "testing"

// TestIDSetHoldsRunningDeliveries checks the set of deliveries with an
// attempt running: an id is in it from add to remove, and only then.
func TestIDSetHoldsRunningDeliveries(t *testing.T) {
	var s idSet
	if s.has(1) {
		t.Fatal("empty set has 1")
	}
	s.remove(1) // removing from the empty set is a no-op
	s.add(1)
	s.add(2)
	if !s.has(1) || !s.has(2) || s.has(3) {
		t.Fatalf("after adding 1 and 2: has 1 %v, 2 %v, 3 %v", s.has(1), s.has(2), s.has(3))
	}
	s.remove(1)
	if s.has(1) || !s.has(2) {
		t.Fatalf("after removing 1: has 1 %v, 2 %v", s.has(1), s.has(2))
	}
}

// TestIDSetAttemptAllocatesNothing checks that marking an attempt running
// and done again, as every forwarded message does, allocates nothing once
// the set has held as many at once (a sync.Map allocated two objects).
func TestIDSetAttemptAllocatesNothing(t *testing.T) {
	var s idSet
	for id := range int64(8) {
		s.add(id)
	}
	for id := range int64(8) {
		s.remove(id)
	}
	id := int64(1000)
	n := testing.AllocsPerRun(1000, func() {
		id++
		s.add(id)
		_ = s.has(id)
		s.remove(id)
	})
	if n > 0 {
		t.Fatalf("%.0f allocations per attempt, want none", n)
	}
}
