package keys

import (
	"encoding/base64"
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

func FuzzUnmarshalPrivateKeyBundle(f *testing.F) {
	b := mustGenerate(f)
	data, _ := b.Marshal()
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := UnmarshalPrivateKeyBundle(data)
		if err == nil && got.Address() == "" {
			t.Fatal("decoded bundle has no address")
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

func FuzzVerifyAuthToken(f *testing.F) {
	b := mustGenerate(f)
	now := time.Now()
	tok, _ := b.AuthToken(now)
	f.Add(tok)
	f.Add(tok[:len(tok)/2])
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		addr, err := VerifyAuthToken(tok, now)
		if err == nil && addr != b.Address() && !IsAddress(addr) {
			t.Fatalf("verified token with bad address %q", addr)
		}
	})
}
