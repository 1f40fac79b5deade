package pgtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/xmtpbridge/bridge/internal/testkit"
)

// quietSchema is the part of the bridge schema WaitQuiet reads.
var quietSchema = Template{Name: "pgtest_quiet", Migrate: func(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `
		CREATE TABLE deliveries (bridge_id uuid NOT NULL, status text NOT NULL);
		CREATE TABLE reply_outbox (bridge_id uuid NOT NULL, status text NOT NULL);`)
	return err
}}

const (
	bridgeA = "00000000-0000-0000-0000-00000000000a"
	bridgeB = "00000000-0000-0000-0000-00000000000b"
)

func exec(t *testing.T, db, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestWaitQuietCountsDueWorkOfTheBridgesNamed: a pending delivery of
// bridge A keeps A (and every bridge) from being quiet, not B; once it
// succeeds, a failed reply of B waiting for a retry does the same for B.
func TestWaitQuietCountsDueWorkOfTheBridgesNamed(t *testing.T) {
	db := NewDatabase(t, quietSchema)
	WaitQuiet(t, db, time.Second)
	exec(t, db, `INSERT INTO deliveries VALUES ($1, 'pending'), ($1, 'dead'), ($2, 'succeeded')`, bridgeA, bridgeB)
	WaitQuiet(t, db, time.Second, bridgeB)
	for _, ids := range [][]string{{bridgeA}, nil, {bridgeA, bridgeB}} {
		msg := testkit.Failure(t, func(tb testing.TB) { WaitQuiet(tb, db, 100*time.Millisecond, ids...) })
		if !strings.Contains(msg, "1 deliveries due and 0 replies unsent") {
			t.Errorf("WaitQuiet(%v) failed with %q, want one delivery due", ids, msg)
		}
	}
	exec(t, db, `UPDATE deliveries SET status = 'succeeded'`)
	exec(t, db, `INSERT INTO reply_outbox VALUES ($1, 'failed'), ($2, 'sent')`, bridgeB, bridgeA)
	WaitQuiet(t, db, time.Second, bridgeA)
	msg := testkit.Failure(t, func(tb testing.TB) { WaitQuiet(tb, db, 100*time.Millisecond, bridgeB) })
	if !strings.Contains(msg, "0 deliveries due and 1 replies unsent") {
		t.Errorf("WaitQuiet(B) failed with %q, want one reply unsent", msg)
	}
	// Work that ends while WaitQuiet polls ends the wait.
	go func() {
		time.Sleep(200 * time.Millisecond)
		conn, err := pgx.Connect(context.Background(), db)
		if err != nil {
			t.Errorf("connect: %v", err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), `UPDATE reply_outbox SET status = 'sent'`); err != nil {
			t.Errorf("mark the reply sent: %v", err)
		}
	}()
	WaitQuiet(t, db, 20*time.Second)
}
