package persistence

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestForwardPathCostDoesNotGrowWithTables: the statements a forwarded
// message makes (recorded, attempt started, completed with its reply,
// reply published) read a few rows each, however large deliveries,
// delivery_attempts and reply_outbox have grown, on a database without
// statistics (autovacuum off; a new install before its first analyse).
//
// That is where cached plans go wrong: a connection keeps the generic
// plan it made for a statement while the tables were nearly empty, and a
// sequential scan is the cheapest plan for an empty table. Such a plan
// read the whole reply_outbox to mark one reply sent, and the whole
// deliveries table to start a batch of attempts, so every message cost
// more than the one before it.
//
// The store has one connection, so that its cached plans are the ones
// every round uses, and Postgres itself counts the rows each table's
// sequential scans and index scans read (pg_stat_user_tables).
func TestForwardPathCostDoesNotGrowWithTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url := newTestStore(t)
	s := oneConnStore(t, url)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle-1"))
	l, err := s.AcquireLease(ctx, b.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	// round forwards n messages the way the node does, a batch per step.
	round := func(n int) {
		t.Helper()
		nds := make([]NewDelivery, n)
		for i := range nds {
			nds[i] = NewDelivery{BridgeID: b.ID, MessageID: fmt.Sprintf("m-%07d", next), Topic: "/xmtp/0/m-1/proto",
				SenderAddress: "0x0000000000000000000000000000000000000001", SentNs: 5, Payload: []byte("payload"), Lease: &l}
			next++
		}
		keys := make([]AttemptKey, n)
		for i, r := range s.RecordDeliveries(ctx, nds) {
			if r.Err != nil || !r.Created {
				t.Fatalf("record %s: created %v, %v", nds[i].MessageID, r.Created, r.Err)
			}
			keys[i] = AttemptKey{Lease: l, BridgeID: b.ID, DeliveryID: r.Delivery.ID}
		}
		cs := make([]Completion, n)
		for i, st := range s.StartAttempts(ctx, keys) {
			if st.Err != nil {
				t.Fatalf("start attempt of delivery %d: %v", keys[i].DeliveryID, st.Err)
			}
			d := st.Delivery
			cs[i] = Completion{Lease: l, DeliveryID: d.ID, Attempt: DeliveryAttempt{StatusCode: 200, Latency: time.Millisecond},
				Reply: &Reply{BridgeID: d.BridgeID, Topic: d.Topic, TimestampNs: 9, Envelope: []byte("envelope"), Text: "echo"}}
		}
		var replies []int64
		for i, c := range s.CompleteDeliveries(ctx, cs) {
			if c.Err != nil || !c.Completed || c.ReplyID == 0 {
				t.Fatalf("complete delivery %d: %+v", cs[i].DeliveryID, c)
			}
			replies = append(replies, c.ReplyID)
		}
		if err := s.RecordReplyAttempts(ctx, l, replies, ReplySent, "", time.Time{}); err != nil {
			t.Fatalf("record replies sent: %v", err)
		}
	}
	type reads struct{ seq, idx int64 }
	tables := []string{"deliveries", "delivery_attempts", "reply_outbox"}
	read := func() map[string]reads {
		t.Helper()
		// The one connection flushes its counters when it goes idle
		// after this statement; the next one reads them afresh.
		if _, err := s.pool.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
			t.Fatal(err)
		}
		rows, err := s.pool.Query(ctx, `SELECT relname, coalesce(seq_tup_read, 0), coalesce(idx_tup_fetch, 0)
			FROM pg_stat_user_tables WHERE relname = ANY($1)`, tables)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]reads{}
		for rows.Next() {
			var name string
			var r reads
			if err := rows.Scan(&name, &r.seq, &r.idx); err != nil {
				t.Fatal(err)
			}
			out[name] = r
		}
		return out
	}
	// The plans are made on nearly empty tables, in rounds of a few
	// messages, as a new node's first minutes make them...
	for range 12 {
		round(4)
		round(1) // the one-message statements
	}
	// ... and the tables grow.
	const history = 8000
	for range history / 250 {
		round(250)
	}
	const rounds, n = 10, 4
	before := read()
	for range rounds {
		round(n)
		round(1)
	}
	after := read()
	msgs := int64(rounds * (n + 1))
	for _, table := range tables {
		seq, idx := after[table].seq-before[table].seq, after[table].idx-before[table].idx
		t.Logf("%s, %d rows grown: %d messages read %d rows in sequential scans and fetched %d through indexes", table, history, msgs, seq, idx)
		if seq > 0 {
			t.Errorf("%d messages read %d rows of %s in sequential scans: a statement of the forward path scans the whole table", msgs, seq, table)
		}
		if idx > 8*msgs {
			t.Errorf("%d messages fetched %d rows of %s through indexes, want at most %d", msgs, idx, table, 8*msgs)
		}
	}
}
