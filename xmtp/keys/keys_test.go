package keys

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	mc "github.com/xmtp/proto/v3/go/message_contents"
	"google.golang.org/protobuf/proto"
)

func mustGenerate(t testing.TB) *PrivateKeyBundle {
	t.Helper()
	b, err := Generate()
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	return b
}

func TestWalletAddressKnownVector(t *testing.T) {
	// Hardhat's first development account.
	secret, _ := hex.DecodeString("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
	w, err := LoadWallet(secret)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := w.Address(), "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"; got != want {
		t.Fatalf("address = %s, want %s", got, want)
	}
	if got := ChecksumAddress("0XF39FD6E51AAD88F6F4CE6AB8827279CFFFB92266"); got != w.Address() {
		t.Fatalf("checksum = %s", got)
	}
	sig := w.PersonalSign("hello")
	if sig[64] != 27 && sig[64] != 28 {
		t.Fatalf("v = %d", sig[64])
	}
	addr, err := RecoverPersonalSign("hello", sig)
	if err != nil || addr != w.Address() {
		t.Fatalf("recover = %s, %v", addr, err)
	}
	if addr, _ := RecoverPersonalSign("hellO", sig); addr == w.Address() {
		t.Fatal("recovered the signer from a different text")
	}
	if _, err := LoadWallet(make([]byte, 32)); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("zero key: %v", err)
	}
}

func TestBundleRoundTripAndVerify(t *testing.T) {
	b := mustGenerate(t)
	p, err := VerifyBundle(b.PublicBundle())
	if err != nil {
		t.Fatalf("verify own bundle: %v", err)
	}
	if p.Address != b.Address() || p.Address != b.Wallet().Address() {
		t.Fatalf("address %s != %s", p.Address, b.Address())
	}
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := UnmarshalPrivateKeyBundle(data)
	if err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if b2.Address() != b.Address() || !proto.Equal(b2.PublicBundle(), b.PublicBundle()) {
		t.Fatal("round trip changed the bundle")
	}
	// Legacy conversion is lossless.
	signed, err := LegacyBundleToSigned(b.LegacyPublicBundle())
	if err != nil || !proto.Equal(signed, b.PublicBundle()) {
		t.Fatalf("legacy round trip: %v", err)
	}
}

func TestBundleSecretsStayOutOfStrings(t *testing.T) {
	b := mustGenerate(t)
	secret := hex.EncodeToString(b.Wallet().Bytes())
	for _, s := range []string{b.String(), b.Wallet().String()} {
		if strings.Contains(s, secret) {
			t.Fatal("secret printed")
		}
	}
}

func TestVerifyBundleRejectsForgery(t *testing.T) {
	a, other := mustGenerate(t), mustGenerate(t)
	// Pre-key of another identity.
	pb := a.PublicBundle()
	pb.PreKey = other.PublicBundle().PreKey
	if _, err := VerifyBundle(pb); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("foreign pre-key: %v", err)
	}
	// Tampered identity key bytes change the recovered wallet.
	pb = a.PublicBundle()
	pb.IdentityKey.KeyBytes = other.PublicBundle().IdentityKey.KeyBytes
	if p, err := VerifyBundle(pb); err == nil && p.Address == a.Address() {
		t.Fatal("tampered identity key kept its address")
	}
	// Missing parts.
	if _, err := VerifyBundle(&mc.SignedPublicKeyBundle{}); !errors.Is(err, ErrMalformedBundle) {
		t.Fatalf("empty bundle: %v", err)
	}
}

