package persistence

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/testkit"
)

// BenchmarkForwardPathPostgres measures what Postgres spends on the
// store's writes for each forwarded message, with the same statements
// whatever the machine's timing (unlike the node, whose batches depend on
// it): the delivery recorded, the cursor moved, the attempt started, the
// delivery completed with its reply in the outbox, and the reply's
// publication recorded. "alone" does it one message at a time, as a node
// at a low rate does; "batch16" 16 messages per statement. The tables
// hold 1,000 deliveries of history first, recorded after the statements'
// plans were cached on nearly empty tables.
//
// It reports, per message, the CPU of the store's one Postgres backend
// (from /proc), the WAL of this database's relations and of its
// transactions' records of no relation (read back with pg_walinspect,
// kept by a temporary replication slot), and the statements' round trips.
func BenchmarkForwardPathPostgres(b *testing.B) {
	for _, per := range []int{1, 16} {
		name := "alone"
		if per > 1 {
			name = fmt.Sprintf("batch%d", per)
		}
		b.Run(name, func(b *testing.B) { benchForwardPath(b, per) })
	}
}

func benchForwardPath(b *testing.B, per int) {
	ctx := context.Background()
	_, url := newTestStore(b)
	s := oneConnStore(b, url)
	acct, _ := newAccount(b, s, "alice")
	br, _ := newBridge(b, s, acct.ID, []byte("bundle-1"))
	l, err := s.AcquireLease(ctx, br.ID, "node-1/a", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	var pid int
	if err := s.pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		b.Fatal(err)
	}
	mon := openStore(b, url, mustSealer(b, testKey(b, "k1")))
	conn, err := mon.pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	walinspect := true
	if _, err := conn.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_walinspect`); err != nil {
		walinspect = false
	} else if _, err := conn.Exec(ctx, `SELECT pg_create_physical_replication_slot('pgcost_'||pg_backend_pid(), true, true)`); err != nil {
		walinspect = false
	}

	payload := []byte(strings.Repeat("p", 300))
	envelope := []byte(strings.Repeat("e", 300))
	seq := 0
	// forward runs the store's part of n messages arriving together.
	forward := func(n int) {
		nds := make([]NewDelivery, n)
		for i := range nds {
			seq++
			nds[i] = NewDelivery{BridgeID: br.ID, MessageID: fmt.Sprintf("%064x", seq), Topic: fmt.Sprintf("/xmtp/0/m-%040d/proto", seq%16),
				SenderAddress: "0x0000000000000000000000000000000000000001", SentNs: int64(seq), Payload: payload, Lease: &l}
		}
		keys := make([]AttemptKey, n)
		for i, r := range s.RecordDeliveries(ctx, nds) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
			keys[i] = AttemptKey{Lease: l, BridgeID: br.ID, DeliveryID: r.Delivery.ID}
		}
		if err := s.SaveCursor(ctx, l, br.ID, nds[n-1].Topic, int64(seq), make([]byte, 32)); err != nil {
			b.Fatal(err)
		}
		cs := make([]Completion, n)
		for i, st := range s.StartAttempts(ctx, keys) {
			if st.Err != nil {
				b.Fatal(st.Err)
			}
			cs[i] = Completion{Lease: l, DeliveryID: keys[i].DeliveryID, Attempt: DeliveryAttempt{StatusCode: 200, Latency: time.Millisecond},
				Reply: &Reply{BridgeID: br.ID, Topic: nds[i].Topic, TimestampNs: int64(seq), Envelope: envelope, Text: "echo"}}
		}
		ids := make([]int64, 0, n)
		for _, c := range s.CompleteDeliveries(ctx, cs) {
			if c.Err != nil || c.ReplyID == 0 {
				b.Fatalf("complete: %+v", c)
			}
			ids = append(ids, c.ReplyID)
		}
		if err := s.RecordReplyAttempts(ctx, l, ids, ReplySent, "", time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	// Plans cached on nearly empty tables, then a history.
	for range 8 {
		forward(per)
	}
	for range 1000 / per {
		forward(per)
	}
	var lsn0 string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn0); err != nil {
		b.Fatal(err)
	}
	acq0 := s.pool.Stat().AcquireCount()
	cpu0, err := testkit.CPUTime(pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	msgs := 0
	for msgs < b.N {
		forward(per)
		msgs += per
	}
	b.StopTimer()
	cpu1, err := testkit.CPUTime(pid)
	if err != nil {
		b.Fatal(err)
	}
	acq := s.pool.Stat().AcquireCount() - acq0
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(msgs), "pg-cpu-µs/msg")
	b.ReportMetric(float64(acq)/float64(msgs), "trips/msg")
	if walinspect {
		var lsn1 string
		if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn1); err != nil {
			b.Fatal(err)
		}
		// pg_walinspect reads only WAL on disk; the last commits may not
		// have waited for it.
		deadline := time.Now().Add(5 * time.Second)
		for {
			var flushed bool
			if err := conn.QueryRow(ctx, `SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn`, lsn1).Scan(&flushed); err != nil {
				b.Fatal(err)
			}
			if flushed || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		var bytes, commits float64
		if err := conn.QueryRow(ctx, `
			WITH w AS (
				SELECT xid::text AS xid, record_type, record_length AS len, (regexp_match(block_ref, 'rel \d+/(\d+)/'))[1] AS db
				FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)),
			mine AS (SELECT * FROM w WHERE db = (SELECT oid::text FROM pg_database WHERE datname = current_database())),
			other AS (SELECT * FROM w WHERE db IS NULL AND xid IN (SELECT xid FROM mine WHERE xid <> '0'))
			SELECT coalesce(sum(len), 0), count(*) FILTER (WHERE record_type LIKE 'COMMIT%')
			FROM (SELECT xid, record_type, len FROM mine UNION ALL SELECT xid, record_type, len FROM other) a`, lsn0, lsn1).Scan(&bytes, &commits); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(bytes/float64(msgs), "wal-B/msg")
		b.ReportMetric(commits/float64(msgs), "commits/msg")
	}
	b.ReportMetric(0, "ns/op")
}
