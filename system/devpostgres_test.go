package system

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// TestPrivatePostgresStartsFromSystemBinaries creates and starts a private
// Postgres from the machine's PostgreSQL binaries, the way `bridge dev`
// does when no server answers, and creates the dev database on it.
func TestPrivatePostgresStartsFromSystemBinaries(t *testing.T) {
	bin := pgBinDir()
	if bin == "" {
		t.Fatal("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: install the postgresql package (apt-get install postgresql)")
	}
	// The data directory must be reachable by the user postgres when the
	// test runs as root, so it lives in a world-traversable directory.
	dir, err := os.MkdirTemp("", "bridge-devpg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	datadir := filepath.Join(dir, "postgres")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	var log strings.Builder
	say := func(format string, args ...any) { fmt.Fprintf(&log, format+"\n", args...) }
	ctx := context.Background()
	if err := startPrivatePostgres(ctx, datadir, port, say); err != nil {
		t.Fatalf("start private postgres: %v\n%s", err, log.String())
	}
	t.Cleanup(func() {
		args := []string{filepath.Join(bin, "pg_ctl"), "-D", datadir, "-m", "immediate", "-w", "stop"}
		cmd := exec.Command(args[0], args[1:]...)
		if os.Geteuid() == 0 {
			cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("stop private postgres: %v: %s", err, out)
		}
	})
	server := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if err := pgAnswers(ctx, server); err != nil {
		t.Fatalf("the private instance does not answer: %v", err)
	}
	url, err := withDevDatabase(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(strings.Split(url, "?")[0], "/"+DevDatabase) {
		t.Fatalf("dev database url = %s", url)
	}
	if err := pgAnswers(ctx, url); err != nil {
		t.Fatalf("the dev database does not answer: %v", err)
	}
	// A second call finds the cluster and the database and reuses them.
	if _, err := withDevDatabase(ctx, server); err != nil {
		t.Fatalf("reuse dev database: %v", err)
	}
	if !strings.Contains(log.String(), "creating a private cluster") {
		t.Fatalf("progress not reported:\n%s", log.String())
	}
}

// TestEnsureDevPostgresPrefersAnAnsweringURL returns DATABASE_URL as it is
// when it answers.
func TestEnsureDevPostgresPrefersAnAnsweringURL(t *testing.T) {
	db := pgtest.NewDatabase(t, template)
	got, err := EnsureDevPostgres(context.Background(), db, t.TempDir(), io.Discard)
	if err != nil || got != db {
		t.Fatalf("EnsureDevPostgres = %q, %v; want %q", got, err, db)
	}
}
