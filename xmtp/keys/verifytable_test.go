package keys

import (
	"container/list"
	"crypto/rand"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"google.golang.org/protobuf/proto"
)

// TestTableVerifyAgreesWithLibrary: a check through a key's table accepts
// and refuses exactly what the library's Verify does, for good signatures,
// signatures over another digest, under another key, and with r or s
// changed.
func TestTableVerifyAgreesWithLibrary(t *testing.T) {
	for range 40 {
		key, err := secp256k1.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		other, err := secp256k1.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		pub := key.PubKey()
		table := newKeyTable(pub)
		digest := make([]byte, 32)
		if _, err := rand.Read(digest); err != nil {
			t.Fatal(err)
		}
		sig := signDigest(key, digest)
		var r, s secp256k1.ModNScalar
		r.SetByteSlice(sig.Bytes[:32])
		s.SetByteSlice(sig.Bytes[32:])
		otherDigest := append([]byte(nil), digest...)
		otherDigest[0] ^= 1
		var r1, s1 secp256k1.ModNScalar
		r1.Set(&r).Add(new(secp256k1.ModNScalar).SetInt(1))
		s1.Set(&s).Add(new(secp256k1.ModNScalar).SetInt(1))
		for _, c := range []struct {
			name   string
			table  *keyTable
			pub    *secp256k1.PublicKey
			r, s   *secp256k1.ModNScalar
			digest []byte
			want   bool
		}{
			{"good", table, pub, &r, &s, digest, true},
			{"other digest", table, pub, &r, &s, otherDigest, false},
			{"other key", newKeyTable(other.PubKey()), other.PubKey(), &r, &s, digest, false},
			{"r changed", table, pub, &r1, &s, digest, false},
			{"s changed", table, pub, &r, &s1, digest, false},
			{"s negated", table, pub, &r, new(secp256k1.ModNScalar).NegateVal(&s), digest, true},
		} {
			lib := ecdsa.NewSignature(c.r, c.s).Verify(c.digest, c.pub)
			got := verifyWithTable(c.table, c.r, c.s, c.digest)
			if got != lib || got != c.want {
				t.Fatalf("%s: table says %v, library %v, want %v", c.name, got, lib, c.want)
			}
		}
	}
}

// TestTableMultipliesLikeLibrary: k·Q through the table is the library's
// k·Q, for random scalars and for scalars with every 4-bit digit set.
func TestTableMultipliesLikeLibrary(t *testing.T) {
	key, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := key.PubKey()
	table := newKeyTable(pub)
	var q secp256k1.JacobianPoint
	pub.AsJacobian(&q)
	scalars := []*secp256k1.ModNScalar{new(secp256k1.ModNScalar).SetInt(1), new(secp256k1.ModNScalar).SetInt(15),
		new(secp256k1.ModNScalar).SetInt(16), new(secp256k1.ModNScalar).NegateVal(new(secp256k1.ModNScalar).SetInt(1))}
	for range 50 {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		k := new(secp256k1.ModNScalar)
		k.SetBytes(&b)
		scalars = append(scalars, k)
	}
	for _, k := range scalars {
		var want, got secp256k1.JacobianPoint
		secp256k1.ScalarMultNonConst(k, &q, &want)
		table.mul(k, &got)
		want.ToAffine()
		got.ToAffine()
		if !want.X.Equals(&got.X) || !want.Y.Equals(&got.Y) {
			t.Fatalf("k = %x: table and library differ", k.Bytes())
		}
	}
}

// TestKeyTablesAreBuiltAfterUsesAndBounded: a key gets its table on its
// tableAfterUses-th check, and no more than tableKeys tables are kept.
func TestKeyTablesAreBuiltAfterUsesAndBounded(t *testing.T) {
	c := &tableCache{entries: map[[33]byte]*list.Element{}, uses: map[[33]byte]int{}}
	key, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < tableAfterUses; i++ {
		if c.lookup(key.PubKey()) != nil {
			t.Fatalf("a table after %d uses", i)
		}
	}
	if c.lookup(key.PubKey()) == nil || c.lookup(key.PubKey()) == nil {
		t.Fatalf("no table after %d uses", tableAfterUses)
	}
	for range tableKeys + 2 {
		k, err := secp256k1.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		for range tableAfterUses {
			c.lookup(k.PubKey())
		}
	}
	if c.lru.Len() != tableKeys || len(c.entries) != tableKeys {
		t.Fatalf("%d tables kept (%d entries), at most %d", c.lru.Len(), len(c.entries), tableKeys)
	}
}

func BenchmarkVerifyLibrary(b *testing.B) {
	key, _ := secp256k1.GeneratePrivateKey()
	digest := make([]byte, 32)
	sig := signDigest(key, digest)
	var r, s secp256k1.ModNScalar
	r.SetByteSlice(sig.Bytes[:32])
	s.SetByteSlice(sig.Bytes[32:])
	pub := key.PubKey()
	for b.Loop() {
		ecdsa.NewSignature(&r, &s).Verify(digest, pub)
	}
}

func BenchmarkVerifyTable(b *testing.B) {
	key, _ := secp256k1.GeneratePrivateKey()
	digest := make([]byte, 32)
	sig := signDigest(key, digest)
	var r, s secp256k1.ModNScalar
	r.SetByteSlice(sig.Bytes[:32])
	s.SetByteSlice(sig.Bytes[32:])
	table := newKeyTable(key.PubKey())
	for b.Loop() {
		verifyWithTable(table, &r, &s, digest)
	}
}

func BenchmarkKeyTable(b *testing.B) {
	key, _ := secp256k1.GeneratePrivateKey()
	for b.Loop() {
		newKeyTable(key.PubKey())
	}
}

// TestSenderBundleFollowsThePreKey: the shared sender bundle is the public
// bundle, and names the new pre-key once one is added.
func TestSenderBundleFollowsThePreKey(t *testing.T) {
	b, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(b.SenderBundle(), b.PublicBundle()) || b.SenderBundle() != b.SenderBundle() {
		t.Fatal("the sender bundle is not the public bundle, shared")
	}
	if _, err := b.AddPreKey(time.Now()); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(b.SenderBundle(), b.PublicBundle()) {
		t.Fatal("the sender bundle still names the old pre-key")
	}
}
