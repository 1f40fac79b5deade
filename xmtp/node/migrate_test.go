package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// schemaOf describes the public schema of the database at url, one line
// per column, index, constraint, sequence and applied migration, in a
// fixed order, so that two descriptions are equal exactly when the schemas
// are.
func schemaOf(t *testing.T, url string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var out []string
	for _, q := range []string{
		`SELECT 'column', table_name || '.' || column_name, data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '')
			FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, column_name`,
		`SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname`,
		`SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid)
			FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 2`,
		`SELECT 'sequence', sequence_name, data_type FROM information_schema.sequences WHERE sequence_schema = 'public' ORDER BY 2`,
		`SELECT 'migration', version::text, name || ' ' || coalesce(checksum, '') FROM xmtp_schema_migrations ORDER BY version`,
	} {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatalf("describe schema: %v", err)
		}
		for rows.Next() {
			var kind, name, def string
			if err := rows.Scan(&kind, &name, &def); err != nil {
				t.Fatalf("describe schema: %v", err)
			}
			out = append(out, fmt.Sprintf("%s %s: %s", kind, name, def))
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("describe schema: %v", err)
		}
	}
	return out
}

// TestMigrateIsIdempotent migrates an empty database, then migrates it
// again: the second run succeeds and leaves the schema exactly as the first
// made it, which is also the schema of the test template.
func TestMigrateIsIdempotent(t *testing.T) {
	db := pgtest.NewDatabase(t, pgtest.Template{Name: "xmtpnode_empty", Migrate: func(context.Context, string) error { return nil }})
	ctx := context.Background()
	if err := Migrate(ctx, db); err != nil {
		t.Fatalf("migrate run 1: %v", err)
	}
	first := schemaOf(t, db)
	if !strings.Contains(strings.Join(first, "\n"), "index xmtp_envelopes_topic_time_digest") {
		t.Fatalf("the first run made no envelope table and index:\n%s", strings.Join(first, "\n"))
	}
	if err := Migrate(ctx, db); err != nil {
		t.Fatalf("migrate run 2: %v", err)
	}
	if second := schemaOf(t, db); strings.Join(second, "\n") != strings.Join(first, "\n") {
		t.Fatalf("the second run changed the schema:\nafter run 1:\n%s\nafter run 2:\n%s", strings.Join(first, "\n"), strings.Join(second, "\n"))
	}
	if tmpl := schemaOf(t, testDatabase(t)); strings.Join(tmpl, "\n") != strings.Join(first, "\n") {
		t.Fatalf("the template's schema differs:\n%s", strings.Join(tmpl, "\n"))
	}
}
