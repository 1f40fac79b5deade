package actors

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// waitQuiet waits until the bridges have no delivery and no reply left to
// attempt: none pending, none failed and waiting for a retry. Replies are
// counted only then, so a late duplicate (a delivery attempted again, a
// reply published twice) is counted too.
func (e *env) waitQuiet(t testing.TB, timeout time.Duration, bridgeIDs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.db)
	if err != nil {
		t.Fatalf("connect to the test database: %v", err)
	}
	defer conn.Close(context.Background())
	var deliveries, replies int
	waitFor(t, timeout, "no delivery or reply left to attempt", func() bool {
		err := conn.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM deliveries WHERE bridge_id = ANY($1) AND status IN ('pending', 'failed')),
			(SELECT count(*) FROM reply_outbox WHERE bridge_id = ANY($1) AND status IN ('pending', 'failed'))`,
			bridgeIDs).Scan(&deliveries, &replies)
		if err != nil {
			t.Fatalf("count open deliveries and replies: %v", err)
		}
		return deliveries == 0 && replies == 0
	})
}
