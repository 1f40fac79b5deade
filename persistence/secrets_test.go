package persistence

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/xmtp/keys"
)

func TestBridgeSecretsAreSealedAtRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	bundle := []byte("PRIVATE-KEY-BUNDLE-0123456789abcdef-private-material")
	b, secrets := newBridge(t, s, a.ID, bundle)

	if b.Forward.URL != testForward().URL || b.Forward.Timeout != 5*time.Second || b.Forward.Headers["X-Test"] != "1" ||
		len(b.Forward.DenySenders) != 1 || b.Status != StatusActive || !b.HasHookToken {
		t.Fatalf("bridge read back wrong: %+v", b)
	}

	var keyID string
	var nonce, ciphertext []byte
	var hookHash []byte
	if err := s.pool.QueryRow(ctx, "SELECT key_id, key_nonce, key_ciphertext, hook_token_hash FROM bridges WHERE id = $1", b.ID).
		Scan(&keyID, &nonce, &ciphertext, &hookHash); err != nil {
		t.Fatal(err)
	}
	if keyID != "k1" || len(nonce) != 12 {
		t.Fatalf("key id %q nonce %d bytes; want k1 and 12", keyID, len(nonce))
	}
	if bytes.Contains(ciphertext, bundle) || bytes.Contains(ciphertext, bundle[:16]) {
		t.Fatal("the key bundle appears in the stored ciphertext")
	}
	if !bytes.Equal(hookHash, HashToken(secrets.HookToken)) {
		t.Fatal("hook token is not stored as its hash")
	}
	var wsCipher []byte
	if err := s.pool.QueryRow(ctx, "SELECT ciphertext FROM webhook_secrets WHERE bridge_id = $1", b.ID).Scan(&wsCipher); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(wsCipher, []byte(secrets.WebhookSecret)) || bytes.Contains(wsCipher, []byte(secrets.WebhookSecret[6:20])) {
		t.Fatal("the webhook secret appears in its stored ciphertext")
	}
	// Forward headers are sealed too.
	var fwdDump string
	if err := s.pool.QueryRow(ctx, "SELECT t::text FROM forward_configs t WHERE bridge_id = $1", b.ID).Scan(&fwdDump); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fwdDump, "X-Test") || strings.Contains(fwdDump, hex.EncodeToString([]byte("X-Test"))) {
		t.Fatal("forward headers are stored in the clear")
	}
	// No column of any row holds the plaintext.
	var dump string
	if err := s.pool.QueryRow(ctx, "SELECT string_agg(t::text, '|') FROM (SELECT * FROM bridges) t").Scan(&dump); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains([]byte(dump), []byte(hex.EncodeToString(bundle[:16]))) || bytes.Contains([]byte(dump), []byte(secrets.HookToken)) {
		t.Fatal("bridge row text holds the key bundle or hook token")
	}

	got, err := s.KeyBundle(ctx, b.ID)
	if err != nil || !bytes.Equal(got, bundle) {
		t.Fatalf("key bundle: %q, %v", got, err)
	}
	ws, err := s.WebhookSecrets(ctx, b.ID)
	if err != nil || len(ws) != 1 || ws[0].Secret != secrets.WebhookSecret {
		t.Fatalf("webhook secrets: %+v, %v", ws, err)
	}
	byToken, err := s.BridgeByHookToken(ctx, secrets.HookToken)
	if err != nil || byToken.ID != b.ID {
		t.Fatalf("bridge by hook token: %+v %v", byToken, err)
	}
	byAddr, err := s.BridgeByAddress(ctx, b.Address)
	if err != nil || byAddr.ID != b.ID {
		t.Fatalf("bridge by address: %+v %v", byAddr, err)
	}

	// Swapping two bridges' sealed keys makes both undecryptable: the
	// additional data binds each ciphertext to its row.
	other, _ := newBridge(t, s, a.ID, []byte("another-bundle-of-key-material"))
	if _, err := s.pool.Exec(ctx, `UPDATE bridges SET key_nonce = o.key_nonce, key_ciphertext = o.key_ciphertext
		FROM bridges o WHERE bridges.id = $1 AND o.id = $2`, b.ID, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.KeyBundle(ctx, b.ID); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("swapped key: got %v, want ErrDecrypt", err)
	}
}

// TestRealKeyBundleSealedAtRest stores a real XMTP identity and checks
// that no 16-byte run of its encoded private bundle appears anywhere in the
// stored row.
func TestRealKeyBundleSealedAtRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	id, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := id.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := s.CreateBridge(ctx, NewBridge{AccountID: a.ID, Address: id.Address(), KeyBundle: bundle, Forward: testForward()})
	if err != nil {
		t.Fatal(err)
	}
	var row []byte
	if err := s.pool.QueryRow(ctx, `SELECT convert_to(t::text, 'UTF8') || t.key_ciphertext || t.key_nonce FROM bridges t WHERE id = $1`, b.ID).Scan(&row); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+16 <= len(bundle); i++ {
		w := bundle[i : i+16]
		if bytes.Contains(row, w) || bytes.Contains(row, []byte(hex.EncodeToString(w))) {
			t.Fatalf("bytes %d..%d of the private key bundle appear in the stored row", i, i+16)
		}
	}
	got, err := s.KeyBundle(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	back, err := keys.UnmarshalPrivateKeyBundle(got)
	if err != nil || back.Address() != id.Address() {
		t.Fatalf("decrypted bundle: %v, address %v", err, back)
	}
}
