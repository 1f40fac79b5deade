package persistence

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestForwardPathUsesGenericPlans: the batch statements of the forward
// path (RecordDeliveries, StartAttempts with its lease check, delivery
// read and secrets read, SaveCursors, CompleteDeliveries) run on their
// connection's cached generic plan once warmed up, instead of being
// planned again for every batch (a custom plan: planning alone took about
// as long as running SaveCursors). Postgres keeps custom plans when the
// generic one looks costlier: with its arrays bound, a custom plan sees
// how few elements unnest or ANY gets, so these statements read their
// arrays through scalar subqueries, which no plan sees into. Postgres
// counts the plans of each prepared statement of the store's one
// connection (pg_prepared_statements), and the generic plans read every
// table through an index.
func TestForwardPathUsesGenericPlans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url := newTestStore(t)
	s := oneConnStore(t, url)
	acct, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, acct.ID, []byte("bundle-1"))
	l, err := s.AcquireLease(ctx, b.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	// round forwards n messages as the node does, a batch per step.
	round := func(n int) {
		t.Helper()
		nds := make([]NewDelivery, n)
		moves := make([]CursorMove, n)
		for i := range nds {
			nds[i] = NewDelivery{BridgeID: b.ID, MessageID: fmt.Sprintf("m-%d", next), Topic: "/xmtp/0/m-1/proto",
				SenderAddress: randomAddress(t), SentNs: 5, Payload: []byte("payload"), Lease: &l}
			moves[i] = CursorMove{Lease: l, BridgeID: b.ID, Topic: fmt.Sprintf("/xmtp/0/m-%d/proto", i), TimestampNs: int64(next), Digest: make([]byte, 32)}
			next++
		}
		keys := make([]AttemptKey, n)
		for i, r := range s.RecordDeliveries(ctx, nds) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			keys[i] = AttemptKey{Lease: l, BridgeID: b.ID, DeliveryID: r.Delivery.ID}
		}
		for _, err := range s.SaveCursors(ctx, moves) {
			if err != nil {
				t.Fatal(err)
			}
		}
		cs := make([]Completion, n)
		for i, r := range s.StartAttempts(ctx, keys) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			cs[i] = Completion{Lease: l, DeliveryID: keys[i].DeliveryID, Attempt: DeliveryAttempt{StatusCode: 200},
				Reply: &Reply{BridgeID: b.ID, Topic: "/xmtp/0/m-1/proto", TimestampNs: 7, Envelope: []byte("envelope"), Text: "ok"}}
		}
		for _, r := range s.CompleteDeliveries(ctx, cs) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	type counts struct {
		name, text     string
		params         int
		generic, custm int64
	}
	// plans reads the plan counters of the statements prepared on the
	// store's connection, by their text.
	plans := func() map[string]counts {
		t.Helper()
		rows, err := s.pool.Query(ctx, `SELECT name, statement, cardinality(parameter_types), generic_plans, custom_plans
			FROM pg_prepared_statements WHERE NOT from_sql`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]counts{}
		for rows.Next() {
			var c counts
			if err := rows.Scan(&c.name, &c.text, &c.params, &c.generic, &c.custm); err != nil {
				t.Fatal(err)
			}
			out[c.text] = c
		}
		rows.Close()
		return out
	}
	// Warm-up: Postgres makes five custom plans before it weighs the
	// generic one. Batches of several sizes, as under load.
	for k := range 8 {
		round(2 + k%3)
	}
	before := plans()
	const rounds = 10
	for k := range rounds {
		round(2 + k%3)
	}
	after := plans()
	hot := []struct{ call, fragment string }{
		{"RecordDeliveries", "INSERT INTO deliveries"},
		{"SaveCursors", "INSERT INTO cursors AS c"},
		{"StartAttempts, lease check", "SELECT i.ord FROM unnest("},
		{"StartAttempts, deliveries", "CROSS JOIN LATERAL (SELECT * FROM deliveries d"},
		{"StartAttempts and RecordDeliveries, secrets", "FROM webhook_secrets\n\tWHERE bridge_id = ANY"},
		{"CompleteDeliveries", "INSERT INTO delivery_attempts"},
	}
	seqScan := regexp.MustCompile(`Seq Scan on \w+`)
	for _, h := range hot {
		var found []counts
		for text, c := range after {
			if strings.Contains(text, h.fragment) {
				found = append(found, c)
			}
		}
		if len(found) != 1 {
			t.Errorf("%s: %d prepared statements contain %q, want 1", h.call, len(found), h.fragment)
			continue
		}
		c, b := found[0], before[found[0].text]
		t.Logf("%s: %d generic and %d custom plans over %d rounds (%d and %d in all)", h.call,
			c.generic-b.generic, c.custm-b.custm, rounds, c.generic, c.custm)
		if c.custm != b.custm || c.generic-b.generic < rounds {
			t.Errorf("%s: %d custom and %d generic plans over %d rounds after the warm-up, want generic plans only",
				h.call, c.custm-b.custm, c.generic-b.generic, rounds)
		}
		// The generic plan, made on nearly empty tables, still reads
		// them through their indexes: it stays for the connection's life.
		args := make([]string, c.params)
		for i := range args {
			args[i] = "NULL"
		}
		rows, err := s.pool.Query(ctx, "EXPLAIN EXECUTE "+c.name+"("+strings.Join(args, ", ")+")")
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if plan := strings.Join(lines, "\n"); seqScan.MatchString(plan) {
			t.Errorf("%s: the generic plan scans a whole table:\n%s", h.call, plan)
		}
	}
}
