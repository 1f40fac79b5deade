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
const leaseCTE = `lease AS (SELECT 1 FROM identity_leases
	WHERE identity = $1 AND owner = $2 AND epoch = $3 AND expires_at > now() FOR SHARE)`

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
