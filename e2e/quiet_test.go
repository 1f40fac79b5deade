package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// This file tells when a test's nodes have nothing left to do, so that a
// count of duplicates is final: a duplicate reply comes from a delivery
// that is still due (it will be attempted again) or from a reply in the
// outbox that is not marked sent (it will be published again). Once
// neither exists, every reply the nodes will ever publish is already on
// the XMTP node.

// pendingWork counts, in the test database conn is connected to, the
// deliveries due for an
// attempt (pending, or failed and waiting for a retry) and the replies
// of the outbox not yet published (pending, or failed and waiting).
func pendingWork(ctx context.Context, conn *pgx.Conn) (deliveries, replies int, err error) {
	err = conn.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM deliveries WHERE status IN ('pending', 'failed')),
		(SELECT count(*) FROM reply_outbox WHERE status IN ('pending', 'failed'))`).Scan(&deliveries, &replies)
	if err != nil {
		return 0, 0, fmt.Errorf("count pending work: %w", err)
	}
	return deliveries, replies, nil
}

// waitQuiet waits until the database db shows no due delivery and no
// unsent reply.
func waitQuiet(t testing.TB, db string, timeout time.Duration) {
	t.Helper()
	pollDB(t, db, timeout, "the nodes to be quiet (no delivery due, no reply unsent)", func(ctx context.Context, conn *pgx.Conn) (bool, error) {
		d, r, err := pendingWork(ctx, conn)
		return err == nil && d == 0 && r == 0, err
	})
}

// pollDB runs cond on a connection to the database db every 100ms until
// it holds, and fails the test with what after timeout.
func pollDB(t testing.TB, db string, timeout time.Duration, what string, cond func(context.Context, *pgx.Conn) (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatalf("connect to the test database: %v", err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond(ctx, conn)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (last error %v)", timeout, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
