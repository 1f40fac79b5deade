package persistence

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// TestCommitDurability: a batch of cursor moves, a reply's publication and
// the record of a published contact bundle commit without waiting for the disk (fenced.go, asyncCommit); delivery
// records, one at a time or in a batch, and a completion with its reply in
// the outbox commit synchronously, as does the one-at-a-time cursor move. Deferred
// triggers record the transaction's synchronous_commit when it commits,
// on each table the forward path writes.
func TestCommitDurability(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url := newTestStore(t)
	// One connection, so that the last check reads the one the writes
	// went through.
	s := oneConnStore(t, url)
	if _, err := s.pool.Exec(ctx, `
		CREATE TABLE commit_log (id bigint GENERATED ALWAYS AS IDENTITY, tbl text, op text, sync text);
		CREATE FUNCTION log_commit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO commit_log (tbl, op, sync) VALUES (TG_TABLE_NAME, TG_OP, current_setting('synchronous_commit'));
			RETURN NULL;
		END $$;
		CREATE CONSTRAINT TRIGGER deliveries_commit AFTER INSERT OR UPDATE ON deliveries
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION log_commit();
		CREATE CONSTRAINT TRIGGER reply_outbox_commit AFTER INSERT OR UPDATE ON reply_outbox
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION log_commit();
		CREATE CONSTRAINT TRIGGER cursors_commit AFTER INSERT OR UPDATE ON cursors
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION log_commit();
		CREATE CONSTRAINT TRIGGER contact_publications_commit AFTER INSERT OR UPDATE ON contact_publications
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION log_commit();`); err != nil {
		t.Fatal(err)
	}
	acct, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, acct.ID, []byte("bundle-1"))
	l, err := s.AcquireLease(ctx, b.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	logged := func() [][3]string {
		t.Helper()
		rows, err := s.pool.Query(ctx, `DELETE FROM commit_log RETURNING tbl, op, sync`)
		if err != nil {
			t.Fatal(err)
		}
		var out [][3]string
		for rows.Next() {
			var r [3]string
			if err := rows.Scan(&r[0], &r[1], &r[2]); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		rows.Close()
		return out
	}
	expect := func(what string, n int, sync string) {
		t.Helper()
		got := logged()
		if len(got) != n {
			t.Fatalf("%s: %d rows written, want %d: %v", what, len(got), n, got)
		}
		for _, r := range got {
			if r[2] != sync {
				t.Errorf("%s: %s of %s committed with synchronous_commit %s, want %s", what, r[1], r[0], r[2], sync)
			}
		}
	}
	nd := func(id string) NewDelivery {
		return NewDelivery{BridgeID: b.ID, MessageID: id, Topic: "/t", SenderAddress: randomAddress(t), Payload: []byte("p"), Lease: &l}
	}
	var ids []int64
	for _, r := range s.RecordDeliveries(ctx, []NewDelivery{nd("m-1"), nd("m-2"), nd("m-3")}) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		ids = append(ids, r.Delivery.ID)
	}
	expect("RecordDeliveries", 3, "on")
	if _, _, err := s.RecordDelivery(ctx, nd("m-4")); err != nil {
		t.Fatal(err)
	}
	expect("RecordDelivery", 1, "on")
	if err := s.SaveCursor(ctx, l, b.ID, "/t", 5, make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCursor(ctx, l, b.ID, "/t", 6, make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	expect("SaveCursor", 2, "on")
	for _, err := range s.SaveCursors(ctx, []CursorMove{{Lease: l, BridgeID: b.ID, Topic: "/t", TimestampNs: 7, Digest: make([]byte, 32)},
		{Lease: l, BridgeID: b.ID, Topic: "/u", TimestampNs: 7, Digest: make([]byte, 32)}}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	expect("SaveCursors", 2, "off")
	reply := &Reply{BridgeID: b.ID, Topic: "/t", TimestampNs: 7, Envelope: []byte("e"), Text: "hi"}
	var replies []int64
	for _, r := range s.CompleteDeliveries(ctx, []Completion{
		{Lease: l, DeliveryID: ids[0], Attempt: DeliveryAttempt{StatusCode: 200}, Reply: reply},
		{Lease: l, DeliveryID: ids[1], Attempt: DeliveryAttempt{StatusCode: 200}, Reply: reply},
	}) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		replies = append(replies, r.ReplyID)
	}
	expect("CompleteDeliveries", 4, "on")
	id, _, err := s.CompleteDelivery(ctx, l, ids[2], DeliveryAttempt{StatusCode: 200}, reply)
	if err != nil {
		t.Fatal(err)
	}
	expect("CompleteDelivery", 2, "on")
	if err := s.RecordReplyAttempts(ctx, l, replies, ReplySent, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordReplyAttempt(ctx, l, id, ReplySent, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	expect("RecordReplyAttempts", 3, "off")
	// A contact publication, first recorded and then replaced.
	if err := s.SetContactPublished(ctx, b.ID, make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetContactPublished(ctx, b.ID, bytes.Repeat([]byte{1}, 32)); err != nil {
		t.Fatal(err)
	}
	expect("SetContactPublished", 2, "off")
	if st, err := s.ActivationState(ctx, b.ID); err != nil || !bytes.Equal(st.ContactDigest, bytes.Repeat([]byte{1}, 32)) {
		t.Fatalf("contact digest after SetContactPublished: %x, %v", st.ContactDigest, err)
	}
	// The setting was the transaction's own: the connection's next
	// transaction waits for the disk again.
	var setting string
	if err := s.pool.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&setting); err != nil || setting != "on" {
		t.Fatalf("synchronous_commit after the writes: %q, %v; want on", setting, err)
	}
}
