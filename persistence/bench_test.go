package persistence

import (
	"context"
	"fmt"
	"testing"
)

func BenchmarkSealerSeal(b *testing.B) {
	s := mustSealer(b, testKey(b, "k"))
	plain := make([]byte, 512)
	aad := bridgeKeyAAD("0190f5a4-0000-7000-8000-000000000000", "0x00000000000000000000000000000000000000aa")
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		if _, err := s.Seal(plain, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealerOpen(b *testing.B) {
	s := mustSealer(b, testKey(b, "k"))
	plain := make([]byte, 512)
	aad := []byte("aad")
	v, err := s.Seal(plain, aad)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		if _, err := s.Open(v, aad); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAccountByAPIKey measures the authentication lookup every API
// request makes.
func BenchmarkAccountByAPIKey(b *testing.B) {
	s, _ := newTestStore(b)
	_, key := newAccount(b, s, "alice")
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := s.AccountByAPIKey(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordDelivery measures durably recording one inbound message.
func BenchmarkRecordDelivery(b *testing.B) {
	s, _ := newTestStore(b)
	a, _ := newAccount(b, s, "alice")
	br, _ := newBridge(b, s, a.ID, []byte("bundle"))
	ctx := context.Background()
	sender := randomAddress(b)
	payload := make([]byte, 256)
	i := 0
	for b.Loop() {
		i++
		if _, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: br.ID, MessageID: fmt.Sprint(i), Topic: "t", SenderAddress: sender, Payload: payload}); err != nil {
			b.Fatal(err)
		}
	}
}
