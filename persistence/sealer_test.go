package persistence

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

func TestSealer(t *testing.T) {
	t.Parallel()
	k1, k2 := testKey(t, "a"), testKey(t, "b")
	s := mustSealer(t, k1)
	v, err := s.Seal([]byte("secret"), []byte("row-1"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Open(v, []byte("row-1")); err != nil || string(got) != "secret" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := s.Open(v, []byte("row-2")); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong aad: %v", err)
	}
	v2, _ := s.Seal([]byte("secret"), []byte("row-1"))
	if bytes.Equal(v.Nonce, v2.Nonce) || bytes.Equal(v.Ciphertext, v2.Ciphertext) {
		t.Fatal("two seals of one value are equal: nonces are not fresh")
	}
	if _, err := mustSealer(t, k2).Open(v, []byte("row-1")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := NewSealer(MasterKey{ID: "short", Key: []byte("too short")}); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := NewSealer(k1, k1); err == nil {
		t.Fatal("duplicate key id accepted")
	}
	if _, err := NewSealer(MasterKey{Key: k1.Key}); err == nil {
		t.Fatal("empty key id accepted")
	}
}

func FuzzSealerOpen(f *testing.F) {
	k := MasterKey{ID: "k", Key: bytes.Repeat([]byte{7}, 32)}
	s, err := NewSealer(k)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := s.Seal([]byte("plaintext"), []byte("aad"))
	f.Add(good.Nonce, good.Ciphertext, []byte("aad"))
	f.Add([]byte{}, []byte{}, []byte{})
	f.Add(make([]byte, 12), make([]byte, 40), []byte("x"))
	f.Fuzz(func(t *testing.T, nonce, ciphertext, aad []byte) {
		plain, err := s.Open(Sealed{KeyID: "k", Nonce: nonce, Ciphertext: ciphertext}, aad)
		// Only a value this key sealed opens; the fuzzer cannot forge one.
		// (Seeds may come from another process, whose nonce differs.)
		if err == nil && (string(plain) != "plaintext" || string(aad) != "aad") {
			t.Fatalf("forged value opened to %q", plain)
		}
	})
}

func TestMasterKeyRotationAndReseal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t, testTemplate)
	oldKey, newKey := testKey(t, "old"), testKey(t, "new")
	s1 := openStore(t, url, mustSealer(t, oldKey))
	a, _ := newAccount(t, s1, "alice")
	bundle := []byte("bundle-bytes-under-the-old-key")
	b, secrets := newBridge(t, s1, a.ID, bundle)
	conv := Conversation{BridgeID: b.ID, Topic: "/xmtp/0/m-abc/proto", PeerAddress: randomAddress(t), CreatedNs: 1, KeyMaterial: []byte("k-material")}
	if err := s1.SaveConversation(ctx, conv); err != nil {
		t.Fatal(err)
	}

	// A store that only knows the new key cannot open the old rows.
	sNewOnly := openStore(t, url, mustSealer(t, newKey))
	if _, err := sNewOnly.KeyBundle(ctx, b.ID); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("new key only: got %v, want ErrUnknownKey", err)
	}

	s2 := openStore(t, url, mustSealer(t, newKey, oldKey))
	if got, err := s2.KeyBundle(ctx, b.ID); err != nil || !bytes.Equal(got, bundle) {
		t.Fatalf("rotated store reads old key: %q %v", got, err)
	}
	n, err := s2.Reseal(ctx)
	if err != nil || n != 4 {
		t.Fatalf("reseal: %d rows, %v; want 4 (key, webhook secret, forward headers, conversation)", n, err)
	}
	if n, err := s2.Reseal(ctx); err != nil || n != 0 {
		t.Fatalf("second reseal: %d rows, %v; want 0", n, err)
	}
	var stale int
	if err := s2.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM bridges WHERE key_id <> 'new')
		+ (SELECT count(*) FROM webhook_secrets WHERE key_id <> 'new') + (SELECT count(*) FROM conversations WHERE key_id <> 'new')
		+ (SELECT count(*) FROM forward_configs WHERE headers_key_id <> 'new')`).Scan(&stale); err != nil || stale != 0 {
		t.Fatalf("%d rows still on the old key (err %v)", stale, err)
	}

	if got, err := sNewOnly.KeyBundle(ctx, b.ID); err != nil || !bytes.Equal(got, bundle) {
		t.Fatalf("after reseal, new key alone: %q %v", got, err)
	}
	if got, err := sNewOnly.GetBridge(ctx, a.ID, b.ID); err != nil || got.Forward.Headers["X-Test"] != "1" {
		t.Fatalf("after reseal, forward headers: %+v %v", got.Forward.Headers, err)
	}
	if ws, err := sNewOnly.WebhookSecrets(ctx, b.ID); err != nil || ws[0].Secret != secrets.WebhookSecret {
		t.Fatalf("after reseal, webhook secret: %v", err)
	}
	convs, err := sNewOnly.Conversations(ctx, b.ID)
	if err != nil || len(convs) != 1 || !bytes.Equal(convs[0].KeyMaterial, conv.KeyMaterial) {
		t.Fatalf("after reseal, conversations: %+v %v", convs, err)
	}
}
