package keys

import (
	"fmt"
	"sort"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	mc "github.com/xmtp/proto/v3/go/message_contents"
	"google.golang.org/protobuf/proto"
)

// ContactEnvelopes returns the two envelopes xmtp-js publishes to the
// contact topic: the legacy V1 bundle, then the V2 bundle.
func (b *PrivateKeyBundle) ContactEnvelopes(now time.Time) ([]*messagev1.Envelope, error) {
	v1, err := proto.Marshal(&mc.ContactBundle{Version: &mc.ContactBundle_V1{V1: &mc.ContactBundleV1{KeyBundle: b.LegacyPublicBundle()}}})
	if err != nil {
		return nil, fmt.Errorf("encode contact bundle: %w", err)
	}
	v2, err := proto.Marshal(&mc.ContactBundle{Version: &mc.ContactBundle_V2{V2: &mc.ContactBundleV2{KeyBundle: b.PublicBundle()}}})
	if err != nil {
		return nil, fmt.Errorf("encode contact bundle: %w", err)
	}
	t := ContactTopic(b.address)
	ns := uint64(now.UnixNano())
	return []*messagev1.Envelope{
		{ContentTopic: t, TimestampNs: ns, Message: v1},
		{ContentTopic: t, TimestampNs: ns + 1, Message: v2},
	}, nil
}

// DecodeContact decodes and verifies one contact bundle message, V1 or V2.
func DecodeContact(message []byte) (*PeerBundle, error) {
	var cb mc.ContactBundle
	if err := proto.Unmarshal(message, &cb); err != nil {
		return nil, fmt.Errorf("decode contact bundle: %w", ErrMalformedBundle)
	}
	var signed *mc.SignedPublicKeyBundle
	switch v := cb.Version.(type) {
	case *mc.ContactBundle_V1:
		var err error
		if signed, err = LegacyBundleToSigned(v.V1.GetKeyBundle()); err != nil {
			return nil, fmt.Errorf("decode contact bundle: %w", err)
		}
	case *mc.ContactBundle_V2:
		signed = v.V2.GetKeyBundle()
	default:
		// Very old clients published a bare PublicKeyBundle.
		var legacy mc.PublicKeyBundle
		if err := proto.Unmarshal(message, &legacy); err != nil {
			return nil, fmt.Errorf("decode contact bundle: %w", ErrMalformedBundle)
		}
		var err error
		if signed, err = LegacyBundleToSigned(&legacy); err != nil {
			return nil, fmt.Errorf("decode contact bundle: %w", err)
		}
	}
	return VerifyBundle(signed)
}

// PickContact returns the newest envelope's bundle that decodes, verifies and
// belongs to addr. Envelopes may be in any order.
func PickContact(addr string, envs []*messagev1.Envelope) (*PeerBundle, error) {
	want := ChecksumAddress(addr)
	sorted := append([]*messagev1.Envelope(nil), envs...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].TimestampNs > sorted[j].TimestampNs })
	for _, env := range sorted {
		p, err := DecodeContact(env.Message)
		if err != nil || p.Address != want {
			continue
		}
		return p, nil
	}
	return nil, fmt.Errorf("pick contact for %s: %w", want, ErrNoContact)
}
