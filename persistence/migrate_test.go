package persistence

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

func TestMigrateEmptyDatabaseTwiceAndConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t, pgtest.Template{Name: "empty", Migrate: func(context.Context, string) error { return nil }})

	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = Migrate(ctx, url)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent migrate %d: %v", i, err)
		}
	}
	if err := Migrate(ctx, url); err != nil {
		t.Fatalf("migrate a migrated database: %v", err)
	}

	files, err := schema.Files()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(files) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(files))
	}
	// A migration file edited after it ran is refused.
	if _, err := conn.Exec(ctx, "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1"); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, url); !errors.Is(err, ErrMigrationChanged) {
		t.Fatalf("migrate with a changed file: %v", err)
	}
	for _, table := range []string{"accounts", "api_keys", "bridges", "forward_configs", "webhook_secrets", "conversations",
		"cursors", "deliveries", "delivery_attempts", "quarantined_messages", "reply_outbox", "canary_results", "identity_leases"} {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil || !exists {
			t.Errorf("table %s missing after migration (err %v)", table, err)
		}
	}
}

func TestOpenFailsLoudlyOnUnreachableDatabase(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Open(ctx, "postgres://postgres:hunter2secret@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", mustSealer(t, testKey(t, "k")))
	if err == nil {
		t.Fatal("open of an unreachable database succeeded")
	}
	if bytes.Contains([]byte(err.Error()), []byte("hunter2secret")) {
		t.Fatalf("error leaks the password: %v", err)
	}
}
