package persistence

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// TestCompleteDeliveriesInOneBatch: completing many deliveries of several
// identities in one statement gives each what CompleteDelivery gives it
// alone: a reply in the outbox (sealed to its row, and its text in the
// delivery's record) for a first completion, none for a delivery already
// succeeded or named twice, ErrFenced for a stale lease with nothing
// written, ErrNotFound for a missing delivery; a failed attempt's number is
// counted.
func TestCompleteDeliveriesInOneBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newBatchFixture(t)
	s, b1, b2, stale, l1, l2, record, d0 := f.s, f.b1, f.b2, f.stale, f.l1, f.l2, f.record, f.d0
	d1, d2, d3, d4 := record(l1, b1.ID, "m-1"), record(l2, b2.ID, "m-2"), record(l1, b1.ID, "m-3"), record(l2, b2.ID, "m-4")
	if _, _, err := s.CompleteDelivery(ctx, l2, d4.ID, DeliveryAttempt{StatusCode: 200}, nil); err != nil {
		t.Fatal(err)
	}
	reply := func(d Delivery, text string) *Reply {
		return &Reply{BridgeID: d.BridgeID, Topic: d.Topic, TimestampNs: 9, Envelope: []byte("envelope " + text), Text: text}
	}
	cs := []Completion{
		{Lease: l1, DeliveryID: d1.ID, Attempt: DeliveryAttempt{StatusCode: 200, Latency: 3 * time.Millisecond}, Reply: reply(d1, "one")},
		{Lease: l2, DeliveryID: d2.ID, Attempt: DeliveryAttempt{StatusCode: 200}, Reply: reply(d2, "two")},
		{Lease: stale, DeliveryID: d0.ID, Attempt: DeliveryAttempt{StatusCode: 200}, Reply: reply(d0, "stale")},
		{Lease: l1, DeliveryID: d3.ID + 1000, Attempt: DeliveryAttempt{StatusCode: 200}},
		{Lease: l1, DeliveryID: d3.ID, Attempt: DeliveryAttempt{StatusCode: 200}},
		{Lease: l2, DeliveryID: d4.ID, Attempt: DeliveryAttempt{StatusCode: 200}, Reply: reply(d4, "late")},
		{Lease: l1, DeliveryID: d1.ID, Attempt: DeliveryAttempt{StatusCode: 200}, Reply: reply(d1, "twice")},
	}
	got := s.CompleteDeliveries(ctx, cs)
	if len(got) != len(cs) {
		t.Fatalf("%d results for %d completions", len(got), len(cs))
	}
	for i, want := range []error{nil, nil, ErrFenced, ErrNotFound, nil, nil, nil} {
		if want == nil && got[i].Err != nil || want != nil && !errors.Is(got[i].Err, want) {
			t.Errorf("completion %d: error %v, want %v", i, got[i].Err, want)
		}
	}
	for i, want := range []bool{true, true, false, false, true, false, false} {
		if got[i].Completed != want || (got[i].ReplyID != 0) != (want && cs[i].Reply != nil) {
			t.Errorf("completion %d: completed %v, reply %d", i, got[i].Completed, got[i].ReplyID)
		}
	}
	for i, c := range []struct {
		d       Delivery
		text    string
		replies int
	}{{d1, "one", 1}, {d2, "two", 1}, {d0, "", 0}, {d3, "", 0}, {d4, "", 0}} {
		d, err := s.DeliveryByID(ctx, c.d.ID)
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.RepliesOf(ctx, c.d.ID)
		if err != nil || len(r) != c.replies {
			t.Fatalf("delivery %d: replies %+v %v", i, r, err)
		}
		if c.replies == 1 && (string(r[0].Envelope) != "envelope "+c.text || d.Reply != c.text || d.Status != DeliverySucceeded) {
			t.Errorf("delivery %d: reply %q, text %q, status %s", i, r[0].Envelope, d.Reply, d.Status)
		}
		if c.d.ID == d0.ID && (d.Status != DeliveryPending || d.Attempts != 0) {
			t.Errorf("a stale completion changed delivery %d: %+v", i, d)
		}
	}
	var attempts int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM delivery_attempts WHERE delivery_id = $1`, d1.ID).Scan(&attempts); err != nil || attempts != 2 {
		t.Fatalf("attempts of the delivery completed twice: %d %v", attempts, err)
	}
}

// TestConcurrentBatchesGiveOneReply: batches that complete the same
// deliveries at once, in different orders (two activations of one
// identity on a node, or the webhook called twice), give each delivery
// exactly one reply and do not deadlock.
func TestConcurrentBatchesGiveOneReply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	l, err := s.AcquireLease(ctx, b.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	var ds []Delivery
	for i := range n {
		d, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: b.ID, MessageID: "m-" + string(rune('a'+i)), Topic: "/xmtp/0/m-1/proto",
			SenderAddress: randomAddress(t), Lease: &l})
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	replies := map[int64]int{}
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cs []Completion
			for i := range n {
				d := ds[(i*(w+1)+w)%n] // a different order in each batch
				cs = append(cs, Completion{Lease: l, DeliveryID: d.ID, Attempt: DeliveryAttempt{StatusCode: 200},
					Reply: &Reply{BridgeID: b.ID, Topic: d.Topic, TimestampNs: 1, Envelope: []byte("r")}})
			}
			for i, r := range s.CompleteDeliveries(ctx, cs) {
				if r.Err != nil {
					t.Error(r.Err)
					continue
				}
				mu.Lock()
				if r.ReplyID != 0 {
					replies[cs[i].DeliveryID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, d := range ds {
		r, err := s.RepliesOf(ctx, d.ID)
		if err != nil || len(r) != 1 || replies[d.ID] != 1 {
			t.Fatalf("delivery %d: %d replies in the outbox, %d returned, %v", d.ID, len(r), replies[d.ID], err)
		}
	}
}

// TestCompleteDeliveriesHandsBackRepliesOfAStatementWhoseRowsWereLost: the
// batch statement runs and commits, but the connection breaks while its
// rows are read (a loopback proxy cuts it after the first row). The
// deliveries are completed again one at a time, which finds them
// succeeded; each still gets back the outbox reply the batch statement put
// in for it, so its caller publishes it at once, and no delivery has a
// second reply.
func TestCompleteDeliveriesHandsBackRepliesOfAStatementWhoseRowsWereLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newBatchFixture(t)
	cut, url := pgtest.NewCutter(t, f.url, "AS i(l_identity, l_owner, l_epoch, delivery_id, status_code")
	s := openStore(t, url, f.s.sealer)
	d1, d2, d3 := f.record(f.l1, f.b1.ID, "m-1"), f.record(f.l2, f.b2.ID, "m-2"), f.record(f.l1, f.b1.ID, "m-3")
	reply := func(d Delivery, text string) *Reply {
		return &Reply{BridgeID: d.BridgeID, Topic: d.Topic, TimestampNs: 9, Envelope: []byte("envelope " + text), Text: text}
	}
	cs := []Completion{
		{Lease: f.l1, DeliveryID: d1.ID, Attempt: DeliveryAttempt{StatusCode: 200}, Reply: reply(d1, "one")},
		{Lease: f.l2, DeliveryID: d2.ID, Attempt: DeliveryAttempt{StatusCode: 200}, Reply: reply(d2, "two")},
		{Lease: f.l1, DeliveryID: d3.ID, Attempt: DeliveryAttempt{StatusCode: 200}},
	}
	cut.Arm()
	got := s.CompleteDeliveries(ctx, cs)
	if cut.Cuts() != 1 {
		t.Fatalf("the proxy cut %d connections, want 1: the batch statement did not run through it", cut.Cuts())
	}
	for i, c := range cs {
		d, err := f.s.DeliveryByID(ctx, c.DeliveryID)
		if err != nil {
			t.Fatal(err)
		}
		replies, err := f.s.RepliesOf(ctx, c.DeliveryID)
		if err != nil {
			t.Fatal(err)
		}
		if got[i].Err != nil || d.Status != DeliverySucceeded || d.Attempts != 1 {
			t.Fatalf("completion %d: %+v; delivery %s after %d attempts", i, got[i], d.Status, d.Attempts)
		}
		if c.Reply == nil {
			if len(replies) != 0 || got[i].ReplyID != 0 {
				t.Fatalf("completion %d without a reply: reply %d, outbox %+v", i, got[i].ReplyID, replies)
			}
			continue
		}
		if len(replies) != 1 || !got[i].Completed || got[i].ReplyID != replies[0].ID || string(replies[0].Envelope) != string(c.Reply.Envelope) {
			t.Fatalf("completion %d: completed %v, reply %d; outbox %+v: want the one reply the batch put in", i, got[i].Completed, got[i].ReplyID, replies)
		}
	}
}

// TestCompletionLocksItsDeliveryOnlyByUpdatingIt: the completion of a
// waiting delivery takes no row lock of its own before its update (which
// Postgres logs as a separate record and writes to the row's page once
// more); the update is what locks the row. The WAL of the completion's
// transaction, read back with pg_walinspect, has the update of the
// delivery and no lock record on deliveries.
func TestCompletionLocksItsDeliveryOnlyByUpdatingIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	if _, err := s.pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_walinspect`); err != nil {
		t.Fatalf("pg_walinspect (Postgres 15's contrib, in the postgresql-15 package) is needed to read the completion's WAL: %v", err)
	}
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	l, err := s.AcquireLease(ctx, b.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: b.ID, MessageID: "m-1", Topic: "/xmtp/0/m-1/proto",
		SenderAddress: randomAddress(t), SentNs: 1, Lease: &l})
	if err != nil {
		t.Fatal(err)
	}
	var lsn0, lsn1 string
	if err := s.pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn0); err != nil {
		t.Fatal(err)
	}
	id, completed, err := s.CompleteDelivery(ctx, l, d.ID, DeliveryAttempt{StatusCode: 200},
		&Reply{BridgeID: b.ID, Topic: d.Topic, TimestampNs: 2, Envelope: []byte("r"), Text: "reply"})
	if err != nil || !completed || id == 0 {
		t.Fatalf("complete: reply %d, completed %v, %v", id, completed, err)
	}
	// The completion commits synchronously: its WAL is on disk.
	if err := s.pool.QueryRow(ctx, `SELECT pg_current_wal_flush_lsn()::text`).Scan(&lsn1); err != nil {
		t.Fatal(err)
	}
	var updates, locks int
	if err := s.pool.QueryRow(ctx, `
		WITH r AS (
			SELECT record_type FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
			WHERE resource_manager = 'Heap' AND block_ref ~ ('rel \d+/' ||
				(SELECT oid FROM pg_database WHERE datname = current_database()) || '/' ||
				pg_relation_filenode('deliveries') || ' '))
		SELECT count(*) FILTER (WHERE record_type LIKE '%UPDATE'), count(*) FILTER (WHERE record_type LIKE 'LOCK%') FROM r`,
		lsn0, lsn1).Scan(&updates, &locks); err != nil {
		t.Fatal(err)
	}
	if updates != 1 || locks != 0 {
		t.Errorf("the completion logged %d updates and %d row locks of deliveries, want 1 and 0", updates, locks)
	}
}
