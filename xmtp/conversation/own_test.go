package conversation

import "testing"

// TestOwnSentTakesEachEnvelopeOnce: an envelope its owner sealed is
// recognised once by its bytes; other bytes, or the same ones a second
// time, are not; it never holds more than MaxOwnSent.
func TestOwnSentTakesEachEnvelopeOnce(t *testing.T) {
	var o OwnSent
	if o.Take([]byte("a")) {
		t.Fatal("an empty set took an envelope")
	}
	o.Add([]byte("a"))
	o.Add([]byte("b"))
	if o.Take([]byte("c")) {
		t.Fatal("took an envelope it never sealed")
	}
	if !o.Take([]byte("a")) || o.Take([]byte("a")) {
		t.Fatal("an envelope it sealed is not taken exactly once")
	}
	for i := range MaxOwnSent + 1 {
		o.Add([]byte{byte(i), byte(i >> 8), 'x'})
	}
	if o.Len() > MaxOwnSent {
		t.Fatalf("holds %d envelopes, at most %d", o.Len(), MaxOwnSent)
	}
}
