package pgtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStaleDatabasesAreSweptAndFreshOnesKept(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		t.Fatalf("connect to Postgres at %s: %v", ServerURL(), err)
	}
	defer conn.Close(ctx)

	stale := fmt.Sprintf("t_sweeptest_%s_%d_aaaaaaaaaaaa", checkoutTag(), time.Now().Add(-2*staleAfter).Unix())
	fresh := fmt.Sprintf("t_sweeptest_%s_%d_bbbbbbbbbbbb", checkoutTag(), time.Now().Unix())
	for _, db := range []string{stale, fresh} {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
			t.Fatalf("create %s: %v", db, err)
		}
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{fresh}.Sanitize())
		conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{stale}.Sanitize())
	})

	url := NewDatabase(t, Template{Name: "sweeptest", Migrate: func(ctx context.Context, url string) error {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, "CREATE TABLE marker (id int)")
		return err
	}})

	exists := func(db string) bool {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", db).Scan(&n); err != nil {
			t.Fatalf("look up %s: %v", db, err)
		}
		return n == 1
	}
	if exists(stale) {
		t.Errorf("stale database %s survived the sweep", stale)
	}
	if !exists(fresh) {
		t.Errorf("fresh database %s was swept", fresh)
	}

	clone, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to clone: %v", err)
	}
	defer clone.Close(ctx)
	if _, err := clone.Exec(ctx, "SELECT id FROM marker"); err != nil {
		t.Errorf("clone lacks the migrated table: %v", err)
	}
}
