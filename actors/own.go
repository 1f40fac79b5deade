package actors

import (
	"crypto/sha256"
	"sync"
)

// ownSent remembers the envelopes an activation sealed itself, by the
// digest of their message bytes, so that when the subscription brings one
// back on its conversation topic it is passed over without being decrypted
// and verified again: the same bytes are the same message. An envelope it
// no longer remembers (it was evicted, or sealed by an earlier activation)
// is opened as any other and passed over once its sender is known. It
// holds nothing until the activation sends, and only replies whose
// completion is stored: completeBatch adds each before it publishes it, so
// a reply refused by fencing, or one a delivery already completed does not
// get, leaves nothing behind.
type ownSent struct {
	mu  sync.Mutex
	ids map[[sha256.Size]byte]struct{}
}

// maxOwnSent bounds the envelopes remembered; on the way back each is
// forgotten, so it holds about the replies in flight.
const maxOwnSent = 1024

// add remembers an envelope's message bytes.
func (o *ownSent) add(message []byte) {
	k := sha256.Sum256(message)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ids == nil || len(o.ids) >= maxOwnSent {
		o.ids = make(map[[sha256.Size]byte]struct{})
	}
	o.ids[k] = struct{}{}
}

// take reports whether message is one the activation sealed, and forgets
// it.
func (o *ownSent) take(message []byte) bool {
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