func TestSharedSecretSymmetric(t *testing.T) {
	a, b := mustGenerate(t), mustGenerate(t)
	pa, _ := VerifyBundle(a.PublicBundle())
	pb, _ := VerifyBundle(b.PublicBundle())
	s1, err := a.SharedSecret(pb, a.CurrentPreKeyPublic(), false)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := b.SharedSecret(pa, b.CurrentPreKeyPublic(), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(s1) != 195 || hex.EncodeToString(s1) != hex.EncodeToString(s2) {
		t.Fatal("3DH secrets differ")
	}
	if _, err := a.SharedSecret(pb, b.CurrentPreKeyPublic(), false); !errors.Is(err, ErrUnknownPreKey) {
		t.Fatalf("foreign pre-key: %v", err)
	}
}

func TestContactEnvelopes(t *testing.T) {
	b := mustGenerate(t)
	envs, err := b.ContactEnvelopes(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(envs) != 2 || envs[0].ContentTopic != ContactTopic(b.Address()) {
		t.Fatalf("envelopes: %v", envs)
	}
	for i, env := range envs {
		p, err := DecodeContact(env.Message)
		if err != nil || p.Address != b.Address() {
			t.Fatalf("envelope %d: %v", i, err)
		}
	}
	// An impostor's bundle on the topic is skipped.
	imp := mustGenerate(t)
	impEnvs, _ := imp.ContactEnvelopes(time.Now().Add(time.Hour))
	p, err := PickContact(b.Address(), append(envs, impEnvs...))
	if err != nil || p.Address != b.Address() {
		t.Fatalf("pick: %v", err)
	}
	if _, err := PickContact(b.Address(), impEnvs); !errors.Is(err, ErrNoContact) {
		t.Fatalf("pick impostor: %v", err)
	}
}

func TestAuthToken(t *testing.T) {
	b := mustGenerate(t)
	now := time.Now()
	tok, err := b.AuthToken(now)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := VerifyAuthToken(tok, now.Add(time.Minute))
	if err != nil || addr != b.Address() {
		t.Fatalf("verify: %s %v", addr, err)
	}
	if _, err := VerifyAuthToken(tok, now.Add(61*time.Minute)); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("old token: %v", err)
	}
	if _, err := VerifyAuthToken(tok, now.Add(-5*time.Minute)); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("future token: %v", err)
	}
	if _, err := VerifyAuthToken("!!!", now); !errors.Is(err, ErrMalformedToken) {
		t.Fatalf("garbage: %v", err)
	}
	// A token whose auth data names someone else.
	other := mustGenerate(t)
	forged := forgeToken(t, b, other.Address(), now)
	if _, err := VerifyAuthToken(forged, now); !errors.Is(err, ErrAddressMismatch) {
		t.Fatalf("forged wallet: %v", err)
	}
}

func TestAuthorizerRenews(t *testing.T) {
	b := mustGenerate(t)
	a := NewAuthorizer(b)
	clock := time.Now()
	a.now = func() time.Time { return clock }
	t1, err := a.AuthToken(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(30 * time.Minute)
	t2, _ := a.AuthToken(context.Background())
	if t1 != t2 {
		t.Fatal("token renewed too early")
	}
	clock = clock.Add(25 * time.Minute)
	t3, _ := a.AuthToken(context.Background())
	if t3 == t1 {
		t.Fatal("token not renewed near expiry")
	}
	if _, err := VerifyAuthToken(t3, clock); err != nil {
		t.Fatalf("renewed token: %v", err)
	}
}

// TestSealedBundleDecodesAsChecked: a bundle decoded as sealed under its
// address is the bundle a checked decode gives: the same address (given in
// any case), public bundle, token signer and 3DH secrets; without an
// address it is refused.
func TestSealedBundleDecodesAsChecked(t *testing.T) {
	b, peer := mustGenerate(t), mustGenerate(t)
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	checked, err := UnmarshalPrivateKeyBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := UnmarshalSealedPrivateKeyBundle(data, strings.ToLower(b.Address()))
	if err != nil {
		t.Fatal(err)
	}
	if sealed.Address() != checked.Address() || !proto.Equal(sealed.PublicBundle(), checked.PublicBundle()) {
		t.Fatalf("sealed decode %s differs from checked %s", sealed.Address(), checked.Address())
	}
	pp, err := VerifyBundle(peer.PublicBundle())
	if err != nil {
		t.Fatal(err)
	}
	s1, err := sealed.SharedSecret(pp, sealed.CurrentPreKeyPublic(), false)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := checked.SharedSecret(pp, checked.CurrentPreKeyPublic(), false)
	if err != nil || hex.EncodeToString(s1) != hex.EncodeToString(s2) {
		t.Fatalf("3DH secrets differ: %v", err)
	}
	if _, err := VerifyBundle(sealed.PublicBundle()); err != nil {
		t.Fatalf("the sealed decode's public bundle does not verify: %v", err)
	}
	if _, err := UnmarshalSealedPrivateKeyBundle(data, ""); !errors.Is(err, ErrMalformedBundle) {
		t.Fatalf("no address: %v, want ErrMalformedBundle", err)
	}
}
