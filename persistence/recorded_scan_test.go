package persistence

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestRecordDeliveriesLooksUpEachRowOnce: recording a batch reads the
// deliveries index about once per row of the batch, however the planner
// joins it, on a fresh database whose tables the planner has no
// statistics for (as on a new install or in a benchmark). A plan that ran
// the look-up of earlier rows once per row of the batch made n² index
// scans (65,536 for 256 rows): the slower batches grew larger and slower
// still, and the node's throughput collapsed.
//
// The index scans are counted by Postgres (pg_stat_user_tables) on the
// one connection of the store, whose statistics are flushed on demand.
func TestRecordDeliveriesLooksUpEachRowOnce(t *testing.T) {
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
	const n = 256
	batch := func(from int) []NewDelivery {
		out := make([]NewDelivery, n)
		for i := range out {
			out[i] = NewDelivery{BridgeID: b.ID, MessageID: fmt.Sprintf("m-%04d", from+i), Topic: "/xmtp/0/m-1/proto",
				SenderAddress: randomAddress(t), SentNs: 5, Payload: []byte("payload"), Lease: &l}
		}
		return out
	}
	scans := func() int64 {
		t.Helper()
		// The one connection flushes its counters when it goes idle
		// after this statement; the next one reads them afresh.
		if _, err := s.pool.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
			t.Fatal(err)
		}
		var v int64
		if err := s.pool.QueryRow(ctx, `SELECT coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'deliveries'`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	record := func(nds []NewDelivery, created int) int64 {
		t.Helper()
		before := scans()
		got := s.RecordDeliveries(ctx, nds)
		made := 0
		for i, r := range got {
			if r.Err != nil || r.Delivery.MessageID != nds[i].MessageID {
				t.Fatalf("input %d: %+v", i, r)
			}
			if r.Created {
				made++
			}
		}
		if made != created {
			t.Fatalf("%d rows created, want %d", made, created)
		}
		return scans() - before
	}
	// New messages, then half of them again with as many new ones.
	got := record(batch(0), n)
	t.Logf("%d new messages: %d index scans of deliveries", n, got)
	if got > 4*n {
		t.Fatalf("recording %d new messages made %d index scans of deliveries, want at most %d", n, got, 4*n)
	}
	got = record(batch(n/2), n/2)
	t.Logf("%d messages, half of them known: %d index scans of deliveries", n, got)
	if got > 4*n {
		t.Fatalf("recording %d messages, half of them known, made %d index scans of deliveries, want at most %d", n, got, 4*n)
	}
}

// TestRecordDeliveriesCostDoesNotGrowWithHistory: recording a batch reads
// a few index entries per row, however many deliveries the bridge already
// has. On a database without statistics (autovacuum off, or a new install
// before its first analyse) the cached plan of the batch statement was
// made while the table was empty, and it looked earlier rows up through
// deliveries_bridge_idx, reading every delivery of the bridge for each row
// of the batch: a busy bridge's batches grew slower with every message it
// had ever received, until the node could not keep up with 250 messages a
// second.
func TestRecordDeliveriesCostDoesNotGrowWithHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url := newTestStore(t)
	// One connection, so that the statement's cached plan is the one
	// every batch uses.
	s := oneConnStore(t, url)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle-1"))
	l, err := s.AcquireLease(ctx, b.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	batch := func(from, n int) []NewDelivery {
		out := make([]NewDelivery, n)
		for i := range out {
			out[i] = NewDelivery{BridgeID: b.ID, MessageID: fmt.Sprintf("m-%06d", from+i), Topic: "/xmtp/0/m-1/proto",
				SenderAddress: "0x0000000000000000000000000000000000000001", SentNs: 5, Payload: []byte("payload"), Lease: &l}
		}
		return out
	}
	record := func(nds []NewDelivery) (created int) {
		t.Helper()
		for i, r := range s.RecordDeliveries(ctx, nds) {
			if r.Err != nil || r.Delivery.MessageID != nds[i].MessageID {
				t.Fatalf("input %d: %+v", i, r)
			}
			if r.Created {
				created++
			}
		}
		return created
	}
	// The bridge's history: 4,000 deliveries in batches of 20, the first
	// ones on an empty table, where the statement's plan is made.
	const history = 4000
	for from := 0; from < history; from += 20 {
		if got := record(batch(from, 20)); got != 20 {
			t.Fatalf("batch at %d: %d created, want 20", from, got)
		}
	}
	read := func() int64 {
		t.Helper()
		if _, err := s.pool.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
			t.Fatal(err)
		}
		var v int64
		if err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes WHERE relname = 'deliveries'`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	// 64 new messages, then, often enough for a cached plan of any
	// look-up, batches of 32 known ones with 32 new.
	const n, mixedBatches = 64, 8
	before := read()
	if got := record(batch(history, n)); got != n {
		t.Fatalf("%d created, want %d", got, n)
	}
	for k := range mixedBatches {
		from := history + n + k*n/2
		mixed := append(batch(from-n/2, n/2), batch(from, n/2)...)
		if got := record(mixed); got != n/2 {
			t.Fatalf("mixed batch %d: %d created, want %d", k, got, n/2)
		}
	}
	got := read() - before
	t.Logf("%d batches of %d on a bridge with %d deliveries read %d index entries of deliveries", 1+mixedBatches, n, history, got)
	if limit := int64(16 * (1 + mixedBatches) * n); got > limit {
		t.Fatalf("%d batches of %d on a bridge with %d deliveries read %d index entries of deliveries, want at most %d: the look-up reads the bridge's history",
			1+mixedBatches, n, history, got, limit)
	}
	// A known message recorded alone, often enough for a cached plan.
	before = read()
	const alone = 20
	for i := range alone {
		nd := batch(i*7, 1)[0]
		if _, created, err := s.RecordDelivery(ctx, nd); err != nil || created {
			t.Fatalf("record %s alone: created %v, %v", nd.MessageID, created, err)
		}
	}
	got = read() - before
	t.Logf("%d known messages recorded alone read %d index entries of deliveries", alone, got)
	if got > 16*alone {
		t.Fatalf("%d known messages recorded alone on a bridge with %d deliveries read %d index entries of deliveries, want at most %d", alone, history, got, 16*alone)
	}
}
