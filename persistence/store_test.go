package persistence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// testTemplate is the migrated template every test database is cloned from.
var testTemplate = pgtest.Template{Name: "bridge", Migrate: Migrate}

func testKey(t testing.TB, id string) MasterKey {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return MasterKey{ID: id, Key: k}
}

func mustSealer(t testing.TB, current MasterKey, previous ...MasterKey) *Sealer {
	t.Helper()
	s, err := NewSealer(current, previous...)
	if err != nil {
		t.Fatalf("new sealer: %v", err)
	}
	return s
}

func openStore(t testing.TB, url string, sealer *Sealer) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, sealer)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// newTestStore returns a store on a fresh migrated database, and its URL.
func newTestStore(t testing.TB) (*Store, string) {
	t.Helper()
	url := pgtest.NewDatabase(t, testTemplate)
	return openStore(t, url, mustSealer(t, testKey(t, "k1"))), url
}

func randomAddress(t testing.TB) string {
	t.Helper()
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "0x" + hex.EncodeToString(b)
}

func testForward() ForwardConfig {
	return ForwardConfig{
		URL: "https://example.com/hook", BodyFormat: FormatJSON, ReplyMode: ReplyReply,
		Timeout: 5 * time.Second, MaxConcurrency: 4,
		Headers: map[string]string{"X-Test": "1"}, AllowSenders: []string{}, DenySenders: []string{"0x0000000000000000000000000000000000000001"},
	}
}

func newAccount(t testing.TB, s *Store, name string) (Account, string) {
	t.Helper()
	a, _, key, err := s.CreateAccount(context.Background(), name)
	if err != nil {
		t.Fatalf("create account: %v", err)
	}
	return a, key
}

func newBridge(t testing.TB, s *Store, accountID string, bundle []byte) (Bridge, BridgeSecrets) {
	t.Helper()
	b, secrets, err := s.CreateBridge(context.Background(), NewBridge{
		AccountID: accountID, Address: randomAddress(t), Name: "b", KeyBundle: bundle, Forward: testForward(), IssueHookToken: true,
	})
	if err != nil {
		t.Fatalf("create bridge: %v", err)
	}
	return b, secrets
}

// TestAutovacuumReadsTheServerSetting: Autovacuum reports the server's
// autovacuum setting, as the server shows it.
func TestAutovacuumReadsTheServerSetting(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t)
	ctx := context.Background()
	var shown string
	if err := s.pool.QueryRow(ctx, "SHOW autovacuum").Scan(&shown); err != nil {
		t.Fatal(err)
	}
	on, err := s.Autovacuum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if on != (shown == "on") {
		t.Fatalf("Autovacuum() = %v, the server shows %q", on, shown)
	}
}

// oneConnStore opens a second store on url's database with one
// connection, so that the statements of a test share one connection's
// cached plans and statistics.
func oneConnStore(t testing.TB, url string) *Store {
	t.Helper()
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return openStore(t, url+sep+"pool_max_conns=1", mustSealer(t, testKey(t, "k1")))
}

// leasedBridge makes a store with one account, one bridge of it and a
// lease on the bridge held by holder: the set-up of the tests of one
// identity's writes.
func leasedBridge(t *testing.T, holder string) (*Store, Account, Bridge, Lease) {
	t.Helper()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	l, err := s.AcquireLease(context.Background(), b.ID, holder, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return s, a, b, l
}
