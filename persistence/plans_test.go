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

// TestForwardPathPlans: every statement the store runs on deliveries,
// delivery_attempts and reply_outbox for a forwarded message, its
// retries, the scheduler, the breaker, the owner's views and the
// retention sweep reads those tables through an index, under the generic
// plan a prepared statement keeps: on an empty table never analysed, on a
// table of a few thousand rows still never analysed (autovacuum off, as on
// this machine and on a new install), and after ANALYZE. The statements
// are the store's own: they are taken from the prepared statements of the
// store's one connection after each call, so a statement edited later is
// checked as it is. Then the forward path runs again with the plans its
// connection cached while the tables were nearly empty, and Postgres
// counts no sequential scan of the three tables (which also covers the
// statements planned afresh for their parameters, which are not kept).
//
// Where a statement's look-up has one index that fits it, the plan must
// name that index: the waiting deliveries are found through
// deliveries_bridge_due_idx or deliveries_waiting_idx (deliveries_due_idx
// is gone), a delivery's attempts through delivery_attempts_pkey, which
// is (delivery_id, id).
func TestForwardPathPlans(t *testing.T) {
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

	// prepared returns the statements prepared on the store's connection
	// so far, by text, with their parameter types.
	prepared := func() map[string][]string {
		t.Helper()
		rows, err := s.pool.Query(ctx, `SELECT statement, parameter_types::text[] FROM pg_prepared_statements WHERE NOT from_sql`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]string{}
		for rows.Next() {
			var text string
			var types []string
			if err := rows.Scan(&text, &types); err != nil {
				t.Fatal(err)
			}
			out[text] = types
		}
		rows.Close()
		return out
	}
	type statement struct {
		call, text string
		types      []string
	}
	var stmts []statement
	touches := regexp.MustCompile(`\b(deliveries|delivery_attempts|reply_outbox)\b`)
	// run calls fn and keeps the statements on the three tables that it
	// prepared.
	run := func(call string, fn func() error) {
		t.Helper()
		before := prepared()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", call, err)
		}
		for text, types := range prepared() {
			if _, ok := before[text]; !ok && touches.MatchString(text) {
				stmts = append(stmts, statement{call: call, text: text, types: types})
			}
		}
	}
	nd := func(id string) NewDelivery {
		return NewDelivery{BridgeID: b.ID, MessageID: id, Topic: "/xmtp/0/m-1/proto", SenderAddress: randomAddress(t),
			SentNs: 5, Payload: []byte("payload"), Lease: &l}
	}
	reply := func(text string) *Reply {
		return &Reply{BridgeID: b.ID, Topic: "/xmtp/0/m-1/proto", TimestampNs: 7, Envelope: []byte("envelope"), Text: text}
	}
	// forward runs what the node runs for three new messages, two of them
	// in batches and one alone, and returns their delivery ids.
	round := 0
	forward := func() []int64 {
		t.Helper()
		round++
		var ids []int64
		for _, r := range s.RecordDeliveries(ctx, []NewDelivery{nd(fmt.Sprintf("m-%d-1", round)), nd(fmt.Sprintf("m-%d-2", round))}) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			ids = append(ids, r.Delivery.ID)
		}
		d, _, err := s.RecordDelivery(ctx, nd(fmt.Sprintf("m-%d-3", round)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
		if _, _, err := s.RecordDelivery(ctx, nd(fmt.Sprintf("m-%d-3", round))); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveCursor(ctx, l, b.ID, "/xmtp/0/m-1/proto", int64(round), make([]byte, 32)); err != nil {
			t.Fatal(err)
		}
		for _, r := range s.StartAttempts(ctx, []AttemptKey{{Lease: l, BridgeID: b.ID, DeliveryID: ids[0]}, {Lease: l, BridgeID: b.ID, DeliveryID: ids[1]}}) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		if _, err := s.StartAttempt(ctx, l, b.ID, ids[2]); err != nil {
			t.Fatal(err)
		}
		var replyIDs []int64
		for _, r := range s.CompleteDeliveries(ctx, []Completion{
			{Lease: l, DeliveryID: ids[0], Attempt: DeliveryAttempt{StatusCode: 200}, Reply: reply("one")},
			{Lease: l, DeliveryID: ids[1], Attempt: DeliveryAttempt{StatusCode: 200}, Reply: reply("two")},
		}) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			replyIDs = append(replyIDs, r.ReplyID)
		}
		id, _, err := s.CompleteDelivery(ctx, l, ids[2], DeliveryAttempt{StatusCode: 200}, reply("three"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RecordReplyAttempts(ctx, l, replyIDs, ReplySent, "", time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordReplyAttempt(ctx, l, id, ReplySent, "", time.Now()); err != nil {
			t.Fatal(err)
		}
		for _, f := range []func() error{
			func() error { _, err := s.DueWork(ctx, 100); return err },
			func() error { _, err := s.DueDeliveries(ctx, b.ID, 100); return err },
			func() error { _, err := s.DueReplies(ctx, b.ID, 100); return err },
			func() error { _, err := s.AttemptsOf(ctx, ids); return err },
		} {
			if err := f(); err != nil {
				t.Fatal(err)
			}
		}
		return ids
	}
	// Often enough on the nearly empty tables that every statement has
	// its generic plan cached (after five executions).
	var ids []int64
	for range 7 {
		run("the forward path", func() error { ids = forward(); return nil })
	}
	d, _, err := s.RecordDelivery(ctx, nd("to-fail"))
	if err != nil {
		t.Fatal(err)
	}
	run("RecordLeasedAttempt", func() error {
		return s.RecordLeasedAttempt(ctx, l, d.ID, DeliveryAttempt{StatusCode: 503}, DeliveryFailed, time.Now().Add(time.Hour))
	})
	run("ListDeliveries", func() error { _, _, err := s.ListDeliveries(ctx, acct.ID, b.ID, "", Page{}); return err })
	run("ListDeliveries dead", func() error {
		_, _, err := s.ListDeliveries(ctx, acct.ID, b.ID, DeliveryDead, Page{})
		return err
	})
	run("GetDelivery", func() error { _, err := s.GetDelivery(ctx, acct.ID, b.ID, ids[0]); return err })
	run("DeliveryByID", func() error { _, err := s.DeliveryByID(ctx, ids[0]); return err })
	rules := BreakerRules{OpenAfter: 1, ProbeMin: time.Millisecond}
	run("RecordEndpointOutcome", func() error {
		if _, _, err := s.RecordEndpointOutcome(ctx, b.ID, false, rules); err != nil {
			return err
		}
		_, _, err := s.RecordEndpointOutcome(ctx, b.ID, true, rules) // open to healthy: the recovery flush
		return err
	})
	run("ExpireWaitingDeliveries", func() error {
		_, err := s.ExpireWaitingDeliveries(ctx, l, b.ID, ids[0], time.Now().Add(-time.Hour))
		return err
	})
	run("EndpointCounts", func() error { _, _, err := s.EndpointCounts(ctx); return err })
	for _, want := range []string{"the forward path", "RecordEndpointOutcome", "ExpireWaitingDeliveries"} {
		found := false
		for _, st := range stmts {
			found = found || st.call == want
		}
		if !found {
			t.Fatalf("no statement on the delivery tables was prepared by %s", want)
		}
	}

	// expect names, per statement (by a fragment of its text), the
	// indexes one of which its plan must use.
	expect := []struct{ fragment, indexes string }{
		{"WITH RECURSIVE waiting", "deliveries_bridge_due_idx|deliveries_waiting_idx"},
		{"d.status IN ('pending', 'failed') AND d.next_attempt_at <= now()", "deliveries_bridge_due_idx|deliveries_waiting_idx"},
		{"AND status IN ('pending', 'failed') AND next_attempt_at > now()", "deliveries_bridge_due_idx|deliveries_waiting_idx"},
		{"FROM delivery_attempts WHERE delivery_id = ANY", "delivery_attempts_pkey"},
	}
	seqScan := regexp.MustCompile(`Seq Scan on (deliveries|delivery_attempts|reply_outbox)\b`)
	check := func(phase, db string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
			t.Fatal(err)
		}
		for _, st := range stmts {
			args := make([]string, len(st.types))
			for i := range args {
				args[i] = "NULL"
			}
			types := ""
			if len(st.types) > 0 {
				types = "(" + strings.Join(st.types, ", ") + ")"
			}
			if _, err := conn.Exec(ctx, "PREPARE plan_check "+types+" AS "+st.text); err != nil {
				t.Fatalf("%s: %s: prepare: %v", phase, st.call, err)
			}
			rows, err := conn.Query(ctx, "EXPLAIN EXECUTE plan_check"+map[bool]string{true: "(" + strings.Join(args, ", ") + ")"}[len(args) > 0])
			if err != nil {
				t.Fatalf("%s: %s: explain: %v", phase, st.call, err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatalf("%s: %s: explain: %v", phase, st.call, err)
			}
			if _, err := conn.Exec(ctx, "DEALLOCATE plan_check"); err != nil {
				t.Fatal(err)
			}
			plan := strings.Join(lines, "\n")
			if seqScan.MatchString(plan) {
				t.Errorf("%s: a statement of %s scans a whole table:\n%s\n%s", phase, st.call, st.text, plan)
			}
			for _, e := range expect {
				if strings.Contains(st.text, e.fragment) && !regexp.MustCompile(`\b(`+e.indexes+`)\b`).MatchString(plan) {
					t.Errorf("%s: a statement of %s uses none of %s:\n%s\n%s", phase, st.call, e.indexes, st.text, plan)
				}
			}
		}
	}

	// An empty database of its own, never analysed.
	_, empty := newTestStore(t)
	check("empty, never analysed", empty)

	// A few thousand rows: most deliveries succeeded with a sent reply
	// and an attempt, some waiting, some dead, over several bridges.
	for k := range 3 {
		other, _ := newBridge(t, s, acct.ID, []byte(fmt.Sprintf("bundle-%d", k+2)))
		if _, err := s.pool.Exec(ctx, `
			WITH d AS (
				INSERT INTO deliveries (bridge_id, message_id, topic, sender_address, payload, status, next_attempt_at, updated_at)
				SELECT $1, 'bulk-' || g, '/xmtp/0/m-' || (g % 50) || '/proto', '0x' || repeat('ab', 20), '\x00'::bytea,
					CASE WHEN g % 100 = 0 THEN 'dead' WHEN g % 37 = 0 THEN 'failed' WHEN g % 41 = 0 THEN 'pending' ELSE 'succeeded' END,
					now() + (g % 3 - 1) * interval '1 hour', now() - (g % 48) * interval '1 hour'
				FROM generate_series(1, 2000) g RETURNING id, bridge_id, status),
			a AS (INSERT INTO delivery_attempts (delivery_id, status_code) SELECT id, 200 FROM d)
			INSERT INTO reply_outbox (bridge_id, delivery_id, topic, timestamp_ns, envelope, status)
			SELECT bridge_id, id, '/t', 1, '\x00'::bytea, CASE WHEN status = 'succeeded' THEN 'sent' ELSE 'pending' END
			FROM d WHERE status IN ('succeeded', 'pending')`, other.ID); err != nil {
			t.Fatal(err)
		}
	}
	check("6000 rows, never analysed", url)

	// The store's connection cached its plans while the tables were
	// nearly empty. The forward path, run again now, reads no whole
	// table, including the statements planned for their parameters.
	seqScans := func() int64 {
		t.Helper()
		if _, err := s.pool.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
			t.Fatal(err)
		}
		var v int64
		if err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(seq_scan), 0) FROM pg_stat_user_tables
			WHERE relname IN ('deliveries', 'delivery_attempts', 'reply_outbox')`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := seqScans()
	for range 3 {
		forward()
	}
	if got := seqScans() - before; got != 0 {
		t.Errorf("the forward path, run three times with plans cached on nearly empty tables, read a whole table of deliveries, delivery_attempts or reply_outbox %d times", got)
	}

	if _, err := s.pool.Exec(ctx, `ANALYZE deliveries, delivery_attempts, reply_outbox`); err != nil {
		t.Fatal(err)
	}
	check("6000 rows, analysed", url)
}
