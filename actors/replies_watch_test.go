package actors

import "testing"

// TestSweepLeavesRepliesRecordedDuringItsRead: a reply that a batch holds
// when a sweep begins, or that a batch records while the sweep reads the
// due replies, is not the sweep's to publish, even once the batch lets it
// go; after the sweep, the batch's record no longer matters.
func TestSweepLeavesRepliesRecordedDuringItsRead(t *testing.T) {
	var b replyBatch
	b.held = map[int64]bool{1: true, 2: true}

	taken, end := b.watch()
	if !taken(1) || !taken(2) || taken(3) {
		t.Fatalf("held at the start: taken(1)=%v taken(2)=%v taken(3)=%v", taken(1), taken(2), taken(3))
	}
	// The batch records reply 1 while the sweep's read runs: the read may
	// still return it as due.
	b.release([]int64{1})
	if !taken(1) {
		t.Fatal("a reply recorded during the sweep's read was handed to the sweep")
	}
	// A nested watch (none today) keeps what the outer one saw.
	taken2, end2 := b.watch()
	b.release([]int64{2})
	end2()
	if !taken(2) || !taken2(2) {
		t.Fatal("the inner watch's end forgot what the outer watch saw")
	}
	end()
	if b.released != nil {
		t.Fatalf("the sweep's memory outlives it: %v", b.released)
	}

	// The next sweep reads the outbox afresh, after the records: replies
	// released before it began are its to judge.
	taken, end = b.watch()
	defer end()
	if taken(1) || taken(2) {
		t.Fatal("a reply released before the sweep began is still taken")
	}
	b.release([]int64{5}) // not held: releasing is harmless
	if !taken(5) {
		t.Fatal("a release during the sweep was not seen")
	}
}
