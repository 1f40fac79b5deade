package persistence

import (
	"context"
	"fmt"
	"strings"
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
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	s := openStore(t, url+sep+"pool_max_conns=1", mustSealer(t, testKey(t, "k1")))
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
