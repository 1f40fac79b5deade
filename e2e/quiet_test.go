package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

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
