package persistence

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// bridgeRows counts the rows of a bridge in the tables a forwarded message
// writes: deliveries, their attempts and the outbox.
func bridgeRows(t *testing.T, s *Store, bridgeID string) (deliveries, attempts, replies int) {
	t.Helper()
	err := s.pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM deliveries WHERE bridge_id = $1),
		(SELECT count(*) FROM delivery_attempts a WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = a.delivery_id)),
		(SELECT count(*) FROM reply_outbox WHERE bridge_id = $1)`, bridgeID).Scan(&deliveries, &attempts, &replies)
	if err != nil {
		t.Fatal(err)
	}
	return deliveries, attempts, replies
}

// TestForwardedRowsDoNotLockTheBridgeRow: recording, completing and
// failing deliveries, with their attempts and replies, no longer lock the
// bridge's row (a foreign key's FOR KEY SHARE) or the delivery's row for a
// key check: the bridge row's xmax stays what creating the bridge left.
func TestForwardedRowsDoNotLockTheBridgeRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, b, l := leasedBridge(t, "node-1/a")
	xmax := func() string {
		t.Helper()
		var x string
		if err := s.pool.QueryRow(ctx, `SELECT xmax::text FROM bridges WHERE id = $1`, b.ID).Scan(&x); err != nil {
			t.Fatal(err)
		}
		return x
	}
	// Creating the bridge with its configuration locked its row.
	created := xmax()
	unlocked := func(what string) {
		t.Helper()
		if x := xmax(); x != created {
			t.Fatalf("%s locked the bridge's row (xmax %s, %s after the bridge was created)", what, x, created)
		}
	}
	var ids []int64
	for _, r := range s.RecordDeliveries(ctx, []NewDelivery{
		{BridgeID: b.ID, MessageID: "m-1", Topic: "/t", SenderAddress: randomAddress(t), Lease: &l},
		{BridgeID: b.ID, MessageID: "m-2", Topic: "/t", SenderAddress: randomAddress(t), Lease: &l},
		{BridgeID: b.ID, MessageID: "m-3", Topic: "/t", SenderAddress: randomAddress(t), Lease: &l},
	}) {
		if r.Err != nil || !r.Created {
			t.Fatalf("record: %+v", r)
		}
		ids = append(ids, r.Delivery.ID)
	}
	unlocked("RecordDeliveries")
	for _, c := range s.CompleteDeliveries(ctx, []Completion{
		{Lease: l, DeliveryID: ids[0], Attempt: DeliveryAttempt{StatusCode: 200}, Reply: &Reply{BridgeID: b.ID, Topic: "/t", TimestampNs: 1, Envelope: []byte("r")}},
		{Lease: l, DeliveryID: ids[1], Attempt: DeliveryAttempt{StatusCode: 200}, Reply: &Reply{BridgeID: b.ID, Topic: "/t", TimestampNs: 2, Envelope: []byte("r")}},
	}) {
		if c.Err != nil || c.ReplyID == 0 {
			t.Fatalf("complete: %+v", c)
		}
	}
	unlocked("CompleteDeliveries")
	if err := s.RecordLeasedAttempt(ctx, l, ids[2], DeliveryAttempt{StatusCode: 500}, DeliveryFailed, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CompleteDelivery(ctx, l, ids[2], DeliveryAttempt{StatusCode: 200},
		&Reply{BridgeID: b.ID, Topic: "/t", TimestampNs: 3, Envelope: []byte("r")}); err != nil {
		t.Fatal(err)
	}
	unlocked("RecordLeasedAttempt and CompleteDelivery")
}

// TestADeletedBridgeKeepsNoForwardedRows: deleting a bridge deletes its
// deliveries, their attempts and its outbox, as the foreign keys'
// cascades did, and afterwards nothing can be written for it: a record
// is fenced or not found, a completion of one of its old deliveries finds
// nothing, and a reply is not found.
func TestADeletedBridgeKeepsNoForwardedRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	other, _ := newBridge(t, s, a.ID, []byte("bundle-2"))
	l, err := s.AcquireLease(ctx, b.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	lo, err := s.AcquireLease(ctx, other.ID, "node-1/b", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := recordWithReply(t, s, l, b.ID, "m-1", []byte("p1"), []byte("r1"))
	recordWithReply(t, s, lo, other.ID, "m-1", []byte("p1"), []byte("r1"))
	d2, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: b.ID, MessageID: "m-2", Topic: "/t", SenderAddress: randomAddress(t), Lease: &l})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordLeasedAttempt(ctx, l, d2.ID, DeliveryAttempt{StatusCode: 500}, DeliveryFailed, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnqueueReply(ctx, l, Reply{BridgeID: b.ID, Topic: "/t", TimestampNs: 9, Envelope: []byte("sent")}); err != nil {
		t.Fatal(err)
	}
	if n, m, r := bridgeRows(t, s, b.ID); n != 2 || m != 0 || r != 2 {
		t.Fatalf("before the delete: %d deliveries, %d orphan attempts, %d replies", n, m, r)
	}
	if err := s.DeleteBridge(ctx, a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	var attempts int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM delivery_attempts WHERE delivery_id = ANY($1)`, []int64{d1.ID, d2.ID}).Scan(&attempts); err != nil {
		t.Fatal(err)
	}
	if n, m, r := bridgeRows(t, s, b.ID); n != 0 || m != 0 || r != 0 || attempts != 0 {
		t.Fatalf("after the delete: %d deliveries, %d attempts, %d orphan attempts, %d replies", n, attempts, m, r)
	}
	if n, _, r := bridgeRows(t, s, other.ID); n != 1 || r != 1 {
		t.Fatalf("the other bridge lost its rows: %d deliveries, %d replies", n, r)
	}

	// Nothing is written for the deleted bridge afterwards.
	for _, r := range s.RecordDeliveries(ctx, []NewDelivery{
		{BridgeID: b.ID, MessageID: "m-3", Topic: "/t", SenderAddress: randomAddress(t), Lease: &l},
		{BridgeID: other.ID, MessageID: "m-3", Topic: "/t", SenderAddress: randomAddress(t), Lease: &lo},
	}) {
		if r.Delivery.BridgeID == other.ID {
			if r.Err != nil || !r.Created {
				t.Fatalf("a record of the live bridge in the same batch: %+v", r)
			}
		} else if !errors.Is(r.Err, ErrFenced) {
			t.Fatalf("a record of the deleted bridge: %+v", r)
		}
	}
	if _, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: b.ID, MessageID: "m-4", Topic: "/t", SenderAddress: randomAddress(t)}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an unleased record of the deleted bridge: %v", err)
	}
	if _, _, err := s.CompleteDelivery(ctx, l, d2.ID, DeliveryAttempt{StatusCode: 200},
		&Reply{BridgeID: b.ID, Topic: "/t", TimestampNs: 3, Envelope: []byte("late")}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a late completion of a deleted delivery: %v", err)
	}
	if err := s.RecordLeasedAttempt(ctx, l, d2.ID, DeliveryAttempt{StatusCode: 500}, DeliveryFailed, time.Now()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a late failed attempt of a deleted delivery: %v", err)
	}
	if err := s.RecordAttempt(ctx, d2.ID, DeliveryAttempt{StatusCode: 500}, DeliveryFailed, time.Now()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a late unleased attempt of a deleted delivery: %v", err)
	}
	if _, err := s.EnqueueReply(ctx, l, Reply{BridgeID: b.ID, Topic: "/t", TimestampNs: 10, Envelope: []byte("late")}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a reply of the deleted bridge: %v", err)
	}
	if n, m, r := bridgeRows(t, s, b.ID); n != 0 || m != 0 || r != 0 {
		t.Fatalf("late writes left rows: %d deliveries, %d orphan attempts, %d replies", n, m, r)
	}
}

