package persistence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"strconv"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"

	"github.com/xmtpbridge/bridge/persistence/migration"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// rawContent returns every byte the deliveries and reply_outbox tables
// hold, as a dump of the database would show them.
func rawContent(t *testing.T, s *Store) []byte {
	t.Helper()
	var all []byte
	for _, q := range []string{`SELECT d::text FROM deliveries d`, `SELECT payload FROM deliveries`,
		`SELECT o::text FROM reply_outbox o`, `SELECT envelope FROM reply_outbox`} {
		rows, err := s.pool.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return all
}

// recordWithReply records a delivery of payload and completes it with a
// reply envelope.
func recordWithReply(t *testing.T, s *Store, l Lease, bridgeID, messageID string, payload, reply []byte) (Delivery, int64) {
	t.Helper()
	ctx := context.Background()
	d, created, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: bridgeID, MessageID: messageID, Topic: "/xmtp/0/m-1/proto",
		SenderAddress: randomAddress(t), SentNs: 1, Payload: payload, Lease: &l})
	if err != nil || !created {
		t.Fatalf("record delivery: %v %v", created, err)
	}
	replyID, completed, err := s.CompleteDelivery(ctx, l, d.ID, DeliveryAttempt{StatusCode: 200},
		&Reply{BridgeID: bridgeID, Topic: d.Topic, TimestampNs: 7, Envelope: reply})
	if err != nil || !completed || replyID == 0 {
		t.Fatalf("complete delivery: %d %v %v", replyID, completed, err)
	}
	return d, replyID
}

