package persistence

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestStartAttemptsInOneBatch: starting many attempts at once, for several
// identities, gives each the delivery, the secrets and the lease check that
// StartAttempt gives it alone: a stale lease is fenced, a delivery of
// another bridge or a missing one is not found.
func TestStartAttemptsInOneBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newBatchFixture(t)
	s, b1, b2, stale, l1, l2, record, d0 := f.s, f.b1, f.b2, f.stale, f.l1, f.l2, f.record, f.d0
	d1, d2, d3 := record(l1, b1.ID, "m-1"), record(l2, b2.ID, "m-2"), record(l1, b1.ID, "m-3")

	keys := []AttemptKey{
		{Lease: l1, BridgeID: b1.ID, DeliveryID: d1.ID},
		{Lease: l2, BridgeID: b2.ID, DeliveryID: d2.ID},
		{Lease: stale, BridgeID: b1.ID, DeliveryID: d0.ID},
		{Lease: l1, BridgeID: b1.ID, DeliveryID: d2.ID}, // another bridge's
		{Lease: l1, BridgeID: b1.ID, DeliveryID: d3.ID + 1000},
		{Lease: l1, BridgeID: "not-a-uuid", DeliveryID: d1.ID},
		{Lease: l1, BridgeID: b1.ID, DeliveryID: d3.ID},
	}
	got := s.StartAttempts(ctx, keys)
	if len(got) != len(keys) {
		t.Fatalf("%d results for %d keys", len(got), len(keys))
	}
	for i, k := range keys {
		want, wantErr := s.StartAttempt(ctx, k.Lease, k.BridgeID, k.DeliveryID)
		if !reflect.DeepEqual(got[i].AttemptStart, want) {
			t.Errorf("key %d: batch started %+v, alone %+v", i, got[i].AttemptStart, want)
		}
		if (got[i].Err == nil) != (wantErr == nil) || errors.Is(got[i].Err, ErrFenced) != errors.Is(wantErr, ErrFenced) ||
			errors.Is(got[i].Err, ErrNotFound) != errors.Is(wantErr, ErrNotFound) {
			t.Errorf("key %d: batch error %v, alone %v", i, got[i].Err, wantErr)
		}
	}
	for i, want := range []error{nil, nil, ErrFenced, ErrNotFound, ErrNotFound, ErrNotFound, nil} {
		if want == nil && got[i].Err != nil || want != nil && !errors.Is(got[i].Err, want) {
			t.Errorf("key %d: error %v, want %v", i, got[i].Err, want)
		}
	}
	if got[0].Delivery.ID != d1.ID || string(got[0].Delivery.Payload) != "payload m-1" || len(got[0].Secrets) == 0 ||
		got[1].Delivery.ID != d2.ID || string(got[1].Delivery.Payload) != "payload m-2" || len(got[1].Secrets) == 0 {
		t.Fatalf("started: %+v / %+v", got[0], got[1])
	}
}

// batchFixture is two bridges of one account with a delivery each can be
// given: b1's first lease, stale, recorded d0 before node-2 took b1 over
// with l1; l2 is b2's lease on node-2. record records a delivery under a
// lease.
type batchFixture struct {
	s      *Store
	url    string
	b1, b2 Bridge
	stale  Lease
	l1, l2 Lease
	record func(l Lease, bridgeID, msg string) Delivery
	d0     Delivery
}

