package actors

import (
	"strings"
	"testing"

	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// TestOwnSentTakesEachEnvelopeOnce: an envelope the activation sealed is
// recognised once by its bytes; other bytes, or the same ones a second
// time, are opened as usual.
func TestOwnSentTakesEachEnvelopeOnce(t *testing.T) {
	var o ownSent
	if o.take([]byte("a")) {
		t.Fatal("an empty set took an envelope")
	}
	o.add([]byte("a"))
	o.add([]byte("b"))
	if o.take([]byte("c")) {
		t.Fatal("took an envelope it never sealed")
	}
	if !o.take([]byte("a")) || o.take([]byte("a")) {
		t.Fatal("an envelope it sealed is not taken exactly once")
	}
	for i := range maxOwnSent + 1 {
		o.add([]byte{byte(i), byte(i >> 8), 'x'})
	}
	if len(o.ids) > maxOwnSent {
		t.Fatalf("holds %d envelopes, at most %d", len(o.ids), maxOwnSent)
	}
}

// TestInvitePrefixStartsInviteTopics: the prefix the identity checks
// before it hashes an address is the start of every invite topic.
func TestInvitePrefixStartsInviteTopics(t *testing.T) {
	k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if topic := keys.InviteTopic(k.Address()); !strings.HasPrefix(topic, invitePrefix) {
		t.Fatalf("invite topic %q does not start with %q", topic, invitePrefix)
	}
}
