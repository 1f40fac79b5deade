package conversation

import (
	"crypto/sha256"
	"sync"
)

// OwnSent remembers envelopes a party sealed itself, by the digest of their
// message bytes, so that when a subscription brings one back on its
// conversation topic it can be passed over without being decrypted and
// verified: the same bytes are the same message. An envelope it no longer
// remembers (evicted, or sealed by another process) is opened as any other
// and passed over once its sender is known. It holds nothing until its
// owner sends, and at most MaxOwnSent envelopes; the zero value is ready.
type OwnSent struct {
	mu  sync.Mutex
	ids map[[sha256.Size]byte]struct{}
}

// MaxOwnSent bounds the envelopes an OwnSent remembers; on the way back
// each is forgotten, so it holds about the envelopes in flight.
const MaxOwnSent = 1024

// Add remembers an envelope's message bytes.
func (o *OwnSent) Add(message []byte) {
	k := sha256.Sum256(message)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ids == nil || len(o.ids) >= MaxOwnSent {
		o.ids = make(map[[sha256.Size]byte]struct{})
	}
	o.ids[k] = struct{}{}
}

// Take reports whether message is one Add remembered, and forgets it.
func (o *OwnSent) Take(message []byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.ids) == 0 {
		return false
	}
	k := sha256.Sum256(message)
	if _, ok := o.ids[k]; !ok {
		return false
	}
	delete(o.ids, k)
	if len(o.ids) == 0 {
		o.ids = nil
	}
	return true
}

// Len is how many envelopes it remembers.
func (o *OwnSent) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.ids)
}