func newBatchFixture(t *testing.T) batchFixture {
	t.Helper()
	ctx := context.Background()
	s, url := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b1, _ := newBridge(t, s, a.ID, []byte("bundle-1"))
	b2, _ := newBridge(t, s, a.ID, []byte("bundle-2"))
	stale, err := s.AcquireLease(ctx, b1.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	record := func(l Lease, bridgeID, msg string) Delivery {
		d, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: bridgeID, MessageID: msg, Topic: "/xmtp/0/" + msg + "/proto",
			SenderAddress: randomAddress(t), SentNs: 1, Payload: []byte("payload " + msg), Lease: &l})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d0 := record(stale, b1.ID, "m-0")
	if _, err := s.pool.Exec(ctx, "UPDATE identity_leases SET expires_at = now() - interval '1 second' WHERE identity = $1", b1.ID); err != nil {
		t.Fatal(err)
	}
	l1, err := s.AcquireLease(ctx, b1.ID, "node-2/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := s.AcquireLease(ctx, b2.ID, "node-2/b", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return batchFixture{s: s, url: url, b1: b1, b2: b2, stale: stale, l1: l1, l2: l2, record: record, d0: d0}
}

// TestStartAttemptsOpenSecretsAsStartAttemptDoes: the batch opens webhook
// secrets as StartAttempt does: the same secrets in the same order, the
// rotated-out one after the current one; a secret that cannot be opened
// fails the batch with the error StartAttempt gives, which does not show
// the secret.
func TestStartAttemptsOpenSecretsAsStartAttemptDoes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newBatchFixture(t)
	s, b1, b2, l1, l2 := f.s, f.b1, f.b2, f.l1, f.l2
	current, err := s.RotateWebhookSecret(ctx, b1.AccountID, b1.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	d1, d2 := f.record(l1, b1.ID, "m-1"), f.record(l2, b2.ID, "m-2")
	keys := []AttemptKey{{Lease: l1, BridgeID: b1.ID, DeliveryID: d1.ID}, {Lease: l2, BridgeID: b2.ID, DeliveryID: d2.ID}}
	got := s.StartAttempts(ctx, keys)
	for i, k := range keys {
		want, err := s.StartAttempt(ctx, k.Lease, k.BridgeID, k.DeliveryID)
		if err != nil || got[i].Err != nil || !reflect.DeepEqual(got[i].Secrets, want.Secrets) {
			t.Fatalf("key %d: batch secrets %+v (%v), alone %+v (%v)", i, got[i].Secrets, got[i].Err, want.Secrets, err)
		}
	}
	if len(got[0].Secrets) != 2 || got[0].Secrets[0].Secret != current || got[0].Secrets[1].ExpiresAt == nil {
		t.Fatalf("secrets of the rotated bridge: %+v, want the current one first, then the rotated-out one", got[0].Secrets)
	}

	// Flip a bit of the ciphertext (setting a byte to a fixed value would
	// leave it unchanged once in 256 runs, as the AES-GCM output is random).
	if _, err := s.pool.Exec(ctx, `UPDATE webhook_secrets SET ciphertext = set_byte(ciphertext, 0, get_byte(ciphertext, 0) # 1)
		WHERE bridge_id = $1 AND expires_at IS NULL`, b1.ID); err != nil {
		t.Fatal(err)
	}
	keys = append(keys, AttemptKey{Lease: l1, BridgeID: b1.ID, DeliveryID: d1.ID})
	got = s.StartAttempts(ctx, keys)
	_, alone := s.StartAttempt(ctx, l1, b1.ID, d1.ID)
	if alone == nil {
		t.Fatal("StartAttempt opened a tampered secret")
	}
	for i := range keys {
		if got[i].Err == nil || got[i].Err.Error() != alone.Error() {
			t.Errorf("key %d: batch error %v, alone %v", i, got[i].Err, alone)
		}
		if strings.Contains(fmt.Sprint(got[i].Err), current) {
			t.Errorf("key %d: the error shows the secret", i)
		}
	}
}

// TestALateFailureLeavesACompletedDeliveryAlone: an attempt that started
// from a copy read before another attempt completed the delivery, and then
// failed, records nothing: the delivery stays succeeded, with its one
// reply, instead of becoming a delivery to retry (whose retry would make
// a second reply). A dead letter stays dead the same way.
func TestALateFailureLeavesACompletedDeliveryAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newBatchFixture(t)
	s, l1 := f.s, f.l1
	d := f.record(l1, f.b1.ID, "m-late")
	reply := &Reply{BridgeID: d.BridgeID, Topic: d.Topic, TimestampNs: 9, Envelope: []byte("envelope"), Text: "one"}
	if _, done, err := s.CompleteDelivery(ctx, l1, d.ID, DeliveryAttempt{StatusCode: 200}, reply); err != nil || !done {
		t.Fatalf("complete: %v %v", done, err)
	}
	if err := s.RecordLeasedAttempt(ctx, l1, d.ID, DeliveryAttempt{StatusCode: 500, Error: "late"}, DeliveryFailed, time.Now()); err != nil {
		t.Fatalf("a late failure of a completed delivery: %v, want nil (nothing to record)", err)
	}
	got, err := s.DeliveryByID(ctx, d.ID)
	if err != nil || got.Status != DeliverySucceeded || got.Attempts != 1 {
		t.Fatalf("after a late failure: status %s, %d attempts, %v; want succeeded after 1", got.Status, got.Attempts, err)
	}
	dead := f.record(l1, f.b1.ID, "m-dead")
	if err := s.RecordLeasedAttempt(ctx, l1, dead.ID, DeliveryAttempt{StatusCode: 410}, DeliveryDead, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordLeasedAttempt(ctx, l1, dead.ID, DeliveryAttempt{StatusCode: 500}, DeliveryFailed, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got, err := s.DeliveryByID(ctx, dead.ID); err != nil || got.Status != DeliveryDead {
		t.Fatalf("a dead letter after a late failure: %s, %v", got.Status, err)
	}
	if err := s.RecordLeasedAttempt(ctx, l1, dead.ID+1000, DeliveryAttempt{StatusCode: 500}, DeliveryFailed, time.Now()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a missing delivery: %v, want ErrNotFound", err)
	}
}

// TestAnAttemptWithNoHTTPStatusIsRecorded: an answer whose code is not an
// HTTP status (100 to 599) is recorded with no status, by each way an
// attempt is written, instead of being refused by the table and lost.
func TestAnAttemptWithNoHTTPStatusIsRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newBatchFixture(t)
	s, l1 := f.s, f.l1
	codes := func(id int64) []any {
		rows, err := s.pool.Query(ctx, `SELECT status_code FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id`, id)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[any])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	d := f.record(l1, f.b1.ID, "m-odd")
	if err := s.RecordLeasedAttempt(ctx, l1, d.ID, DeliveryAttempt{StatusCode: 799, Error: "odd"}, DeliveryFailed, time.Now()); err != nil {
		t.Fatalf("leased attempt: %v", err)
	}
	if err := s.RecordAttempt(ctx, d.ID, DeliveryAttempt{StatusCode: 99}, DeliveryFailed, time.Now()); err != nil {
		t.Fatalf("attempt: %v", err)
	}
	if _, done, err := s.CompleteDelivery(ctx, l1, d.ID, DeliveryAttempt{StatusCode: 1000}, nil); err != nil || !done {
		t.Fatalf("complete: %v %v", done, err)
	}
	if got := codes(d.ID); len(got) != 3 || got[0] != nil || got[1] != nil || got[2] != nil {
		t.Fatalf("status codes recorded: %v, want three with none", got)
	}
	// Two, so that they go in one statement.
	b1, b2 := f.record(l1, f.b1.ID, "m-odd-batch-1"), f.record(l1, f.b1.ID, "m-odd-batch-2")
	res := s.CompleteDeliveries(ctx, []Completion{{Lease: l1, DeliveryID: b1.ID, Attempt: DeliveryAttempt{StatusCode: 600}},
		{Lease: l1, DeliveryID: b2.ID, Attempt: DeliveryAttempt{StatusCode: 201}}})
	if len(res) != 2 || res[0].Err != nil || res[1].Err != nil || !res[0].Completed || !res[1].Completed {
		t.Fatalf("batched completions: %+v", res)
	}
	if got := codes(b1.ID); len(got) != 1 || got[0] != nil {
		t.Fatalf("status code of the batched completion: %v, want none", got)
	}
	if got := codes(b2.ID); len(got) != 1 || got[0] != int32(201) {
		t.Fatalf("status code of the batched completion: %v, want 201", got)
	}
}
