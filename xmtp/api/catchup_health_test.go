package api

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/xmtp/node"
)

// TestCatchUpFailingForFollowsTheQueries: while the node fails every query
// (its envelope table is gone) a new topic's catch-up fails, and
// CatchUpFailingFor says for how long, which readiness and the
// bridge_ingress_catchup_failing_seconds gauge read; once the queries work
// again the catch-up delivers what was stored and CatchUpFailingFor is 0.
func TestCatchUpFailingForFollowsTheQueries(t *testing.T) {
	db := testDatabase(t)
	n := startNodeWith(t, node.Config{DatabaseURL: db})
	c := dial(t, n.GRPCAddr(), WithReconnectBackoff(20*time.Millisecond, 100*time.Millisecond))
	ctx := testkit.Context(t, 60*time.Second)
	const name = "failing"
	var want []string
	for i := range 3 {
		m := fmt.Sprintf("stored %d", i)
		if err := c.Publish(ctx, nil, envAt(name, now(), m)); err != nil {
			t.Fatal(err)
		}
		want = append(want, m)
	}
	sub := c.Subscribe(ctx)
	defer sub.Close()
	got := collect(sub)
	if d := sub.CatchUpFailingFor(); d != 0 {
		t.Fatalf("CatchUpFailingFor of a new subscription: %v; want 0", d)
	}

	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `ALTER TABLE xmtp_envelopes RENAME TO xmtp_envelopes_away`); err != nil {
		t.Fatal(err)
	}
	sub.Add(topic(name))
	testkit.WaitFor(t, 20*time.Second, func() bool { return sub.CatchUpFailingFor() > 50*time.Millisecond }, "CatchUpFailingFor to report the failing catch-up")
	if _, err := conn.Exec(ctx, `ALTER TABLE xmtp_envelopes_away RENAME TO xmtp_envelopes`); err != nil {
		t.Fatal(err)
	}
	got.expect(t, want...)
	testkit.WaitFor(t, 20*time.Second, func() bool { return sub.CatchUpFailingFor() == 0 }, "CatchUpFailingFor to be 0 once a round succeeds")
}
