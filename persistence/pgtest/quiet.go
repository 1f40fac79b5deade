package pgtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/internal/testkit"
)

// Poll runs cond on one connection to the database db until it holds, and
// fails the test when timeout passes first, with the formatted
// description of what it waited for and cond's last error.
func Poll(t testing.TB, db string, timeout time.Duration, cond func(context.Context, *pgx.Conn) (bool, error), format string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatalf("connect to the test database: %v", err)
	}
	defer conn.Close(context.Background())
	testkit.WaitFor(t, timeout, func() error {
		ok, err := cond(ctx, conn)
		switch {
		case ok:
			return nil
		case err != nil:
			return err
		}
		return errNotYet
	}, format, args...)
}

// errNotYet is the last error of a condition that does not hold and
// reports no error.
var errNotYet = errors.New("the condition does not hold")

// WaitQuiet waits until the bridges (every bridge when none is named) of
// the database db have no delivery and no reply left to attempt: none
// pending, none failed and waiting for a retry. A count of duplicates is
// final only then: a duplicate reply comes from a delivery that will be
// attempted again or from a reply of the outbox not yet marked sent.
func WaitQuiet(t testing.TB, db string, timeout time.Duration, bridgeIDs ...string) {
	t.Helper()
	Poll(t, db, timeout, func(ctx context.Context, conn *pgx.Conn) (bool, error) {
		d, r, err := pendingWork(ctx, conn, bridgeIDs)
		if err != nil {
			return false, err
		}
		if d != 0 || r != 0 {
			return false, fmt.Errorf("%d deliveries due and %d replies unsent", d, r)
		}
		return true, nil
	}, "no delivery due and no reply unsent")
}

// pendingWork counts the deliveries due for an attempt (pending, or
// failed and waiting for a retry) and the replies of the outbox not yet
// published (pending, or failed and waiting), of the bridges named or of
// every bridge.
func pendingWork(ctx context.Context, conn *pgx.Conn, bridgeIDs []string) (deliveries, replies int, err error) {
	if bridgeIDs == nil {
		bridgeIDs = []string{}
	}
	err = conn.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM deliveries WHERE (coalesce(cardinality($1::text[]), 0) = 0 OR bridge_id::text = ANY($1)) AND status IN ('pending', 'failed')),
		(SELECT count(*) FROM reply_outbox WHERE (coalesce(cardinality($1::text[]), 0) = 0 OR bridge_id::text = ANY($1)) AND status IN ('pending', 'failed'))`,
		bridgeIDs).Scan(&deliveries, &replies)
	if err != nil {
		return 0, 0, fmt.Errorf("count pending work: %w", err)
	}
	return deliveries, replies, nil
}
