package api

import (
	"fmt"
	"testing"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
)

// TestRecentSetRemembersTheLastKeys checks the de-duplication window of a
// subscription: an envelope seen among the last capacity is a duplicate,
// an older one is new again, and a duplicate does not move the window.
func TestRecentSetRemembersTheLastKeys(t *testing.T) {
	const capacity = 4
	r := newRecentSet(capacity)
	env := func(i int) *messagev1.Envelope {
		return &messagev1.Envelope{ContentTopic: "/xmtp/0/m-t/proto", Message: []byte(fmt.Sprint("m", i)), TimestampNs: uint64(i)}
	}
	for i := range capacity {
		if !r.add(envelopeKey(env(i))) {
			t.Fatalf("envelope %d: first add reported a duplicate", i)
		}
	}
	for i := range capacity {
		if r.add(envelopeKey(env(i))) || !r.has(envelopeKey(env(i))) {
			t.Fatalf("envelope %d: not remembered within the window", i)
		}
	}
	// Two more push the two oldest out, and only them.
	for i := capacity; i < capacity+2; i++ {
		if !r.add(envelopeKey(env(i))) {
			t.Fatalf("envelope %d: first add reported a duplicate", i)
		}
	}
	for i := range capacity + 2 {
		if want := i >= 2; r.has(envelopeKey(env(i))) != want {
			t.Fatalf("envelope %d: remembered %v, want %v", i, !want, want)
		}
	}
	if len(r.keys) != capacity {
		t.Fatalf("set holds %d keys, want %d", len(r.keys), capacity)
	}
	// The same message on another topic, or at another time, is another
	// envelope.
	e := env(5)
	for _, other := range []*messagev1.Envelope{
		{ContentTopic: "/xmtp/0/m-u/proto", Message: e.Message, TimestampNs: e.TimestampNs},
		{ContentTopic: e.ContentTopic, Message: e.Message, TimestampNs: e.TimestampNs + 1},
	} {
		if r.has(envelopeKey(other)) {
			t.Fatalf("envelope %v taken for %v", other, e)
		}
	}
}

// TestRememberingAnEnvelopeAllocatesNothing checks that remembering an
// envelope costs no allocation: no key string, no hash state, no copy of
// the topic (a busy subscription holds tens of thousands of keys, which
// the garbage collector would otherwise scan and mark one by one).
func TestRememberingAnEnvelopeAllocatesNothing(t *testing.T) {
	r := newRecentSet(1 << 10)
	env := &messagev1.Envelope{ContentTopic: "/xmtp/0/m-0123456789abcdef0123456789abcdef/proto", Message: make([]byte, 300)}
	n := testing.AllocsPerRun(2000, func() {
		env.TimestampNs++
		r.add(envelopeKey(env))
	})
	if n > 0 {
		t.Fatalf("%.0f allocations per envelope remembered, want none", n)
	}
}