// TestBridgeDeleteAndRecordsWaitForEachOther: a delete of a bridge waits
// for a record of its deliveries under way and then deletes it too, and a
// record that comes while a delete is under way waits for it and then
// writes nothing; neither leaves a delivery of a deleted bridge. The
// record under way is the batch statement's own check and insert, held
// open in a transaction.
func TestBridgeDeleteAndRecordsWaitForEachOther(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, url := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	waiting := func(what string) {
		t.Helper()
		pgtest.Poll(t, url, 20*time.Second, func(ctx context.Context, c *pgx.Conn) (bool, error) {
			var n int
			err := c.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database =
				(SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n)
			return n > 0, err
		}, "%s waits for the advisory lock of the bridge", what)
	}

	// A record under way, then a delete.
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// On a failure, the transaction ends before the store closes.
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	var ok bool
	if err := tx.QueryRow(ctx, `SELECT bridge_accepts_writes($1)`, b.ID).Scan(&ok); err != nil || !ok {
		t.Fatalf("the bridge accepts writes: %v %v", ok, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO deliveries (bridge_id, message_id, topic, sender_address, payload)
		VALUES ($1, 'm-1', '/t', $2, '')`, b.ID, randomAddress(t)); err != nil {
		t.Fatal(err)
	}
	deleted := make(chan error, 1)
	go func() { deleted <- s.DeleteBridge(ctx, a.ID, b.ID) }()
	waiting("the delete")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	if n, _, _ := bridgeRows(t, s, b.ID); n != 0 {
		t.Fatalf("a record committed while the delete waited outlived its bridge: %d deliveries", n)
	}

	// A delete under way, then a record.
	b2, _ := newBridge(t, s, a.ID, []byte("bundle-2"))
	l, err := s.AcquireLease(ctx, b2.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tx2, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx2.Rollback(context.Background()) })
	if _, err := tx2.Exec(ctx, `DELETE FROM bridges WHERE id = $1`, b2.ID); err != nil {
		t.Fatal(err)
	}
	recorded := make(chan Recorded, 1)
	go func() {
		recorded <- s.RecordDeliveries(ctx, []NewDelivery{{BridgeID: b2.ID, MessageID: "m-1", Topic: "/t", SenderAddress: randomAddress(t), Lease: &l}})[0]
	}()
	waiting("the record")
	if err := tx2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-recorded; !errors.Is(r.Err, ErrFenced) || r.Created {
		t.Fatalf("a record that waited for its bridge's delete: %+v", r)
	}
	if n, _, _ := bridgeRows(t, s, b2.ID); n != 0 {
		t.Fatalf("a record after its bridge's delete left %d deliveries", n)
	}
}
