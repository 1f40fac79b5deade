package actors

import (
	"errors"
	"testing"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/xmtp/keys"
	"github.com/xmtpbridge/bridge/xmtp/node"
)

// TestRejectedEnvelopeFollowsTheNode: the publish errors the XMTP node
// gives for what an envelope is (too large; a topic of another wallet)
// give a reply up, and the ones it gives for the call (no token) do not,
// as the node itself returns them.
func TestRejectedEnvelopeFollowsTheNode(t *testing.T) {
	e := newEnvNode(t, func(c *node.Config) { c.Authn, c.MaxEnvelopeBytes = true, 1024 })
	ctx := testkit.Context(t, 30*time.Second)
	me, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	other, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	auth := keys.NewAuthorizer(me)
	env := func(topic string, size int) *messagev1.Envelope {
		return &messagev1.Envelope{ContentTopic: "/xmtp/0/" + topic + "/proto", TimestampNs: uint64(time.Now().UnixNano()), Message: make([]byte, size)}
	}
	cases := []struct {
		name     string
		auth     *keys.Authorizer
		env      *messagev1.Envelope
		rejected bool
	}{
		{"another wallet's contact topic", auth, env("contact-"+other.Address(), 10), true},
		{"too large", auth, env("m-rejected-large", 4096), true},
		{"no token", nil, env("m-rejected-token", 10), false},
	}
	for _, c := range cases {
		var err error
		if c.auth == nil {
			err = e.xmtp.Publish(ctx, nil, c.env)
		} else {
			err = e.xmtp.Publish(ctx, c.auth, c.env)
		}
		if err == nil {
			t.Fatalf("%s: the node took the envelope", c.name)
		}
		if got := rejectedEnvelope(err); got != c.rejected {
			t.Errorf("%s: rejectedEnvelope(%v) = %v, want %v", c.name, err, got, c.rejected)
		}
	}
	if rejectedEnvelope(errors.New("connection refused")) {
		t.Error("a plain error counts as a rejected envelope")
	}
}
