package system

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestDevDatabaseURLIsNeverSwapped checks what dev does with DATABASE_URL:
// a server that does not answer is an error with its reason (no fallback
// to another database), and a database that does not exist is created on
// that server and recorded for `make clean-data`.
func TestDevDatabaseURLIsNeverSwapped(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	_, err := EnsureDevPostgres(ctx, "postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable", dir, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") || !strings.Contains(err.Error(), "does not answer") ||
		!strings.Contains(err.Error(), "refused") {
		t.Fatalf("an unreachable DATABASE_URL: %v, want an error with the reason", err)
	}

	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	var suffix [4]byte
	rand.Read(suffix[:])
	name := "bridge_devcreate_" + hex.EncodeToString(suffix[:])
	u, _ := url.Parse(base)
	u.Path = "/" + name
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(cctx, base); err == nil {
			conn.Exec(cctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			conn.Close(cctx)
		}
	})
	var out strings.Builder
	got, err := EnsureDevPostgres(ctx, u.String(), dir, &out)
	if err != nil || got != u.String() {
		t.Fatalf("a missing database: %q %v, want %q", got, err, u.String())
	}
	if err := pgAnswers(ctx, got); err != nil {
		t.Fatalf("the created database does not answer: %v", err)
	}
	if !strings.Contains(out.String(), "created the database "+name) {
		t.Fatalf("creation not reported: %s", out.String())
	}
	rec, err := os.ReadFile(filepath.Join(dir, DevDatabaseFile))
	if err != nil || strings.TrimSpace(string(rec)) != u.String() {
		t.Fatalf("recorded database %q %v", rec, err)
	}
	if info, err := os.Stat(filepath.Join(dir, DevDatabaseFile)); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("record file mode: %v %v", info, err)
	}
}
