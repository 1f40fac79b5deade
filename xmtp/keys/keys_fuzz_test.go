package keys

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"google.golang.org/protobuf/proto"
)

func forgeToken(t testing.TB, b *PrivateKeyBundle, walletAddr string, now time.Time) string {
	t.Helper()
	data, _ := proto.Marshal(&messagev1.AuthData{WalletAddr: walletAddr, CreatedNs: uint64(now.UnixNano())})
	id, _ := SignedToLegacy(b.identity.public)
	tok, _ := proto.Marshal(&messagev1.Token{IdentityKey: id, AuthDataBytes: data,
		AuthDataSignature: ecdsaSignature(signDigest(b.identity.key, Keccak256(data)))})
	return base64.StdEncoding.EncodeToString(tok)
}

// sameBundle reports how two bundles differ in their keys, or nil.
func sameBundle(a, b *PrivateKeyBundle) error {
	if a.Address() != b.Address() || !bytes.Equal(a.IdentityPublic(), b.IdentityPublic()) ||
		!bytes.Equal(a.identity.key.Serialize(), b.identity.key.Serialize()) || a.identity.createdNs != b.identity.createdNs {
		return fmt.Errorf("identity %s differs from %s", a.Address(), b.Address())
	}
	if len(a.preKeys) != len(b.preKeys) {
		return fmt.Errorf("%d pre-keys, not %d", len(a.preKeys), len(b.preKeys))
	}
	for i := range a.preKeys {
		if !bytes.Equal(a.preKeys[i].key.Serialize(), b.preKeys[i].key.Serialize()) || a.preKeys[i].createdNs != b.preKeys[i].createdNs ||
			!proto.Equal(a.preKeys[i].public, b.preKeys[i].public) {
			return fmt.Errorf("pre-key %d differs", i)
		}
	}
	return nil
}

// roundTrip marshals a bundle and decodes it again.
func roundTrip(b *PrivateKeyBundle) (*PrivateKeyBundle, []byte, error) {
	out, err := b.Marshal()
	if err != nil {
		return nil, nil, err
	}
	again, err := UnmarshalPrivateKeyBundle(out)
	return again, out, err
}

// FuzzUnmarshalPrivateKeyBundle decodes arbitrary bundles. A bundle it
// accepts (v1 or v2) marshals to a v2 bundle that decodes to the same keys
// and marshals to the same bytes again; the seed bundle, with two pre-keys,
// survives Marshal and Unmarshal unchanged.
func FuzzUnmarshalPrivateKeyBundle(f *testing.F) {
	b := mustGenerate(f)
	data, _ := b.Marshal()
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add([]byte{})
	if _, err := b.AddPreKey(time.Now()); err != nil {
		f.Fatal(err)
	}
	again, two, err := roundTrip(b)
	if err != nil {
		f.Fatal(err)
	}
	if err := sameBundle(again, b); err != nil {
		f.Fatalf("Marshal and Unmarshal changed a bundle: %v", err)
	}
	f.Add(two)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := UnmarshalPrivateKeyBundle(data)
		if err != nil {
			return
		}
		if got.Address() == "" {
			t.Fatal("decoded bundle has no address")
		}
		again, out, err := roundTrip(got)
		if err != nil {
			t.Fatalf("round trip of a decoded bundle: %v", err)
		}
		if err := sameBundle(again, got); err != nil {
			t.Fatalf("round trip changed a decoded bundle: %v", err)
		}
		if out2, err := again.Marshal(); err != nil || !bytes.Equal(out2, out) {
			t.Fatalf("second marshal differs (%v)", err)
		}
	})
}

func FuzzDecodeContact(f *testing.F) {
	b := mustGenerate(f)
	envs, _ := b.ContactEnvelopes(time.Now())
	for _, e := range envs {
		f.Add(e.Message)
	}
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeContact(data)
		if err == nil && (p.Identity == nil || p.PreKey == nil) {
			t.Fatal("verified bundle without keys")
		}
	})
}

// FuzzVerifyAuthToken mutates a token of one bundle. The fuzzer cannot
// sign for another key, so a token that verifies names that bundle's
// address and no other, whatever wallet address its auth data claims.
// The wallet and the clock are fixed, so inputs kept from earlier runs
// (other bundles, other times) cannot verify by accident.
func FuzzVerifyAuthToken(f *testing.F) {
	w, err := LoadWallet(bytes.Repeat([]byte{0x2a}, 32))
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	b, err := NewBundle(w, now)
	if err != nil {
		f.Fatal(err)
	}
	tok, _ := b.AuthToken(now)
	f.Add(tok)
	f.Add(tok[:len(tok)/2])
	f.Add("")
	f.Add(forgeToken(f, b, mustGenerate(f).Address(), now))
	f.Add(forgeToken(f, b, strings.ToLower(b.Address()), now))
	f.Fuzz(func(t *testing.T, tok string) {
		addr, err := VerifyAuthToken(tok, now)
		if err == nil && addr != b.Address() {
			t.Fatalf("verified a token for %q; only %s signed one", addr, b.Address())
		}
	})
}
