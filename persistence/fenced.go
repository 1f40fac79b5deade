package persistence

import (
	"fmt"
)

// Writes fenced by a lease in one statement.
//
// A hot-path write of an activation carries its lease check in the same
// statement as a common table expression, lease, which locks the lease row
// in share mode: a take-over (which updates that row) waits until the write
// has committed, and a write after a take-over finds no row and changes
// nothing. This is what checkLease does for a transaction, without the
// BEGIN and COMMIT round trips. The lease's identity, owner and epoch are
// always the statement's parameters $1, $2 and $3.

// leaseCTE is the lease check of a fenced statement, to follow WITH.
// Its node lease, if the lease has one, is read in the same statement
// (leaseLive) and not locked: a node lease that ran out is never renewed,
// and taking over an identity updates the identity's row, which the lock
// holds.
const leaseCTE = `lease AS (SELECT 1 FROM identity_leases l
	WHERE l.identity = $1 AND l.owner = $2 AND l.epoch = $3 AND ` + leaseLive + ` FOR SHARE OF l)`

// leaseArgs returns the parameters of a fenced statement: the lease's,
// then args.
func leaseArgs(l Lease, args ...any) []any {
	return append([]any{l.Identity, l.Owner, l.Epoch}, args...)
}

// fencedError is the error of a write refused because l is not the
// identity's current lease.
func fencedError(l Lease) error {
	return fmt.Errorf("check lease on %s epoch %d: %w", l.Identity, l.Epoch, ErrFenced)
}

// asyncCommit, a FROM item of a statement's final SELECT, lets the
// statement's transaction commit without waiting for its WAL to reach the
// disk (synchronous_commit off for that transaction only). It is for a
// write that a crash of Postgres may lose without losing a message or
// repeating a reply, because it only records progress that is made again:
// a reply's publication. A reply whose "sent" is lost is published again
// from the outbox with exactly the same envelope bytes, as after a node
// that dies between publishing and recording, and the XMTP node keeps one
// copy of an envelope.
//
// Deliveries, cursors, completions and outbox inserts keep committing
// synchronously. (A cursor could be lost as safely, since the WAL is
// replayed in order after the delivery it follows, but a cursor write
// that returns sooner lets its identity write its cursor after fewer
// messages, which made more statements per message under load.)
const asyncCommit = `(SELECT set_config('synchronous_commit', 'off', true)) AS async_commit`
