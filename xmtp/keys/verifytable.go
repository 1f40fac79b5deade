package keys

import (
	"container/list"
	"sync"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// Signature checks under a key that signs many messages.
//
// An ECDSA check computes u1·G + u2·Q. The library multiplies by the
// generator G through tables it precomputed, and by the signer's key Q
// from nothing each time, which is most of the check's cost. A sender's
// pre-key signs every message it sends, so once a key has signed
// tableAfterUses messages here its own table is built: the multiples
// j·16^i·Q for every 4-bit digit j of every position i, in affine
// coordinates, so that u2·Q is at most 64 point additions and no
// doublings. The tables of the tableKeys keys used last are kept, about
// 77 KB each.

const (
	// tableAfterUses is how many checks under a key come before its
	// table is built: building one costs about a dozen checks, and a check
	// through it a sixth of one.
	tableAfterUses = 16
	// tableKeys bounds the keys with a table, and 4*tableKeys the keys
	// whose uses are counted.
	tableKeys = 64
)

// keyTable holds j·16^i·Q for i in [0, 64) and j in [1, 16), at [i][j-1],
// each with Z = 1.
type keyTable [64][15]secp256k1.JacobianPoint

// tables is the node's cache of key tables, by compressed key.
var tables = &tableCache{entries: map[[33]byte]*list.Element{}, uses: map[[33]byte]int{}}

type tableCache struct {
	mu      sync.Mutex
	lru     list.List // of *tableEntry, most recent first
	entries map[[33]byte]*list.Element
	uses    map[[33]byte]int
}

type tableEntry struct {
	key   [33]byte
	table *keyTable
}

// lookup returns pub's table, building it once pub has been used often
// enough, or nil.
func (c *tableCache) lookup(pub *secp256k1.PublicKey) *keyTable {
	var k [33]byte
	copy(k[:], pub.SerializeCompressed())
	c.mu.Lock()
	if e, ok := c.entries[k]; ok {
		c.lru.MoveToFront(e)
		t := e.Value.(*tableEntry).table
		c.mu.Unlock()
		return t
	}
	c.uses[k]++
	build := c.uses[k] == tableAfterUses
	if len(c.uses) > 4*tableKeys {
		c.uses = map[[33]byte]int{}
	}
	c.mu.Unlock()
	if !build {
		return nil
	}
	t := newKeyTable(pub)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.uses, k)
	if _, ok := c.entries[k]; !ok {
		c.entries[k] = c.lru.PushFront(&tableEntry{key: k, table: t})
		for c.lru.Len() > tableKeys {
			old := c.lru.Back()
			c.lru.Remove(old)
			delete(c.entries, old.Value.(*tableEntry).key)
		}
	}
	return t
}

// newKeyTable computes the table of pub.
func newKeyTable(pub *secp256k1.PublicKey) *keyTable {
	t := new(keyTable)
	var base secp256k1.JacobianPoint // 16^i·Q
	pub.AsJacobian(&base)
	for i := range t {
		t[i][0].Set(&base)
		for j := 1; j < 15; j++ {
			secp256k1.AddNonConst(&t[i][j-1], &base, &t[i][j])
		}
		// 16·16^i·Q = 15·16^i·Q + 16^i·Q
		var next secp256k1.JacobianPoint
		secp256k1.AddNonConst(&t[i][14], &base, &next)
		base.Set(&next)
	}
	toAffine(t)
	return t
}

// toAffine brings every point of t to Z = 1 with one field inversion for
// all of them (Montgomery's trick). No point of t is the point at
// infinity: each is a multiple of Q smaller than the group order.
func toAffine(t *keyTable) {
	const n = len(t) * len(t[0])
	at := func(k int) *secp256k1.JacobianPoint { return &t[k/15][k%15] }
	var prefix [n]secp256k1.FieldVal // prefix[k] = Z_0·…·Z_k
	prefix[0].Set(&at(0).Z)
	for k := 1; k < n; k++ {
		prefix[k].Mul2(&prefix[k-1], &at(k).Z)
	}
	var inv secp256k1.FieldVal // (Z_0·…·Z_k)^-1
	inv.Set(&prefix[n-1]).Inverse()
	for k := n - 1; k >= 0; k-- {
		p := at(k)
		var zInv, zInv2 secp256k1.FieldVal
		if k > 0 {
			zInv.Mul2(&inv, &prefix[k-1])
			inv.Mul(&p.Z)
		} else {
			zInv.Set(&inv)
		}
		zInv2.SquareVal(&zInv)
		p.X.Mul(&zInv2).Normalize()
		p.Y.Mul(zInv2.Mul(&zInv)).Normalize()
		p.Z.SetInt(1)
	}
}

// mul sets result to k·Q.
func (t *keyTable) mul(k *secp256k1.ModNScalar, result *secp256k1.JacobianPoint) {
	result.X.Zero()
	result.Y.Zero()
	result.Z.Zero()
	b := k.Bytes() // big-endian
	for i := range t {
		digit := b[31-i/2] >> (4 * (i % 2)) & 0xf
		if digit != 0 {
			secp256k1.AddNonConst(result, &t[i][digit-1], result)
		}
	}
}

// orderAsField is the group order N as a field value.
var orderAsField = func() secp256k1.FieldVal {
	var f secp256k1.FieldVal
	f.SetByteSlice(secp256k1.Params().N.Bytes())
	return f
}()

// verifyWithTable checks the signature (r, s) over hash under the key of
// t: the steps of the library's Signature.Verify, with u2·Q from t.
func verifyWithTable(t *keyTable, r, s *secp256k1.ModNScalar, hash []byte) bool {
	if r.IsZero() || s.IsZero() {
		return false
	}
	var e secp256k1.ModNScalar
	e.SetByteSlice(hash)
	w := new(secp256k1.ModNScalar).InverseValNonConst(s)
	u1 := new(secp256k1.ModNScalar).Mul2(&e, w)
	u2 := new(secp256k1.ModNScalar).Mul2(r, w)
	var X, u1G, u2Q secp256k1.JacobianPoint
	secp256k1.ScalarBaseMultNonConst(u1, &u1G)
	t.mul(u2, &u2Q)
	secp256k1.AddNonConst(&u1G, &u2Q, &X)
	if (X.X.IsZero() && X.Y.IsZero()) || X.Z.IsZero() {
		return false
	}
	// X.x / Z^2 ≡ r (mod N) without the inversion: compare r·Z^2 and,
	// when r + N < P, (r + N)·Z^2 with X.x.
	z := new(secp256k1.FieldVal).SquareVal(&X.Z)
	var buf [32]byte
	r.PutBytes(&buf)
	var rField secp256k1.FieldVal
	rField.SetBytes(&buf)
	result := new(secp256k1.FieldVal).Mul2(&rField, z).Normalize()
	if result.Equals(&X.X) {
		return true
	}
	if rField.IsGtOrEqPrimeMinusOrder() {
		return false
	}
	rField.Add(&orderAsField)
	result.Mul2(&rField, z).Normalize()
	return result.Equals(&X.X)
}
