package persistence

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDeliveriesAndDeadLetters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	nd := NewDelivery{BridgeID: b.ID, MessageID: "hash-1", Topic: "/xmtp/0/m-1/proto", SenderAddress: randomAddress(t), SentNs: 42, Payload: []byte("hi")}

	d, created, err := s.RecordDelivery(ctx, nd)
	if err != nil || !created || d.Status != DeliveryPending {
		t.Fatalf("record: %+v %v %v", d, created, err)
	}
	again, created, err := s.RecordDelivery(ctx, nd)
	if err != nil || created || again.ID != d.ID {
		t.Fatalf("record again: %+v %v %v", again, created, err)
	}
	nd.MessageID = "hash-2"
	d2, _, err := s.RecordDelivery(ctx, nd)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx, d2.ID, DeliveryAttempt{StatusCode: 500, Latency: time.Millisecond, Error: "status 500"}, DeliveryDead, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx, 1<<40, DeliveryAttempt{}, DeliveryDead, time.Now()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("attempt of unknown delivery: %v", err)
	}

	all, _, err := s.ListDeliveries(ctx, a.ID, b.ID, "", Page{})
	if err != nil || len(all) != 2 || all[0].ID != d2.ID {
		t.Fatalf("list deliveries: %+v %v", all, err)
	}
	dead, _, err := s.ListDeliveries(ctx, a.ID, b.ID, DeliveryDead, Page{})
	if err != nil || len(dead) != 1 || dead[0].ID != d2.ID || dead[0].Attempts != 1 || dead[0].LastError != "status 500" {
		t.Fatalf("dead letters: %+v %v", dead, err)
	}
	page1, next, err := s.ListDeliveries(ctx, a.ID, b.ID, "", Page{Limit: 1})
	if err != nil || len(page1) != 1 || next == "" {
		t.Fatalf("first page: %+v %q %v", page1, next, err)
	}
	page2, next2, err := s.ListDeliveries(ctx, a.ID, b.ID, "", Page{Limit: 1, After: next})
	if err != nil || len(page2) != 1 || page2[0].ID != d.ID || next2 != "" {
		t.Fatalf("second page: %+v %q %v", page2, next2, err)
	}
}