// TestPayloadsAreSealedAndBoundToTheirRow: neither the payload nor the
// reply appears in the raw tables, both read back as they were written,
// and a sealed value moved to another row does not open.
func TestPayloadsAreSealedAndBoundToTheirRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	l, err := s.AcquireLease(ctx, b.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	d1, r1 := recordWithReply(t, s, l, b.ID, "m-1", []byte("first secret payload"), []byte("first secret reply"))
	d2, r2 := recordWithReply(t, s, l, b.ID, "m-2", []byte("second secret payload"), []byte("second secret reply"))

	raw := rawContent(t, s)
	for _, plain := range []string{"first secret", "second secret", "secret"} {
		if bytes.Contains(raw, []byte(plain)) {
			t.Fatalf("the raw tables contain %q", plain)
		}
	}
	list, _, err := s.ListDeliveries(ctx, a.ID, b.ID, "", Page{})
	if err != nil || len(list) != 2 || string(list[0].Payload) != "second secret payload" || string(list[1].Payload) != "first secret payload" {
		t.Fatalf("list deliveries: %+v %v", list, err)
	}
	replies, err := s.RepliesOf(ctx, d1.ID)
	if err != nil || len(replies) != 1 || replies[0].ID != r1 || string(replies[0].Envelope) != "first secret reply" {
		t.Fatalf("replies of d1: %+v %v", replies, err)
	}
	if err := s.RecordReplyAttempt(ctx, l, r1, ReplySent, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueReplies(ctx, b.ID, 10)
	if err != nil || len(due) != 1 || string(due[0].Envelope) != "second secret reply" {
		t.Fatalf("due replies: %+v %v", due, err)
	}

	// Move d1's sealed payload onto d2, and r1's envelope onto r2.
	if _, err := s.pool.Exec(ctx, `UPDATE deliveries t SET payload = f.payload, payload_key_id = f.payload_key_id,
		payload_nonce = f.payload_nonce FROM deliveries f WHERE f.id = $1 AND t.id = $2`, d1.ID, d2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeliveryByID(ctx, d2.ID); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("a payload moved to another delivery: %v, want ErrDecrypt", err)
	}
	if _, _, err := s.ListDeliveries(ctx, a.ID, b.ID, "", Page{}); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("list with a moved payload: %v, want ErrDecrypt", err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE reply_outbox t SET envelope = f.envelope, envelope_key_id = f.envelope_key_id,
		envelope_nonce = f.envelope_nonce FROM reply_outbox f WHERE f.id = $1 AND t.id = $2`, r1, r2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DueReplies(ctx, b.ID, 10); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("an envelope moved to another reply: %v, want ErrDecrypt", err)
	}
	// The same bytes in the same row still open: the test moved nothing
	// else.
	if got, err := s.DeliveryByID(ctx, d1.ID); err != nil || string(got.Payload) != "first secret payload" {
		t.Fatalf("d1 after the move: %q %v", got.Payload, err)
	}
}

// TestSealedPayloadsFollowKeyRotation: a store that holds the old key as
// a previous key reads payloads and replies sealed under it, Reseal moves
// them to the new key, and then the new key alone opens them.
func TestSealedPayloadsFollowKeyRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t, testTemplate)
	oldKey, newKey := testKey(t, "old"), testKey(t, "new")
	s1 := openStore(t, url, mustSealer(t, oldKey))
	a, _ := newAccount(t, s1, "alice")
	b, _ := newBridge(t, s1, a.ID, []byte("bundle"))
	l, err := s1.AcquireLease(ctx, b.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := recordWithReply(t, s1, l, b.ID, "m-1", []byte("payload under old"), []byte("reply under old"))

	newOnly := openStore(t, url, mustSealer(t, newKey))
	if _, err := newOnly.DeliveryByID(ctx, d.ID); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("new key alone before the reseal: %v, want ErrUnknownKey", err)
	}
	rotated := openStore(t, url, mustSealer(t, newKey, oldKey))
	if got, err := rotated.DeliveryByID(ctx, d.ID); err != nil || string(got.Payload) != "payload under old" {
		t.Fatalf("rotated store reads the old payload: %q %v", got.Payload, err)
	}
	n, err := rotated.Reseal(ctx)
	if err != nil || n != 5 {
		t.Fatalf("reseal: %d, %v; want 5 (key, webhook secret, forward headers, payload, reply)", n, err)
	}
	if n, err := rotated.Reseal(ctx); err != nil || n != 0 {
		t.Fatalf("second reseal: %d %v", n, err)
	}
	var stale int
	if err := rotated.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM deliveries WHERE payload_key_id <> 'new')
		+ (SELECT count(*) FROM reply_outbox WHERE envelope_key_id <> 'new')`).Scan(&stale); err != nil || stale != 0 {
		t.Fatalf("%d content rows still on the old key (%v)", stale, err)
	}
	if got, err := newOnly.DeliveryByID(ctx, d.ID); err != nil || string(got.Payload) != "payload under old" {
		t.Fatalf("new key alone after the reseal: %q %v", got.Payload, err)
	}
	if rs, err := newOnly.RepliesOf(ctx, d.ID); err != nil || len(rs) != 1 || string(rs[0].Envelope) != "reply under old" {
		t.Fatalf("reply after the reseal: %+v %v", rs, err)
	}
}

// schemaBefore is the bridge schema without migration 0005 and later: the
// schema an earlier version ran on.
func schemaBefore(t *testing.T, version int) migration.Set {
	t.Helper()
	files, err := schema.Files()
	if err != nil {
		t.Fatal(err)
	}
	m := fstest.MapFS{}
	for _, f := range files {
		if f.Version < version {
			m["migrations/"+f.Name] = &fstest.MapFile{Data: []byte(f.SQL), Mode: fs.ModePerm}
		}
	}
	return migration.Set{FS: m, Dir: "migrations", Table: schema.Table, LockID: schema.LockID}
}

// TestUpgradeSealsClearRowsAndCutsTheQuarantine writes rows the way the
// version before migration 0005 did (payloads and replies in clear, whole
// envelopes in quarantine), upgrades, and checks that the rows read as
// before, that the sweep seals them, and that the quarantine was cut.
func TestUpgradeSealsClearRowsAndCutsTheQuarantine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t, pgtest.Template{Name: "empty", Migrate: func(context.Context, string) error { return nil }})
	if err := schemaBefore(t, 5).Apply(ctx, url); err != nil {
		t.Fatalf("apply the old schema: %v", err)
	}
	s := openStore(t, url, mustSealer(t, testKey(t, "k1")))
	a, _ := newAccount(t, s, "alice")
	// The bridge row is written as that version did: today's store reads
	// bridge columns that later migrations add.
	b := Bridge{ID: uuid.NewString()}
	if _, err := s.pool.Exec(ctx, `INSERT INTO bridges (id, account_id, address, key_id, key_nonce, key_ciphertext)
		VALUES ($1, $2, $3, 'k1', $4, $5)`, b.ID, a.ID, randomAddress(t), make([]byte, 12), make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	var deliveryID, replyID int64
	if err := s.pool.QueryRow(ctx, `INSERT INTO deliveries (bridge_id, message_id, topic, sender_address, payload, status)
		VALUES ($1, 'm-old', '/xmtp/0/m-1/proto', $2, 'clear payload of old', 'succeeded') RETURNING id`,
		b.ID, randomAddress(t)).Scan(&deliveryID); err != nil {
		t.Fatal(err)
	}
	if err := s.pool.QueryRow(ctx, `INSERT INTO reply_outbox (bridge_id, delivery_id, topic, timestamp_ns, envelope, status)
		VALUES ($1, $2, '/xmtp/0/m-1/proto', 5, 'clear reply of old', 'pending') RETURNING id`,
		b.ID, deliveryID).Scan(&replyID); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("J"), 1<<20)
	if _, err := s.pool.Exec(ctx, `INSERT INTO quarantined_messages (bridge_id, topic, envelope, reason)
		SELECT $1, 't', '\x01'::bytea, 'junk ' || g FROM generate_series(1, 1100) g`, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO quarantined_messages (bridge_id, topic, envelope, reason) VALUES ($1, 't', $2, 'big')`,
		b.ID, big); err != nil {
		t.Fatal(err)
	}

	if err := Migrate(ctx, url); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	// Read in both forms: the clear rows read as they were written.
	if got, err := s.DeliveryByID(ctx, deliveryID); err != nil || string(got.Payload) != "clear payload of old" {
		t.Fatalf("clear delivery after the upgrade: %q %v", got.Payload, err)
	}
	if due, err := s.DueReplies(ctx, b.ID, 10); err != nil || len(due) != 1 || string(due[0].Envelope) != "clear reply of old" {
		t.Fatalf("clear reply after the upgrade: %+v %v", due, err)
	}
	var rows, maxLen int
	if err := s.pool.QueryRow(ctx, `SELECT count(*), max(length(envelope)) FROM quarantined_messages WHERE bridge_id = $1`,
		b.ID).Scan(&rows, &maxLen); err != nil || rows != DefaultQuarantineRows || maxLen > QuarantinePrefixBytes {
		t.Fatalf("quarantine after the upgrade: %d rows, longest %d (%v); want %d rows of at most %d bytes",
			rows, maxLen, err, DefaultQuarantineRows, QuarantinePrefixBytes)
	}
	qs, err := s.QuarantinedMessages(ctx, b.ID, 1)
	want := sha256.Sum256(big)
	if err != nil || len(qs) != 1 || qs[0].Reason != "big" || qs[0].Size != len(big) || !bytes.Equal(qs[0].Hash, want[:]) ||
		!bytes.Equal(qs[0].Envelope, big[:QuarantinePrefixBytes]) {
		t.Fatalf("the big quarantined envelope after the upgrade: %v", err)
	}

	if raw := rawContent(t, s); !bytes.Contains(raw, []byte("clear payload of old")) || !bytes.Contains(raw, []byte("clear reply of old")) {
		t.Fatal("the search of the raw tables does not find the clear rows")
	}
	res, err := s.SweepRetention(ctx, Retention{})
	if err != nil || res.Sealed != 2 {
		t.Fatalf("sweep: %+v %v; want 2 rows sealed", res, err)
	}
	if raw := rawContent(t, s); bytes.Contains(raw, []byte("of old")) {
		t.Fatal("the raw tables still hold the clear content after the sweep")
	}
	if got, err := s.DeliveryByID(ctx, deliveryID); err != nil || string(got.Payload) != "clear payload of old" {
		t.Fatalf("sealed old delivery: %q %v", got.Payload, err)
	}
	if due, err := s.DueReplies(ctx, b.ID, 10); err != nil || len(due) != 1 || string(due[0].Envelope) != "clear reply of old" {
		t.Fatalf("sealed old reply: %+v %v", due, err)
	}
	if res, err := s.SweepRetention(ctx, Retention{}); err != nil || res.Sealed != 0 {
		t.Fatalf("second sweep: %+v %v", res, err)
	}
}

// TestRetentionPurgesContentAndKeepsStatus: past the retention, final
// deliveries and sent replies lose their content and keep their rows and
// statuses; pending ones and recent ones keep everything; old quarantined
// messages are deleted.
func TestRetentionPurgesContentAndKeepsStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	l, err := s.AcquireLease(ctx, b.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	oldDone, oldReply := recordWithReply(t, s, l, b.ID, "old-done", []byte("old done text"), []byte("old reply text"))
	newDone, newReply := recordWithReply(t, s, l, b.ID, "new-done", []byte("new done text"), []byte("new reply text"))
	record := func(id string, status DeliveryStatus) Delivery {
		d, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: b.ID, MessageID: id, Topic: "/xmtp/0/m-1/proto",
			SenderAddress: randomAddress(t), Payload: []byte(id + " text")})
		if err != nil {
			t.Fatal(err)
		}
		if status != DeliveryPending {
			if err := s.RecordAttempt(ctx, d.ID, DeliveryAttempt{StatusCode: 500}, status, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	oldDead := record("old-dead", DeliveryDead)
	oldPending := record("old-pending", DeliveryPending)
	oldFailed := record("old-failed", DeliveryFailed)
	pendingReply, err := s.EnqueueReply(ctx, l, Reply{BridgeID: b.ID, Topic: "/xmtp/0/m-1/proto", TimestampNs: 9, Envelope: []byte("pending reply text")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordReplyAttempt(ctx, l, newReply, ReplySent, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordReplyAttempt(ctx, l, oldReply, ReplySent, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE deliveries SET updated_at = now() - interval '31 days' WHERE message_id LIKE 'old-%'`,
		`UPDATE reply_outbox SET updated_at = now() - interval '31 days' WHERE id <> ` + strconv.FormatInt(newReply, 10),
	} {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if err := s.Quarantine(ctx, b.ID, "t", []byte{byte(i)}, "junk"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.pool.Exec(ctx, `UPDATE quarantined_messages SET created_at = now() - interval '8 days'
		WHERE id = (SELECT min(id) FROM quarantined_messages)`); err != nil {
		t.Fatal(err)
	}

	res, err := s.SweepRetention(ctx, Retention{Payload: 30 * 24 * time.Hour, Quarantine: 7 * 24 * time.Hour})
	if err != nil || res.PurgedDeliveries != 2 || res.PurgedReplies != 1 || res.QuarantineDeleted != 1 {
		t.Fatalf("sweep: %+v %v; want 2 deliveries, 1 reply, 1 quarantined message", res, err)
	}
	check := func(d Delivery, status DeliveryStatus, purged bool) {
		t.Helper()
		got, err := s.DeliveryByID(ctx, d.ID)
		if err != nil || got.Status != status || (got.PurgedAt != nil) != purged || (len(got.Payload) == 0) != purged {
			t.Fatalf("delivery %s: status %s, purged %v, payload %q (%v); want %s, purged %v",
				d.MessageID, got.Status, got.PurgedAt, got.Payload, err, status, purged)
		}
	}
	check(oldDone, DeliverySucceeded, true)
	check(oldDead, DeliveryDead, true)
	check(oldPending, DeliveryPending, false)
	check(oldFailed, DeliveryFailed, false)
	check(newDone, DeliverySucceeded, false)
	if rs, err := s.RepliesOf(ctx, oldDone.ID); err != nil || len(rs) != 1 || rs[0].Status != ReplySent || rs[0].PurgedAt == nil || len(rs[0].Envelope) != 0 {
		t.Fatalf("old sent reply: %+v %v", rs, err)
	}
	if rs, err := s.RepliesOf(ctx, newDone.ID); err != nil || len(rs) != 1 || string(rs[0].Envelope) != "new reply text" {
		t.Fatalf("new sent reply: %+v %v", rs, err)
	}
	if due, err := s.DueReplies(ctx, b.ID, 10); err != nil || len(due) != 1 || due[0].ID != pendingReply || string(due[0].Envelope) != "pending reply text" {
		t.Fatalf("pending reply: %+v %v", due, err)
	}
	// A purged dead letter has nothing left to replay.
	if _, err := s.ReplayDeadLetter(ctx, a.ID, b.ID, oldDead.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replay of a purged dead letter: %v, want ErrNotFound", err)
	}
	if raw := rawContent(t, s); bytes.Contains(raw, []byte("old done")) || bytes.Contains(raw, []byte("old reply")) {
		t.Fatal("purged content is still in the raw tables")
	}
	if qs, err := s.QuarantinedMessages(ctx, b.ID, 10); err != nil || len(qs) != 2 {
		t.Fatalf("quarantine after the sweep: %d rows (%v), want 2", len(qs), err)
	}
	if res, err := s.SweepRetention(ctx, Retention{Payload: 30 * 24 * time.Hour, Quarantine: 7 * 24 * time.Hour}); err != nil ||
		res != (SweepResult{}) {
		t.Fatalf("second sweep: %+v %v; want nothing to do", res, err)
	}
}
