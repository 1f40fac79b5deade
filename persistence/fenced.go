package persistence

import (
	"fmt"
)

// Writes fenced by a lease in one statement.
//
// A hot-path write of an activation carries its lease check in the same
// statement as a common table expression, lease: a write after a
// take-over finds no live lease row for its epoch and changes nothing.
// This is what checkLease does for a transaction, without the BEGIN and
// COMMIT round trips. The lease's identity, owner and epoch are always the
// statement's parameters $1, $2 and $3.
//
// The lease row is read, not locked. Locking it in share mode made a
// take-over wait for a write already under way, but every concurrent
// write of one identity then shared the lock, which Postgres records as a
// new multixact and a lock record on the lease row (0.4 of each per
// message). What the wait added is only that such a write cannot commit
// just after the take-over; committing just after it is the same as
// committing just before it, for each write that uses leaseCTE:
//   - a completion (CompleteDelivery): its reply is in the outbox for the
//     new activation to publish, and a completion of the same delivery by
//     the new activation waits for the delivery's row lock, finds it
//     succeeded and adds no reply (the argument of CompleteDeliveries);
//   - a failed attempt (RecordLeasedAttempt): it moves only a delivery
//     still pending or failed, under the delivery's row lock, so it
//     schedules a retry the new activation makes, and never undoes a
//     completion;
//   - a reply's publish result (RecordReplyAttempts): at worst the new
//     activation publishes the same envelope bytes again, which the XMTP
//     node stores once;
//   - a cursor move (SaveCursor): it moves the cursor only past deliveries
//     the old activation had already recorded, which the new one finds in
//     the store (the argument of SaveCursors).
const leaseCTE = `lease AS (SELECT 1 FROM identity_leases l
	WHERE l.identity = $1 AND l.owner = $2 AND l.epoch = $3 AND ` + leaseLive + `)`

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
// disk (synchronous_commit off for that transaction only). A crash of
// Postgres may lose such a commit, but only together with everything
// logged after it: the WAL is replayed in order, and a synchronous commit
// flushes all the WAL before its own record. It is for writes whose loss,
// with what follows them, loses no message and repeats no reply:
//   - a cursor move (SaveCursors): a lost move only replays messages
//     whose deliveries are recorded, which the (bridge, message id) key
//     finds again.
//   - a reply's publication (RecordReplyAttempts). A reply whose "sent"
//     is lost is published again from the outbox with exactly the same
//     envelope bytes, as after a node that dies between publishing and
//     recording, and the XMTP node keeps one copy of an envelope.
//   - the record of a published contact bundle (SetContactPublished): a
//     lost one only publishes the same bundle again at the next
//     activation.
//
// Delivery records and completions (with their outbox replies) commit
// synchronously. The WAL order alone would make a record durable before
// the completion after it, but a node can outlive a crash of Postgres and
// act on what it was told: a lost record would be a message lost behind a
// cursor moved on, and its delivery id handed out again. A completion is
// what a reply is published after, so losing one would let the delivery
// be completed again with a second reply.
// TestAsyncCommitsAreLostOnlyBehindWhatFollows crashes a private Postgres
// under this mix of commits and checks that what survives is whole.
const asyncCommit = `(SELECT set_config('synchronous_commit', 'off', true)) AS async_commit`
